"""The U-Net generator of the paper (its Appendix 6.1.1), and the encoder-decoder ablation without skips."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.models.layers import conv_bias, norm_layer

DROPOUT_BLOCKS = 3
"""The paper puts dropout in the first three decoder layers, the innermost ones."""


def has_dropout(block: int, start: int, count: int) -> bool:
    """Whether decoder `block` (counted from the innermost, 0) is one of the `count` dropout blocks from `start`:
    the paper's are 0, 1, 2; the canonical PyTorch U-Net's start at 1 and number depth - 5."""
    return start <= block < start + count


def encoder_channels(depth: int, ngf: int) -> list[int]:
    """C64-C128-C256-C512-C512-...: doubling up to 8 * ngf."""
    return [ngf * min(2**i, 8) for i in range(depth)]


class UNetGenerator(nn.Module):
    """Encoder of `depth` 4x4 stride-2 convolutions, mirrored decoder; decoder block i also sees encoder block i.

    The encoder uses LeakyReLU(0.2) and no norm on its first and last (bottleneck) layers; the decoder uses ReLU,
    dropout in `dropout_blocks` decoder blocks from `dropout_start` (the three innermost) and tanh at the output.
    With `skip_connections=False` it is the paper's plain encoder-decoder. `bias` None gives every convolution a
    bias except those before batch norm; True or False sets it for all but the output layer, which always has one.
    """

    def __init__(self, input_nc: int, output_nc: int, depth: int, ngf: int = 64, norm: str = "batch",
                 dropout: float = 0.5, skip_connections: bool = True, dropout_start: int = 0,
                 dropout_blocks: int = DROPOUT_BLOCKS, bias: bool | None = None) -> None:
        super().__init__()
        self.depth = depth
        self.skip_connections = skip_connections
        channels = encoder_channels(depth, ngf)
        inner_bias = conv_bias(norm) if bias is None else bias
        first_bias = True if bias is None else bias  # no norm follows the first convolution
        self.encoder = nn.ModuleList()
        for i, out_ch in enumerate(channels):
            in_ch = input_nc if i == 0 else channels[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1,
                                    bias=first_bias if i == 0 else inner_bias))
            if 0 < i < depth - 1:
                layers.append(norm_layer(norm, out_ch))
            self.encoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList()
        for i in reversed(range(depth)):
            innermost = i == depth - 1
            in_ch = channels[i] * (2 if skip_connections and not innermost else 1)
            layers = [nn.ReLU()]
            if i == 0:
                layers += [nn.ConvTranspose2d(in_ch, output_nc, 4, stride=2, padding=1), nn.Tanh()]
            else:
                layers += [nn.ConvTranspose2d(in_ch, channels[i - 1], 4, stride=2, padding=1, bias=inner_bias),
                           norm_layer(norm, channels[i - 1])]
                if dropout > 0 and has_dropout(depth - 1 - i, dropout_start, dropout_blocks):
                    layers.append(nn.Dropout(dropout))
            self.decoder.append(nn.Sequential(*layers))

    @property
    def multiple(self) -> int:
        """Height and width must be multiples of this (each downsampling halves them)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        for block in self.encoder:
            x = block(x)
            features.append(x)
        x = self.decoder[0](features[-1])
        for block, skip in zip(self.decoder[1:], reversed(features[:-1])):
            x = block(torch.cat([skip, x], dim=1) if self.skip_connections else x)
        return x

    def forward_any_size(self, x: torch.Tensor) -> torch.Tensor:
        """Pads height and width up to the U-Net's multiple (reflecting the border), then crops back."""
        return run_padded(self, x, self.multiple)


def input_problem(depth: int, height: int, width: int) -> str | None:
    """Why G cannot train on height x width inputs, or None: each downsampling halves the sides, and the decoder's
    maps meet the encoder's only at multiples of 2**depth (where its smallest norm map is 2x2 or more)."""
    multiple = 2**depth
    if height % multiple or width % multiple:
        return f"{width}x{height} is not a multiple of {multiple} on both sides (G's {depth} downsamplings)"
    return None


def run_padded(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Runs `forward` (the U-Net or its ONNX export) on `x` reflect-padded to a multiple of `multiple` and crops
    the result back, so that any size works."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return forward(x)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    padded = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode=mode)
    out = forward(padded)
    return out[..., pad_h // 2:pad_h // 2 + height, pad_w // 2:pad_w // 2 + width]
