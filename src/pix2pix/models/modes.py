"""How the generator runs at test time, defined once for the eager, compiled and ONNX translations: the paper's
stochastic mode, or a deterministic one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.config import ConfigError
from pix2pix.models.generator import UNetGenerator
from pix2pix.models.layers import copy_sharing_weights

MODES = ("paper", "eval")


def check_mode(mode: str) -> None:
    """Called where a translator or an export is built, so that a wrong mode fails before any work is done."""
    if mode not in MODES:
        raise ConfigError(f"unknown `mode` {mode!r}: use {' or '.join(MODES)}")


def in_mode(generator: UNetGenerator, mode: str) -> nn.Module:
    """`generator` as it translates in `mode`, as a module sharing its weights, so `generator` itself is left as it
    is: `PaperGenerator` for `paper`; for `eval`, dropout off and batch norm from the running statistics,
    deterministic."""
    check_mode(mode)
    if mode == "paper":
        return PaperGenerator(generator)
    return copy_sharing_weights(generator).eval()


class PaperDropout(nn.Module):
    """Dropout that stays on at test time, with its mask drawn as `nn.Dropout` draws it, or given as `mask`
    (already scaled by 1 / (1 - p)): the ONNX graph takes the masks as inputs, since ONNX Runtime's own Dropout
    draws from a generator seeded in the file, which `--seed` cannot reach."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return F.dropout(x, self.p, training=True)
        return x * self.mask


class PaperGenerator(nn.Module):
    """The generator at the paper's test time: dropout on, and batch norm normalizing with the statistics of the
    batch it is given, in training and eval mode alike; the running statistics are neither used nor updated.
    Shares `generator`'s parameters."""

    def __init__(self, generator: UNetGenerator) -> None:
        super().__init__()
        self.generator = copy_sharing_weights(generator, _paper_layer)
        for norm in self.generator.modules():
            if isinstance(norm, nn.modules.batchnorm._BatchNorm):  # SyncBatchNorm too, in training
                norm.track_running_stats = False
                norm.running_mean = norm.running_var = norm.num_batches_tracked = None
        self.dropouts = [module for module in self.generator.modules() if isinstance(module, PaperDropout)]

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """With `masks`, one per dropout in the order they run (`mask_specs`), instead of drawn ones."""
        if masks is None:
            return self.generator(x)
        for dropout, mask in zip(self.dropouts, masks, strict=True):
            dropout.mask = mask
        try:
            return self.generator(x)
        finally:
            for dropout in self.dropouts:
                dropout.mask = None


def _paper_layer(module: nn.Module) -> nn.Module | None:
    return PaperDropout(module.p) if isinstance(module, nn.Dropout) else None


def mask_specs(generator: UNetGenerator) -> list[dict]:
    """Channels, stride (input size / mask size) and rate of each dropout, in the order they run: decoder
    block j works at stride 2^(depth - 1 - j)."""
    specs = []
    for j, block in enumerate(generator.decoder):
        conv = next(layer for layer in block if isinstance(layer, nn.ConvTranspose2d))
        specs += [{"channels": conv.out_channels, "stride": 2 ** (generator.depth - 1 - j), "p": layer.p}
                  for layer in block if isinstance(layer, nn.Dropout)]
    return specs


def draw_masks(specs: list[dict], batch: int, height: int, width: int) -> list[torch.Tensor]:
    """Dropout masks for `PaperGenerator` from torch's generator, drawn as `nn.Dropout` draws them on CPU (same
    seed, same masks), for a backend that cannot draw them itself."""
    return [torch.empty(batch, s["channels"], height // s["stride"], width // s["stride"])
            .bernoulli_(1 - s["p"]).div_(1 - s["p"]) for s in specs]
