"""Mixed precision: refused where the device cannot do it fast, and close to fp32 where it runs."""

from __future__ import annotations

import pytest
import torch

from pix2pix.devices import DeviceError, check_precision
from pix2pix.training.step import Networks
from tests.conftest import needs_cuda


def test_fp16_off_cuda_is_refused_with_a_clear_message():
    with pytest.raises(DeviceError, match="fp16 needs a CUDA or MPS device"):
        check_precision(torch.device("cpu"), "fp16")


@pytest.mark.skipif(torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has native bf16")
def test_bf16_on_a_cpu_without_native_bf16_is_refused():
    with pytest.raises(DeviceError, match="no native bf16"):
        check_precision(torch.device("cpu"), "bf16")


def fp32_and(precision: str, config, device: torch.device) -> dict[str, Networks]:
    """Two pairs of networks with the same initial weights, in fp32 and in `precision`."""
    by_precision = {}
    for name in ("fp32", precision):
        torch.manual_seed(1)
        by_precision[name] = Networks(config.updated({"precision": name, "dropout": 0.0}), device)
    return by_precision


def tiny_batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"input": torch.rand(2, 3, 32, 32) * 2 - 1, "target": torch.rand(2, 3, 32, 32) * 2 - 1}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_bf16_autocast_step_stays_close_to_fp32(tiny_config, device):
    """Same weights and batch: bf16 forward passes with fp32 losses give nearly the fp32 losses and updates
    (run whatever the CPU, at 32 px, since the check of numbers does not depend on speed)."""
    batch = tiny_batch()
    by_precision = fp32_and("bf16", tiny_config, torch.device(device))
    before = [p.detach().clone() for p in by_precision["fp32"].generator.parameters()]
    losses = {precision: nets.step(batch) for precision, nets in by_precision.items()}
    assert set(losses["bf16"]) == set(losses["fp32"])
    for name, value in losses["fp32"].items():
        assert losses["bf16"][name].dtype == torch.float32
        assert abs(losses["bf16"][name].item() - value.item()) <= 0.02 * abs(value.item()) + 0.02, name
    updates = {precision: torch.cat([(p.detach() - b).flatten() for p, b in
                                     zip(nets.generator.parameters(), before)])
               for precision, nets in by_precision.items()}
    assert all(p.dtype == torch.float32 for p in by_precision["bf16"].generator.parameters())
    moved = updates["fp32"].abs() > 1e-4  # Adam's first step moves most weights by about lr = 2e-4
    agree = (updates["bf16"][moved].sign() == updates["fp32"][moved].sign()).float().mean()
    assert moved.float().mean() > 0.5 and agree > 0.9, (moved.float().mean(), agree)


@needs_cuda
def test_fp16_with_the_gradient_scaler_trains_close_to_fp32(tiny_config):
    """The scaler may skip the first steps (their scaled gradients overflow fp16) while it finds its scale; the
    losses stay close to fp32's and the weights do move."""
    batch = tiny_batch()
    by_precision = fp32_and("fp16", tiny_config, torch.device("cuda"))
    before = [p.detach().clone() for p in by_precision["fp16"].generator.parameters()]
    first = {name: nets.step(batch) for name, nets in by_precision.items()}
    for name, value in first["fp32"].items():
        assert abs(first["fp16"][name].item() - value.item()) <= 0.02 * abs(value.item()) + 0.02, name
    for _ in range(20):
        losses = by_precision["fp16"].step(batch)
    assert all(torch.isfinite(value) for value in losses.values())
    moved = max((p.detach() - b).abs().max().item()
                for p, b in zip(by_precision["fp16"].generator.parameters(), before))
    assert moved > 1e-4
