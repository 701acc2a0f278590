"""A run folder: its config, its generator weights and its training checkpoints, all written atomically.

Layout of RUN/:
    config.json               everything needed to rebuild the models and continue training
    generator.safetensors     the latest generator weights (what translating and serving load)
    checkpoints/step_*.pt     full training state: both nets, both optimizers, schedulers, position, RNG
This module is below both training and inference, so translating never imports training code.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from pix2pix.atomic import TEMPORARY_NAME, atomic_path, write_bytes_atomic
from pix2pix.config import ConfigError, RunConfig
from pix2pix.models import UNetGenerator, build_generator

CHECKPOINT_PATTERN = re.compile(r"^step_(\d{8,})\.pt$")


class RunError(ValueError):
    """A run folder that cannot be used as asked; the message says why and what to do."""


class RunDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def generator_path(self) -> Path:
        return self.path / "generator.safetensors"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def save_config(self, config: RunConfig) -> None:
        config.save(self.config_path)

    def load_config(self) -> RunConfig:
        if not self.config_path.is_file():
            raise RunError(f"{self.path}: not a pix2pix run folder (no config.json); train one with "
                           "`pix2pix train --data DIR --out RUN`")
        try:
            return RunConfig.load(self.config_path)
        except ConfigError as err:
            raise RunError(str(err)) from err

    def save_generator(self, state: dict[str, torch.Tensor], step: int) -> None:
        """Serialized in memory and written by Python, so that a failed write is an OSError with its reason
        (safetensors' own writer reports a full disk as a serializing error)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        write_bytes_atomic(self.generator_path, save(tensors, metadata={"step": str(step)}))

    def generator_step(self) -> int | None:
        """The step of the saved generator weights; None when there are none that can be read."""
        try:
            with safe_open(str(self.generator_path), framework="pt") as weights:
                return int((weights.metadata() or {})["step"])
        except (SafetensorError, OSError, KeyError, ValueError):
            return None

    def load_generator_weights(self) -> dict[str, torch.Tensor]:
        if not self.generator_path.is_file():
            raise RunError(f"{self.path}: no generator.safetensors yet; the run has not saved a checkpoint")
        try:
            return load_file(str(self.generator_path))
        except (SafetensorError, OSError) as err:
            raise RunError(f"{self.generator_path}: unreadable weights ({err}); copy the run folder again, or "
                           f"rewrite them from its newest checkpoint with `pix2pix train --out {self.path} "
                           "--resume` (which, for a finished run, only rewrites them)") from err

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (a save in progress is a hidden temporary file, not listed)."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = [p for p in self.checkpoint_dir.iterdir() if CHECKPOINT_PATTERN.match(p.name)]
        return sorted(found, key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)))

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Writes the new checkpoint completely before pruning old ones, so one good checkpoint always exists."""
        path = self.checkpoint_path(step)
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            torch.save(state, file)  # to a Python file, so that a failed write is an OSError with its reason
        for old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def remove_incomplete_saves(self) -> None:
        """Temporary files left by a process killed while writing any file of the run (see `atomic_path`)."""
        if self.path.is_dir():
            for leftover in self.path.rglob(".*.tmp"):
                if TEMPORARY_NAME.match(leftover.name):
                    leftover.unlink(missing_ok=True)

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoint_dir / f"step_{step:08d}.pt"

    def load_checkpoint(self, step: int) -> dict[str, Any]:
        """The checkpoint of `step`, which another process chose: in a run over several machines, the run folder
        must be the same folder for all of them (a shared filesystem)."""
        path = self.checkpoint_path(step)
        if not path.is_file():
            raise RunError(f"{path}: not found on this machine; a run on several machines needs its run folder on "
                           "a filesystem they all share")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure to read is this one problem
            raise RunError(f"{path}: unreadable checkpoint ({err})") from err

    def load_latest_checkpoint(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads; an unreadable one is reported and skipped."""
        for path in reversed(self.checkpoints()):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 - any failure to read means: try the previous one
                warnings.warn(f"{path}: unreadable checkpoint skipped ({err})", stacklevel=2)
        return None


def load_generator(run: RunDir | Path | str) -> tuple[UNetGenerator, RunConfig]:
    """The run's generator with its latest weights, and its config: all that translating, exporting and serving
    need, built from the folder alone."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    config = run.load_config()
    generator = build_generator(config)
    weights = run.load_generator_weights()
    refuse_non_finite(weights, run.generator_path)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as err:
        raise RunError(f"{run.generator_path}: weights do not match {run.config_path} ({err})") from err
    return generator, config


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors holding a NaN or an infinity."""
    return [name for name, tensor in tensors.items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def refuse_non_finite(weights: dict[str, torch.Tensor], path: Path) -> None:
    """Weights of a diverged run translate every image to black; better no image and the reason."""
    bad = non_finite(weights)
    if bad:
        raise RunError(f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values (first: {bad[0]}); "
                       "the run diverged before they were saved; retrain with a lower `lr`")
