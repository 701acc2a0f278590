"""The paper's ablations as suites of variants, each trained and evaluated alike (`pix2pix experiments`).

Every variant of a suite trains on the same data with the same seed and budget and is scored on the same held-out
split, in paper mode with that seed. A variant is named by what it sets (generator, objective, patch), so one that
several suites share (U-Net, L1+cGAN, 70x70) trains once. Suites resume: a trained variant is not trained again,
an interrupted one continues from its checkpoint, and an evaluation is redone only when the weights changed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pix2pix.atomic import write_text_atomic
from pix2pix.config import ConfigError, RunConfig, flatten_settings, read_settings_file
from pix2pix.data.dataset import find_pairs, split_folder
from pix2pix.data.images import DataError
from pix2pix.evaluation.evaluate import evaluate_run, table, write_outputs
from pix2pix.evaluation.fcn import FCNSettings
from pix2pix.runs import RunDir
from pix2pix.training.loop import train
from pix2pix.training.settings import resolve_config


@dataclass(frozen=True)
class Variant:
    """One row of a table: the paper's name for it and the settings it changes."""

    label: str
    objective: str
    skip_connections: bool = True
    patch: int = 70

    @property
    def key(self) -> str:
        """The folder name, the same in every suite that has this variant."""
        generator = "unet" if self.skip_connections else "encdec"
        return f"{generator}-{self.objective}-patch{self.patch}"

    def settings(self) -> dict[str, Any]:
        return {"objective": self.objective, "skip_connections": self.skip_connections, "patch": self.patch}


SUITES: dict[str, tuple[Variant, ...]] = {
    "losses": (Variant("L1", "l1"), Variant("GAN", "gan"), Variant("cGAN", "cgan"), Variant("L1+GAN", "l1+gan"),
               Variant("L1+cGAN", "l1+cgan")),
    "generators": (Variant("Encoder-decoder, L1", "l1", skip_connections=False),
                   Variant("Encoder-decoder, L1+cGAN", "l1+cgan", skip_connections=False),
                   Variant("U-Net, L1", "l1"), Variant("U-Net, L1+cGAN", "l1+cgan")),
    "patches": (Variant("1x1 (PixelGAN)", "l1+cgan", patch=1), Variant("16x16", "l1+cgan", patch=16),
                Variant("70x70", "l1+cgan", patch=70), Variant("286x286", "l1+cgan", patch=286)),
}
"""The paper's Tables 1-3 (losses; generators; discriminator receptive fields, all with L1+cGAN)."""
SUITE_NAMES = (*SUITES, "all")
VARIED = ("objective", "gan_mode", "lambda_l1", "conditional", "skip_connections", "patch")
"""Settings the suites set: given ones would be silently overridden, so they are refused."""
SCHEDULE = ("n_epochs", "n_epochs_decay", "max_steps")
"""Settings a `Budget` sets; without one, they come from the settings file or the defaults."""


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped a variant's training at a checkpoint; the same command continues it."""

    def __init__(self, signal: int) -> None:
        super().__init__("interrupted")
        self.signal = signal


@dataclass(frozen=True)
class Budget:
    """How long every variant trains: `steps` iterations or `epochs` epochs, half at a constant learning rate and
    half decaying, as the paper's schedule; neither keeps the settings' own schedule."""

    steps: int | None = None
    epochs: int | None = None

    def settings(self, train_pairs: int, batch_size: int) -> dict[str, Any]:
        if self.steps is None and self.epochs is None:
            return {}
        epochs = self.epochs or math.ceil(self.steps * batch_size / train_pairs)
        constant = math.ceil(epochs / 2)
        return {"n_epochs": constant, "n_epochs_decay": epochs - constant, "max_steps": self.steps}


@dataclass(frozen=True)
class Evaluation:
    """Where and how every variant is scored: the held-out split, FID's network, the FCN-score's settings."""

    split: str = "test"
    fid_network: Path | None = None
    fcn: FCNSettings = field(default_factory=FCNSettings)

    def stamp(self) -> dict[str, Any]:
        """What the scores depend on besides the weights, as JSON, to tell when saved scores are out of date."""
        return json.loads(json.dumps(asdict(self), default=str))


