"""Pieces shared by both networks: the normalization choice and the paper's weight initialisation."""

from __future__ import annotations

from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Batch norm (the paper), instance norm, or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use batch, instance or none")


def conv_bias(norm: str) -> bool:
    """A bias before batch norm is cancelled by its mean subtraction, so only the other norms get one."""
    return norm != "batch"


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """Convolutions from N(0, gain), batch-norm scales from N(1, gain), biases zero."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return net
