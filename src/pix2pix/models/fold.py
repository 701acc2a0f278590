"""The generator for eval mode with each batch norm folded into the convolution before it.

In eval mode a batch norm is a fixed per-channel scale and shift, so it can be merged into the preceding
convolution's weights and bias: one pass over every activation fewer per layer, same results up to rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)


def fold_batch_norm(net: nn.Module) -> nn.Module:
    """An eval-mode copy of `net` in which every batch norm that directly follows a convolution in an
    `nn.Sequential` is merged into it and dropout is removed; `net` itself is left untouched."""
    folded = copy.deepcopy(net).eval().requires_grad_(False)
    for block in folded.modules():
        if isinstance(block, nn.Sequential):
            _fold_block(block)
    return folded


def _fold_block(block: nn.Sequential) -> None:
    """Replaces each folded batch norm, and each dropout (a no-op in eval mode), by an identity."""
    for i, layer in enumerate(list(block)):
        if isinstance(layer, nn.Dropout):
            block[i] = nn.Identity()
        elif isinstance(layer, nn.BatchNorm2d) and i > 0 and _foldable(block[i - 1], layer):
            _merge(block[i - 1], layer)
            block[i] = nn.Identity()


def _foldable(conv: nn.Module, norm: nn.BatchNorm2d) -> bool:
    """Only running statistics can be folded, and only into an ungrouped convolution."""
    return isinstance(conv, CONVOLUTIONS) and conv.groups == 1 and norm.running_mean is not None


def _merge(conv: nn.Conv2d | nn.ConvTranspose2d, norm: nn.BatchNorm2d) -> None:
    """conv(x) * scale + shift, as one convolution with scaled weights and a shifted bias, computed in fp32 and
    rounded once to the weights' type (bf16 weights would otherwise round each step)."""
    dtype = conv.weight.dtype
    scale = torch.rsqrt(norm.running_var.float() + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.float()
    shift = -norm.running_mean.float() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.float()
    out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0  # transposed weights are in x out x kh x kw
    shape = [1] * conv.weight.dim()
    shape[out_dim] = -1
    conv.weight = nn.Parameter((conv.weight.float() * scale.view(shape)).to(dtype), requires_grad=False)
    bias = shift if conv.bias is None else conv.bias.float() * scale + shift
    conv.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