@dataclass
class Result:
    """A variant's scores, as `evaluation.evaluate.table` names them, and where its images are."""

    variant: Variant
    scores: dict[str, float]
    images: Path


def suites_named(name: str) -> list[str]:
    if name not in SUITE_NAMES:
        raise ConfigError(f"no suite {name!r}: choose one of {', '.join(SUITE_NAMES)}")
    return list(SUITES) if name == "all" else [name]


def base_settings(settings: Mapping[str, Any], file: Path | None) -> dict[str, Any]:
    """The settings every variant shares (flat), refusing those a suite varies."""
    in_file = flatten_settings(read_settings_file(file)) if file is not None else {}
    given = [name for name in VARIED if name in settings or name in in_file]
    if given:
        names = ", ".join(f"`{name}`" for name in given)
        raise ConfigError(f"the suites set {names} themselves (each variant its own); leave {names} out")
    return dict(settings)


def run_suite(suite: str, settings: Mapping[str, Any], file: Path | None, out: Path, budget: Budget,
              evaluation: Evaluation) -> list[Result]:
    """Trains (or continues) and evaluates each variant of `suite` into out/runs and out/evaluations; every
    variant's settings are checked before the first trains."""
    settings = base_settings(settings, file)
    variants = SUITES[suite]
    runs = [RunDir(out / "runs" / variant.key) for variant in variants]
    configs = [variant_config(variant, settings, file, run, budget) for variant, run in zip(variants, runs)]
    results = []
    for number, (variant, run, config) in enumerate(zip(variants, runs, configs), 1):
        print(f"[{suite} {number}/{len(variants)}] {variant.label} ({variant.key})", flush=True)
        trained(run, config, out / "trained" / f"{variant.key}.json")
        results.append(evaluated(variant, run, out, evaluation))
    return results


def variant_config(variant: Variant, settings: Mapping[str, Any], file: Path | None, run: RunDir,
                   budget: Budget) -> RunConfig:
    """The variant's settings resolved as `pix2pix train` resolves them, continuing the run when it has one."""
    first = resolve_config({**settings, **variant.settings()}, file, source="experiments")
    schedule = budget.settings(training_pairs(first), first.train.batch_size)
    resume = run.path if run.checkpoints() else None
    return resolve_config({**settings, **schedule, **variant.settings()}, file, resume=resume, source="experiments")


def trained(run: RunDir, config: RunConfig, record: Path) -> None:
    """Trains the variant, or continues it; one that finished with these settings (the machine's aside, as
    `record` holds them) is left as it is."""
    settings = {**config.to_dict(), "machine": None}
    if record.exists() and json.loads(record.read_text()) == settings and run.checkpoints():
        return
    result = train(config, run.path, resume=bool(run.checkpoints()))
    if result.interrupted:
        raise Interrupted(result.stop_signal)
    write_text_atomic(record, json.dumps(settings, indent=2))


def evaluated(variant: Variant, run: RunDir, out: Path, evaluation: Evaluation) -> Result:
    """Scores the run's latest weights on the held-out split, or reads the scores of an earlier call on them."""
    folder = out / "evaluations" / variant.key
    record = folder / "scores.json"
    config = run.load_config()
    stamp = {"step": run.generator_step(), **evaluation.stamp()}
    if record.exists():
        saved = json.loads(record.read_text())
        if saved.get("stamp") == stamp:
            return Result(variant, saved["scores"], folder / "images")
    scored = evaluate_run(run.path, Path(config.data.data), folder, evaluation.split, "paper", config.train.seed,
                          evaluation.fid_network, evaluation.fcn)
    write_outputs(scored, folder)
    scores = table(scored)
    write_text_atomic(record, json.dumps({"stamp": stamp, "scores": scores}, indent=2, allow_nan=False))
    return Result(variant, scores, folder / "images")


def training_pairs(config: RunConfig) -> int:
    folder = split_folder(Path(config.data.data), "train")
    pairs = find_pairs(folder, config.data.layout)
    if not pairs:
        raise DataError(f"{folder}: no training pairs")
    return len(pairs)
