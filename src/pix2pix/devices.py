"""Choosing the torch device from a setting such as `auto`, `cpu` or `cuda:1`."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device this machine or this PyTorch build cannot provide."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but this PyTorch sees no CUDA device; use --device cpu")
    return device


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(device: torch.device, precision: str) -> None:
    """Refuses a precision the device would emulate slowly or cannot train in, before any work starts."""
    if precision == "fp32":
        return
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(f"--precision fp16 needs a CUDA device (this run is on {device}); use fp32, or bf16 "
                          "where supported")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"{torch.cuda.get_device_name(device)} has no bf16 support; use --precision fp16")
    if precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise DeviceError("this CPU has no native bf16 (it needs AVX-512 bf16 or AMX), so bf16 would run many "
                          "times slower than fp32; use --precision fp32")
