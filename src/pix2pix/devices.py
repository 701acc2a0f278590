"""Choosing the torch device from a setting such as `auto`, `cpu`, `cuda:1` or `mps`, and what it can compute in."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pix2pix.config import PRECISIONS, ConfigError

DEVICE_HELP = "auto (CUDA, else Apple MPS, else CPU), cpu, cuda, cuda:N or mps"


class DeviceError(ValueError):
    """A device this machine or this PyTorch build cannot provide."""


def mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise DeviceError(f"unknown device {name!r}: use {DEVICE_HELP}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but this PyTorch sees no CUDA device; use `device` cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not mps_available():
        raise DeviceError(f"device {name!r} asked for, but this PyTorch has no Apple MPS; use `device` cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {name!r} is not supported: use {DEVICE_HELP}")
    return device


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def generator_layout(device: torch.device, setting: str) -> torch.memory_format:
    """The generator's layout (a translator's weights and inputs): `auto` is channels_last on CUDA, where cuDNN runs
    convolutions (tensor cores under autocast) in NHWC, and NCHW elsewhere: on CPU a channels_last generator made
    a training step slower (docs/performance.md)."""
    if setting == "auto":
        setting = "channels_last" if device.type == "cuda" else "contiguous"
    return torch.channels_last if setting == "channels_last" else torch.contiguous_format


@dataclass(frozen=True)
class TrainingLayouts:
    """Where a training step keeps its tensors: each net's activations, and the weights of both."""

    generator: torch.memory_format
    discriminator: torch.memory_format
    weights: torch.memory_format


def training_layouts(device: torch.device, setting: str) -> TrainingLayouts:
    """`auto` on CPU runs D on channels_last activations and G on NCHW ones: oneDNN's NHWC kernels make D's
    convolutions faster, while G's skip concatenations and small matmul layers lose more in NHWC than its
    convolutions gain (docs/performance.md). On CPU the weights stay NCHW in every setting, since oneDNN follows
    the input's layout and NHWC weights cost copies in the matmul layers and in fused Adam; elsewhere they
    follow the setting, as cuDNN wants."""
    generator = generator_layout(device, setting)
    discriminator = torch.channels_last if setting == "auto" and device.type == "cpu" else generator
    weights = torch.contiguous_format if device.type == "cpu" else generator
    return TrainingLayouts(generator, discriminator, weights)


def check_precision(device: torch.device, precision: str) -> None:
    """Refuses a precision the device would emulate slowly or cannot train in, before any work starts."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown `precision` {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"{torch.cuda.get_device_name(device)} has no bf16 support; use `precision` fp16")
    elif device.type == "mps":
        _check_mps_autocast(device, precision)
    elif precision == "fp16":
        raise DeviceError(f"`precision` fp16 needs a CUDA or MPS device (this run is on {device}); use fp32, or "
                          "bf16 where supported")
    elif not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise DeviceError("this CPU has no native bf16 (it needs AVX-512 bf16 or AMX), so bf16 would run many "
                          "times slower than fp32; use `precision` fp32")


def _check_mps_autocast(device: torch.device, precision: str) -> None:
    """MPS autocast and its gradient scaler depend on the macOS and PyTorch versions: try them on a tiny input."""
    try:
        with torch.autocast("mps", dtype=AUTOCAST_DTYPES[precision]):
            torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
        if precision == "fp16":
            torch.amp.GradScaler("mps")
    except (RuntimeError, TypeError, ValueError) as err:
        raise DeviceError(f"`precision` {precision} does not work on MPS here ({err}); use `precision` fp32") from err
