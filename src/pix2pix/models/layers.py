"""Pieces shared by both networks: the normalization choice and the paper's weight initialisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MATMUL_MAX_PIXELS = 16 * 16
"""Inputs up to this many pixels take the matmul path of `UpConv` on CPU (measured faster there, see
docs/performance.md)."""


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Batch norm (the paper), instance norm, or nothing. `syncbatch` is batch norm here; a distributed run
    converts it to SyncBatchNorm, so a trained run translates without any process group."""
    if kind in ("batch", "syncbatch"):
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use batch, instance or none")


def conv_bias(norm: str) -> bool:
    """A bias before batch norm is cancelled by its mean subtraction, so only the other norms get one."""
    return norm not in ("batch", "syncbatch")


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


def with_plain_transposed_convs(net: nn.Module) -> nn.Module:
    """`net` with every `UpConv` turned back into PyTorch's own transposed convolution (same parameters, same
    results): for exports, which must not branch on the input size, and for baselines. Changes `net` in place."""
    for module in net.modules():
        if isinstance(module, UpConv):
            module.__class__ = nn.ConvTranspose2d
    return net


class UpConv(nn.ConvTranspose2d):
    """A transposed convolution that, on CPU and for small inputs, runs as one matmul followed by `fold`.

    oneDNN spends more time preparing the large weights of the U-Net's innermost layers (1024 -> 512 channels at
    2x2 to 16x16) than computing with them; the matmul form halves their forward+backward time. Same parameters,
    same results up to float rounding.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.device.type != "cpu" or x.shape[-2] * x.shape[-1] > MATMUL_MAX_PIXELS or output_size is not None:
            return super().forward(x, output_size)
        return transposed_conv_as_matmul(x, self.weight, self.bias, self.stride, self.padding)


def transposed_conv_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                              stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """conv_transpose2d(x, weight) as W^T x (every input pixel's contribution to a k x k patch), then `fold`
    summing the overlapping patches into the output."""
    batch, in_ch, height, width = x.shape
    out_ch, kh, kw = weight.shape[1:]
    columns = weight.reshape(in_ch, out_ch * kh * kw).t() @ x.reshape(batch, in_ch, height * width)
    out_h = (height - 1) * stride[0] - 2 * padding[0] + kh
    out_w = (width - 1) * stride[1] - 2 * padding[1] + kw
    out = F.fold(columns, (out_h, out_w), (kh, kw), stride=stride, padding=padding)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
