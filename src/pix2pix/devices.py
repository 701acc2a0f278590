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
