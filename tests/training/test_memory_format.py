"""channels_last (the layout CUDA gets by default) trains and translates as NCHW does, and survives checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch

from pix2pix.devices import memory_format
from pix2pix.inference import Translator
from pix2pix.models import build_generator
from pix2pix.training.loop import train
from pix2pix.training.step import Pix2PixTrainer
from tests.conftest import needs_cuda


@pytest.mark.parametrize(("device", "setting", "expected"), [
    ("cuda", "auto", torch.channels_last), ("cpu", "auto", torch.contiguous_format),
    ("mps", "auto", torch.contiguous_format), ("cpu", "channels_last", torch.channels_last),
    ("cuda", "contiguous", torch.contiguous_format)])
def test_auto_is_channels_last_on_cuda_only(device, setting, expected):
    assert memory_format(torch.device(device), setting) == expected


def four_dim_params(trainer: Pix2PixTrainer) -> list[torch.Tensor]:
    return [p for net in (trainer.generator, trainer.discriminator) for p in net.parameters() if p.dim() == 4]


@pytest.fixture
def exact_fp32():
    """cuDNN's convolutions may round fp32 to TF32, differently per layout: off for comparisons."""
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = allowed


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_channels_last_training_steps_match_nchw(tiny_config, device, exact_fp32):
    torch.manual_seed(0)
    batches = [{"input": torch.rand(2, 3, 32, 32) * 2 - 1, "target": torch.rand(2, 3, 32, 32) * 2 - 1}
               for _ in range(3)]
    trainers = {}
    for layout in ("contiguous", "channels_last"):
        torch.manual_seed(1)
        trainers[layout] = Pix2PixTrainer(tiny_config.updated({"memory_format": layout, "dropout": 0.0}),
                                          torch.device(device))
    start = [p.detach().clone() for p in trainers["contiguous"].parameters()]
    for batch in batches:  # on CPU, moved to the device by the step
        losses = {layout: trainer.step(batch) for layout, trainer in trainers.items()}
        for name, value in losses["contiguous"].items():
            assert torch.allclose(losses["channels_last"][name], value, rtol=1e-4, atol=1e-5), name
    assert all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in four_dim_params(trainers["channels_last"]) if min(p.shape[2:]) > 1)
    moved = 0.0
    for plain, last, before in zip(trainers["contiguous"].parameters(), trainers["channels_last"].parameters(), start,
                                   strict=True):
        assert torch.allclose(last, plain, atol=1e-5), (last - plain).abs().max()
        moved = max(moved, (plain - before).abs().max().item())
    assert moved > 1e-4


def test_a_channels_last_run_saves_resumes_and_translates_as_nchw_does(tiny_config, tmp_path):
    config = tiny_config.updated({"memory_format": "channels_last", "max_steps": 2})
    train(config, tmp_path / "run")
    result = train(config.updated({"max_steps": 3}), tmp_path / "run", resume=True)
    assert result.step == 3
    loaded = Translator.load(result.run_dir, mode="eval")
    assert loaded.generator.encoder[1][1].weight.is_contiguous(memory_format=torch.channels_last)
    nchw = Translator(copy.deepcopy(loaded.generator), loaded.config.updated({"memory_format": "contiguous"}),
                      mode="eval")
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
