"""Networks in the state tests need them in."""

from __future__ import annotations

import torch
from torch import nn


def trained_looking(net: nn.Module) -> nn.Module:
    """Running statistics and affine parameters far from their initial 0 and 1, as after training, so using the
    running statistics (or not) shows in the output."""
    torch.manual_seed(0)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.2, 3.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.3, 0.3)
    return net
