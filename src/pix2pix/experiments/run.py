"""`pix2pix experiments`: run the chosen suites and write each one's table and figure, with what made them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pix2pix.experiments.suites import Budget, Evaluation, Result, run_suite, suites_named
from pix2pix.experiments.tables import write_tables
from pix2pix.runs import RunDir

TITLES = {"losses": "Losses (the paper's Table 1)", "generators": "Generators (the paper's Table 2)",
          "patches": "Discriminator receptive field, L1+cGAN (the paper's Table 3)"}


def run_experiments(suite: str, settings: Mapping[str, Any], file: Path | None, out: Path, budget: Budget,
                    evaluation: Evaluation | None = None) -> list[Path]:
    """Trains and evaluates every variant of `suite` (or of all), then writes out/SUITE.md, .csv and .png."""
    out, evaluation = Path(out), evaluation or Evaluation()
    written = []
    for name in suites_named(suite):
        results = run_suite(name, settings, file, out, budget, evaluation)
        written += write_tables(out, name, TITLES[name], results, provenance(out, results, evaluation))
    return written


def provenance(out: Path, results: list[Result], evaluation: Evaluation) -> list[str]:
    """What every variant shared, read back from a run: data, budget, seed, sizes, and how it was scored."""
    config = RunDir(out / "runs" / results[0].variant.key).load_config()
    d, m, t = config.data, config.model, config.train
    images = len(list(results[0].images.glob("*_input.png")))
    steps = "whole schedule" if t.max_steps is None else f"{t.max_steps} steps"
    return [
        f"data: `{d.data}` ({d.direction}); scored on its `{evaluation.split}` split ({images} images)",
        f"budget: {steps}, {t.n_epochs} + {t.n_epochs_decay} epochs (constant + decaying learning rate), batch "
        f"{t.batch_size}; seed {t.seed} for every variant",
        f"networks: ngf {m.ngf}, ndf {m.ndf}, norm {m.norm}, {d.preprocess} {d.load_size} -> {d.crop_size}",
        f"evaluation: paper mode (dropout on, batch statistics) with seed {t.seed}",
    ]
