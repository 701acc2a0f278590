"""How the generator runs at test time: the paper's stochastic mode, or a deterministic one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

MODES = ("paper", "eval")


@contextlib.contextmanager
def translation_mode(generator: nn.Module, mode: str) -> Iterator[None]:
    """`paper`: dropout on and batch norm from the test batch's own statistics, as the paper tests; the stored
    running statistics are left untouched. `eval`: dropout off and running statistics, deterministic."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use paper or eval")
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = generator.training
    tracked = [m.track_running_stats for m in norms]
    generator.train(mode == "paper")
    if mode == "paper":
        for norm in norms:
            norm.track_running_stats = False
    try:
        with torch.no_grad():
            yield
    finally:
        generator.train(was_training)
        for norm, was_tracked in zip(norms, tracked):
            norm.track_running_stats = was_tracked
