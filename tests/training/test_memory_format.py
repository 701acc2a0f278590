"""Each memory layout trains and translates as NCHW does and survives checkpoints; each net runs in the layout its
setting gives it (channels_last on CUDA, and for D on CPU, by default)."""

from __future__ import annotations

import copy

import pytest
import torch

from pix2pix.devices import TrainingLayouts, generator_layout, training_layouts
from pix2pix.inference import Translator
from pix2pix.models import build_generator
from pix2pix.training.loop import train
from pix2pix.training.step import Networks
from tests.conftest import needs_cuda


@pytest.mark.parametrize(("device", "setting", "expected"), [
    ("cuda", "auto", torch.channels_last), ("cpu", "auto", torch.contiguous_format),
    ("mps", "auto", torch.contiguous_format), ("cpu", "channels_last", torch.channels_last),
    ("cuda", "contiguous", torch.contiguous_format)])
def test_auto_is_channels_last_on_cuda_only(device, setting, expected):
    assert generator_layout(torch.device(device), setting) == expected


NCHW, NHWC = torch.contiguous_format, torch.channels_last


@pytest.mark.parametrize(("device", "setting", "expected"), [
    ("cpu", "auto", (NCHW, NHWC, NCHW)), ("cpu", "channels_last", (NHWC, NHWC, NCHW)),
    ("cpu", "contiguous", (NCHW, NCHW, NCHW)), ("cuda", "auto", (NHWC, NHWC, NHWC)),
    ("cuda", "contiguous", (NCHW, NCHW, NCHW)), ("mps", "auto", (NCHW, NCHW, NCHW))])
def test_training_layouts_put_only_cpu_activations_of_d_in_channels_last_by_default(device, setting, expected):
    assert training_layouts(torch.device(device), setting) == TrainingLayouts(*expected)


def layout_of(tensor: torch.Tensor) -> torch.memory_format | None:
    return NCHW if tensor.is_contiguous() else NHWC if tensor.is_contiguous(memory_format=NHWC) else None


def first_conv(net: torch.nn.Module) -> torch.nn.Module:
    return next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.fixture
def exact_fp32():
    """cuDNN's convolutions may round fp32 to TF32, differently per layout: off for comparisons."""
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = allowed


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_every_layout_trains_as_nchw_does_and_the_nets_run_in_their_layouts(tiny_config, device, exact_fp32):
    torch.manual_seed(0)
    batches = [{"input": torch.rand(2, 3, 32, 32) * 2 - 1, "target": torch.rand(2, 3, 32, 32) * 2 - 1}
               for _ in range(3)]
    by_setting, seen = {}, {}
    for setting in ("contiguous", "channels_last", "auto"):
        torch.manual_seed(1)
        nets = Networks(tiny_config.updated({"memory_format": setting, "dropout": 0.0}), torch.device(device))
        by_setting[setting] = nets
        for name, net in (("generator", nets.generator_replica), ("discriminator", nets.discriminator)):
            first_conv(net).register_forward_pre_hook(
                lambda _, args, key=(setting, name): seen.setdefault(key, set()).add(layout_of(args[0])))
    start = [p.detach().clone() for p in by_setting["contiguous"].parameters()]
    for batch in batches:  # on CPU, moved to the device by the step
        losses = {setting: nets.step(batch) for setting, nets in by_setting.items()}
        for setting in ("channels_last", "auto"):
            for name, value in losses["contiguous"].items():
                assert torch.allclose(losses[setting][name], value, rtol=1e-4, atol=1e-5), (setting, name)
    for setting, nets in by_setting.items():
        layouts = training_layouts(torch.device(device), setting)
        assert seen[setting, "generator"] == {layouts.generator}, setting
        assert seen[setting, "discriminator"] == {layouts.discriminator}, setting
        assert all(layout_of(p) == layouts.weights for p in nets.parameters() if p.dim() == 4
                   and min(p.shape[2:]) > 1), setting
        moved = 0.0
        for plain, other, before in zip(by_setting["contiguous"].parameters(), nets.parameters(), start, strict=True):
            assert torch.allclose(other, plain, atol=1e-5), (setting, (other - plain).abs().max())
            moved = max(moved, (plain - before).abs().max().item())
        assert moved > 1e-4


def test_a_channels_last_run_saves_resumes_and_translates_as_nchw_does(tiny_config, tmp_path):
    config = tiny_config.updated({"memory_format": "channels_last", "max_steps": 2})
    train(config, tmp_path / "run")
    result = train(config.updated({"max_steps": 3}), tmp_path / "run", resume=True)
    assert result.step == 3
    loaded = Translator.load(result.run_dir, mode="eval", memory_format="channels_last")
    assert loaded.generator.encoder[1][1].weight.is_contiguous(memory_format=torch.channels_last)
    nchw = Translator(copy.deepcopy(loaded.generator), loaded.config, mode="eval", memory_format="contiguous")
    assert nchw.generator.encoder[1][1].weight.is_contiguous()
    image = torch.rand(1, 3, 40, 48) * 2 - 1
    assert torch.allclose(loaded(image), nchw(image), atol=1e-5)


@needs_cuda
def test_translating_on_cuda_in_channels_last_gives_the_cpus_images(tiny_config, exact_fp32):
    torch.manual_seed(0)
    generator = build_generator(tiny_config)
    translators = {device: Translator(copy.deepcopy(generator), tiny_config, mode="eval", device=device)
                   for device in ("cpu", "cuda")}
    assert translators["cuda"].memory_format == torch.channels_last
    image = torch.rand(1, 3, 40, 48) * 2 - 1
    assert torch.allclose(translators["cuda"](image), translators["cpu"](image), atol=1e-4)


def test_resumed_adam_state_takes_its_parameters_layout(tiny_config):
    """A checkpoint keeps the layout it trained in: channels_last on CUDA, NCHW weights on CPU. PyTorch's fused Adam
    on CPU updates wrongly when a state's layout differs from its parameter's (0.16 off after one step)."""
    torch.manual_seed(0)
    nets = Networks(tiny_config, torch.device("cpu"))
    nets.step({"input": torch.rand(1, 3, 32, 32) * 2 - 1, "target": torch.rand(1, 3, 32, 32) * 2 - 1})
    state = nets.training_state()
    from_cuda = copy.deepcopy(state)
    for name in nets.optimizers:
        for param_state in from_cuda[f"optimizer_{name}"]["state"].values():
            for key, value in param_state.items():
                if value.dim() == 4:
                    param_state[key] = value.contiguous(memory_format=NHWC)
    resumed = []
    for saved_state in (state, from_cuda):
        resumed.append(Networks(tiny_config, torch.device("cpu")))
        resumed[-1].load_training_state(saved_state)
    for opt in resumed[1].optimizers.values():
        for param, param_state in opt.state.items():
            assert all(value.stride() == param.stride() for value in param_state.values() if value.dim() == 4)
    torch.manual_seed(1)
    gradients = [torch.randn_like(p) for p in resumed[0].parameters()]
    for nets in resumed:
        for param, gradient in zip(nets.parameters(), gradients, strict=True):
            param.grad = gradient.clone()
        for opt in nets.optimizers.values():
            opt.step()
    for plain, from_other_layout in zip(resumed[0].parameters(), resumed[1].parameters(), strict=True):
        assert torch.allclose(from_other_layout, plain, atol=1e-7)
