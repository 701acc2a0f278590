"""`pix2pix demo`: the whole method on embedded data, from nothing to a report, in minutes on a CPU."""

from __future__ import annotations

import math
from pathlib import Path

from pix2pix.config import RunConfig
from pix2pix.data.synthetic import generate_facades
from pix2pix.evaluation.report import ReportRow, write_run_report, write_translation_report
from pix2pix.inference import Translator, translate_files
from pix2pix.runs import RunDir
from pix2pix.training.loop import train

TRAIN_IMAGES, VAL_IMAGES, TEST_IMAGES = 300, 20, 12


def demo_config(data: Path, size: int, steps: int, seed: int) -> RunConfig:
    """The paper's defaults at a small size and half width (ngf = ndf = 32, so a 2-core CPU finishes in minutes):
    jitter scaled as 286/256, half the epochs at constant lr, half decaying, cut at `steps` iterations."""
    epochs = math.ceil(steps / TRAIN_IMAGES)
    return RunConfig().updated({
        "data": str(data), "ngf": 32, "ndf": 32, "crop_size": size, "load_size": round(size * 286 / 256),
        "n_epochs": math.ceil(epochs / 2), "n_epochs_decay": epochs - math.ceil(epochs / 2), "max_steps": steps,
        "seed": seed, "save_every": 500, "num_samples": 6, "val_images": VAL_IMAGES, "num_workers": 1,
    })


def run_demo(out: Path, size: int = 128, steps: int = 1500, seed: int = 0) -> Path:
    """Makes the facades data, trains (resuming an interrupted demo), translates the test split, reports."""
    out = Path(out)
    data = out / "data"
    if not (data / "palette.json").exists():
        print(f"Writing the embedded facades dataset to {data} ...")
        generate_facades(data, train=TRAIN_IMAGES, val=VAL_IMAGES, test=TEST_IMAGES, size=size, seed=seed)
    run = RunDir(out / "run")
    config = demo_config(data, size, steps, seed)
    print(f"Training {steps} iterations at {size}x{size} into {run.path} ...")
    train(config, run.path, resume=bool(run.checkpoints()))
    translator = Translator.load(run.path, mode="paper", seed=seed)
    summary = translate_files(translator, [data / "test"], out / "test", aligned=True)
    rows = [ReportRow(f.name, f.input, f.output, f.target) for f in summary.done]
    write_translation_report(out / "test", rows, "pix2pix demo: test split (paper mode)", run.path)
    return write_run_report(run.path, rows, "Test split, translated in paper mode")
