"""The PatchGAN discriminator: a fully convolutional net whose every output judges one N x N input patch."""

from __future__ import annotations

import functools
import itertools

import torch
from torch import nn

from pix2pix.models.layers import conv_bias, norm_layer

STRIDED_LAYERS = {16: 1, 70: 3, 286: 5}
"""Receptive field -> number of stride-2 4x4 convolutions (the paper's 16x16, 70x70 and 286x286 PatchGANs)."""


class PatchDiscriminator(nn.Module):
    """C64-C128-C256-C512 for the 70x70 default: 4x4 convolutions, LeakyReLU(0.2), no norm on the first layer,
    then a 1-channel map of logits. `patch=1` is the PixelGAN, made of 1x1 convolutions."""

    def __init__(self, in_channels: int, patch: int = 70, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        if patch == 1:
            layers = self._pixel_layers(in_channels, ndf, norm)
        elif patch in STRIDED_LAYERS:
            layers = self._patch_layers(in_channels, ndf, norm, STRIDED_LAYERS[patch])
        else:
            raise ValueError(f"unsupported patch size {patch}: use 1, 16, 70 or 286")
        self.net = nn.Sequential(*layers)

    @staticmethod
    def _pixel_layers(in_channels: int, ndf: int, norm: str) -> list[nn.Module]:
        return [nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(ndf, ndf * 2, 1, bias=conv_bias(norm)), norm_layer(norm, ndf * 2), nn.LeakyReLU(0.2),
                nn.Conv2d(ndf * 2, 1, 1)]

    @staticmethod
    def _patch_layers(in_channels: int, ndf: int, norm: str, strided: int) -> list[nn.Module]:
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels = ndf
        for i in range(1, strided + 1):
            stride = 2 if i < strided else 1
            out_ch = ndf * min(2**i, 8)
            layers += [nn.Conv2d(channels, out_ch, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(norm, out_ch), nn.LeakyReLU(0.2)]
            channels = out_ch
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def receptive_field(net: nn.Module) -> int:
    """Pixels of input that one output value sees, from the convolutions' kernels, strides and dilations.

    Walks the layers from the output back: each one widens the field by (kernel - 1) * dilation input steps
    and multiplies its step by the stride. Assumes the convolutions are applied in the order they were built.
    """
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    field = 1
    for conv in reversed(convs):
        field = (field - 1) * conv.stride[0] + (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
    return field


def input_problem(patch: int, height: int, width: int) -> str | None:
    """Why D cannot train on height x width inputs, or None: from its layers' arithmetic, every convolution must
    leave a map of at least 1x1 and every norm layer more than one value per image (the last batch of an epoch
    may hold a single image, and instance norm needs it at any batch)."""
    sides = [(height, width)]
    for layer in _layers(patch):
        if isinstance(layer, nn.Conv2d):
            sides.append((_conv_side(layer, sides[-1][0], 0), _conv_side(layer, sides[-1][1], 1)))
            if min(sides[-1]) < 1:
                return _shrinks(sides)
        elif isinstance(layer, (nn.BatchNorm2d, nn.InstanceNorm2d)) and sides[-1][0] * sides[-1][1] < 2:
            return f"{_shrinks(sides)}, where a norm layer needs more than one value per image"
    return None


def smallest_input(patch: int) -> int:
    """The smallest side of a square input that D trains on."""
    return next(side for side in itertools.count(1) if input_problem(patch, side, side) is None)


@functools.cache
def _layers(patch: int) -> tuple[nn.Module, ...]:
    """D's layers in order, at one filter: the arithmetic of sizes does not depend on the width."""
    return tuple(PatchDiscriminator(1, patch=patch, ndf=1, norm="batch").net)


def _conv_side(conv: nn.Conv2d, side: int, dim: int) -> int:
    span = conv.dilation[dim] * (conv.kernel_size[dim] - 1) + 1
    return max(0, (side + 2 * conv.padding[dim] - span) // conv.stride[dim] + 1)


def _shrinks(sides: list[tuple[int, int]]) -> str:
    shown = [f"{h}x{w}" if min(h, w) > 0 else "nothing" for h, w in sides]
    between = f"{', '.join(shown[1:-1])}, then " if len(shown) > 2 else ""
    return f"its layers take a {shown[0]} input to {between}{shown[-1]}"
