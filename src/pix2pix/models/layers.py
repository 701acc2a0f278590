"""Pieces shared by both networks: the normalization choice, the paper's weight initialisation, and the copies
through which test-time modes and faster kernels run a network without changing it."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

from torch import nn


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


def copy_sharing_weights(net: nn.Module, replace: Callable[[nn.Module], nn.Module | None] = lambda module: None
                         ) -> nn.Module:
    """A copy of `net` holding `net`'s own parameters and buffers, with each module for which `replace` gives a
    replacement swapped for it: the copy runs differently while training, saving and exporting still see `net`,
    under the same state_dict keys."""
    memo = {id(tensor): tensor for tensor in itertools.chain(net.parameters(), net.buffers())}
    for module in net.modules():
        replacement = replace(module)
        if replacement is not None:
            memo[id(module)] = replacement
    return copy.deepcopy(net, memo)
