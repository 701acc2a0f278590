"""Faster CPU kernels for the U-Net's small, wide convolutions, applied to a network by `with_cpu_kernels`.

The U-Net's inner layers (512 to 1024 channels, 4-16 MB of weights each, at 1x1 to 16x16 pixels) compute little
with their weights, and oneDNN spends longer preparing the weights than using them. There, one matmul with
`unfold` (convolution) or `fold` (transposed convolution) halves their forward+backward time on CPU
(docs/performance.md). Same parameters, same results up to float rounding; the networks in `models/` stay
PyTorch's own layers, and exports and compiles take them as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.models.layers import copy_sharing_weights

MATMUL_MAX_COLUMNS = 16 * 16
"""Inputs of up to this many pixels in the whole batch (the matmul's columns) take the matmul path of
`MatmulConvTranspose2d` on CPU: measured faster there in fp32 and bf16, while from 1024 columns (batch 4 at 16x16)
PyTorch's kernel is as fast in fp32 and faster in bf16 (docs/performance.md)."""

CONV_MATMUL_MAX_COLUMNS = 8 * 8
"""Convolutions with up to this many output pixels in the whole batch take the matmul path of `MatmulConv2d` on
CPU: measured 1.1-4x faster there, forward and backward, in fp32 and bf16; at 256 (batch 4 with 8x8 outputs) fp32
was slower."""


def with_cpu_kernels(net: nn.Module) -> nn.Module:
    """`net` with its plain convolutions and transposed convolutions running the matmul kernels on small CPU inputs:
    a copy that shares `net`'s parameters and buffers (training it trains `net`), while `net` itself stays plain
    for saving, exporting and compiling."""
    return copy_sharing_weights(net, _matmul_form)


def _matmul_form(module: nn.Module) -> nn.Module | None:
    """Only PyTorch's own layers with the settings the matmul forms compute (no groups, zero padding, and for the
    transposed one no dilation or output padding); a subclass may run something else."""
    if type(module) not in (nn.Conv2d, nn.ConvTranspose2d) or module.groups != 1 or module.padding_mode != "zeros":
        return None
    if isinstance(module, nn.ConvTranspose2d):
        computable = module.dilation == (1, 1) and module.output_padding == (0, 0)
        return MatmulConvTranspose2d.sharing(module) if computable else None
    return None if isinstance(module.padding, str) else MatmulConv2d.sharing(module)


class MatmulConv2d(nn.Conv2d):
    """A convolution that, on CPU and for small outputs, runs as `unfold` followed by one matmul."""

    @classmethod
    def sharing(cls, conv: nn.Conv2d) -> MatmulConv2d:
        """This form of `conv`, holding its very parameters."""
        fast = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                   bias=conv.bias is not None, device="meta")
        fast.weight, fast.bias = conv.weight, conv.bias
        return fast.train(conv.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_h, out_w = (conv_output_length(x.shape[i - 2], self.kernel_size[i], self.stride[i], self.padding[i],
                                           self.dilation[i]) for i in (0, 1))
        if x.device.type != "cpu" or x.shape[0] * out_h * out_w > CONV_MATMUL_MAX_COLUMNS:
            return super().forward(x)
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        out = (self.weight.reshape(self.out_channels, -1) @ cols).reshape(x.shape[0], -1, out_h, out_w)
        return out if self.bias is None else out + self.bias.to(out.dtype).view(1, -1, 1, 1)


def conv_output_length(length: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class MatmulConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution that, on CPU and for small inputs, runs as one matmul followed by `fold`."""

    @classmethod
    def sharing(cls, conv: nn.ConvTranspose2d) -> MatmulConvTranspose2d:
        """This form of `conv`, holding its very parameters."""
        fast = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                   bias=conv.bias is not None, device="meta")
        fast.weight, fast.bias = conv.weight, conv.bias
        return fast.train(conv.training)

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
