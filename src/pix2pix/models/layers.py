"""Pieces shared by both networks: the normalization choice and the paper's weight initialisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MATMUL_MAX_COLUMNS = 16 * 16
"""Inputs of up to this many pixels in the whole batch (the matmul's columns) take the matmul path of `UpConv` on
CPU: measured faster there in fp32 and bf16, while from 1024 columns (batch 4 at 16x16) PyTorch's kernel is as fast
in fp32 and faster in bf16 (docs/performance.md)."""

CONV_MATMUL_MAX_COLUMNS = 8 * 8
"""Convolutions with up to this many output pixels in the whole batch take the matmul path of `DownConv` on CPU:
measured 1.1-4x faster there, forward and backward, in fp32 and bf16; at 256 (batch 4 with 8x8 outputs) fp32
was slower."""


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


def with_plain_convolutions(net: nn.Module) -> nn.Module:
    """`net` with every `DownConv` and `UpConv` turned back into PyTorch's own convolution (same parameters, same
    results): for exports, which must not branch on the input size, and for baselines. Changes `net` in place."""
    for module in net.modules():
        if isinstance(module, UpConv):
            module.__class__ = nn.ConvTranspose2d
        elif isinstance(module, DownConv):
            module.__class__ = nn.Conv2d
    return net


class DownConv(nn.Conv2d):
    """A convolution that, on CPU and for small outputs, runs as `unfold` followed by one matmul.

    The U-Net's inner encoder layers (512 -> 512 channels, 4 MB of weights each, down to a 1x1 output) compute
    little with their weights, and oneDNN spends longer preparing the weights than using them. Same parameters,
    same results up to float rounding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_h, out_w = (conv_output_length(x.shape[i - 2], self.kernel_size[i], self.stride[i], self.padding[i],
                                           self.dilation[i]) for i in (0, 1))
        if (x.device.type != "cpu" or x.shape[0] * out_h * out_w > CONV_MATMUL_MAX_COLUMNS or self.groups != 1
                or self.padding_mode != "zeros"):
            return super().forward(x)
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        out = (self.weight.reshape(self.out_channels, -1) @ cols).reshape(x.shape[0], -1, out_h, out_w)
        return out if self.bias is None else out + self.bias.to(out.dtype).view(1, -1, 1, 1)


def conv_output_length(length: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class UpConv(nn.ConvTranspose2d):
    """A transposed convolution that, on CPU and for small inputs, runs as one matmul followed by `fold`.

    oneDNN spends more time preparing the large weights of the U-Net's innermost layers (1024 -> 512 channels at
    2x2 to 16x16) than computing with them at small batches; the matmul form halves their forward+backward time.
    Same parameters, same results up to float rounding.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        columns = x.shape[0] * x.shape[-2] * x.shape[-1]
        if x.device.type != "cpu" or columns > MATMUL_MAX_COLUMNS or output_size is not None:
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
    return out if bias is None else out + bias.to(out.dtype).view(1, -1, 1, 1)
