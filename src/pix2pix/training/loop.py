"""The training loop: epochs of D/G steps, with checkpoints, exact resume, Ctrl-C and what the run records."""

from __future__ import annotations

import json
import math
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pix2pix.atomic import write_text_atomic
from pix2pix.config import RunConfig
from pix2pix.data.dataset import EpochSampler, PairedDataset, training_loader
from pix2pix.data.validate import screen_for_training
from pix2pix.devices import check_precision, resolve_device
from pix2pix.evaluation.report import write_run_report
from pix2pix.runs import RunDir, RunError
from pix2pix.training.records import LossLog, mean_l1, translate_batches, write_sample_grid
from pix2pix.training.step import Pix2PixTrainer


@dataclass
class Position:
    """Where training is: the epoch, the batches done in it, and iterations done in all."""

    epoch: int = 0
    batch: int = 0
    step: int = 0


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    metrics: dict[str, float]


class StopRequest:
    """Turns Ctrl-C (and SIGTERM) into a request that the loop honours between iterations, so the checkpoint
    it then writes is of a finished step. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class Trainer:
    """One run: builds everything from the config, restores the newest checkpoint on resume, then loops."""

    def __init__(self, config: RunConfig, run_dir: Path | str, resume: bool = False) -> None:
        self.config = config
        self.run = RunDir(run_dir)
        self.device = resolve_device(config.train.device)
        check_precision(self.device, config.train.precision)
        checkpoint = self._checkpoint_to_resume() if resume else self._check_fresh_run()
        self._build_data()
        self.run.path.mkdir(parents=True, exist_ok=True)
        self.run.save_config(config)
        torch.manual_seed(config.train.seed)
        self.model = Pix2PixTrainer(config, self.device)
        self.position = Position()
        if checkpoint is not None:
            self._restore(checkpoint)
        self.log = LossLog(self.run.path / "losses.jsonl", config.train.log_every)
        self.log.truncate_after(self.position.step)

    def _check_fresh_run(self) -> None:
        if self.run.checkpoints():
            raise RunError(f"{self.run.path} already holds a trained run; continue it with --resume, "
                           "or choose another --out")
        return None

    def _checkpoint_to_resume(self) -> dict:
        self.run.remove_incomplete_saves()
        checkpoint = self.run.load_latest_checkpoint()
        if checkpoint is None:
            raise RunError(f"{self.run.path}: no checkpoint to resume from")
        return checkpoint

    def _restore(self, checkpoint: dict) -> None:
        self.model.load_training_state(checkpoint["training"])
        self.position = Position(**checkpoint["position"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and checkpoint["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], self.device)

    def _build_data(self) -> None:
        """Every file of the train and val splits is checked before the first step (see --on-bad-file); the
        list of problems goes to RUN/bad_files.json, which is written even when the run stops there."""
        c = self.config
        report = screen_for_training(Path(c.data.data), c.data.layout, c.data.on_bad_file,
                                     self.run.path / "bad_files.json", workers=c.data.num_workers)
        pairs = report.usable_pairs("train")
        self.dataset = PairedDataset(pairs, c.data, c.model.input_nc, c.model.output_nc, train=True,
                                     seed=c.train.seed)
        self.sampler = EpochSampler(len(pairs), c.train.seed)
        self.loader = training_loader(self.dataset, self.sampler, c.train.batch_size, c.data.num_workers,
                                      pin_memory=self.device.type == "cuda")
        held_out = report.usable_pairs("val")
        self.held_out = PairedDataset(held_out or pairs, c.data, c.model.input_nc, c.model.output_nc, train=False)
        self.has_val = bool(held_out)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.dataset) / self.config.train.batch_size)

    @property
    def total_epochs(self) -> int:
        return self.config.train.n_epochs + self.config.train.n_epochs_decay

    def _max_steps_reached(self) -> bool:
        max_steps = self.config.train.max_steps
        return max_steps is not None and self.position.step >= max_steps

    def _done(self) -> bool:
        return self.position.epoch >= self.total_epochs or self._max_steps_reached()

    def fit(self) -> TrainResult:
        """Trains until the schedule ends, `max_steps` is reached or Ctrl-C; always ends on a checkpoint."""
        if self.position.step == 0:
            self.record(initial=True)
        interrupted = False
        with StopRequest() as stop:
            while not self._done() and not interrupted:
                interrupted = self._run_epoch(stop)
        return TrainResult(self.run.path, self.position.step, interrupted, self.read_metrics())

    def _run_epoch(self, stop: StopRequest) -> bool:
        """Runs the rest of the current epoch (or up to `max_steps`); returns True when stopped by a request."""
        t, pos = self.config.train, self.position
        self.sampler.set_epoch(pos.epoch, start=pos.batch * t.batch_size)
        bar = tqdm(total=self.steps_per_epoch, initial=pos.batch, desc=f"epoch {pos.epoch + 1}/{self.total_epochs}",
                   unit="it", dynamic_ncols=True, leave=False, file=sys.stderr, mininterval=1.0)
        with bar:
            for batch in self.loader:
                losses = self.model.step(batch)
                pos.step += 1
                pos.batch += 1
                self.log.add(losses, pos.step, pos.epoch, self.model.lr)
                bar.set_postfix(self.log.latest, refresh=False)
                bar.update(1)
                if stop.requested:
                    self.save_checkpoint()
                    print(f"\nInterrupted: checkpoint of step {pos.step} saved in {self.run.checkpoint_dir}; "
                          "continue with --resume", file=sys.stderr)
                    return True
                if self._max_steps_reached():
                    break
                if t.save_every and pos.step % t.save_every == 0 and pos.batch < self.steps_per_epoch:
                    self.save_checkpoint()
        if pos.batch == self.steps_per_epoch:
            pos.epoch += 1
            pos.batch = 0
            self.model.end_epoch()
        self.save_checkpoint()
        self.record()
        return False

    def save_checkpoint(self) -> Path:
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        state = {"training": self.model.training_state(), "position": vars(self.position).copy(),
                 "rng": rng, "config": self.config.to_dict()}
        path = self.run.save_checkpoint(state, self.position.step, self.config.train.keep_checkpoints)
        self.run.save_generator(self.model.generator.state_dict(), self.position.step)
        return path

    def record(self, initial: bool = False) -> None:
        """Sample grid, held-out L1, loss plot and report: what a user looks at while a run trains."""
        c, step = self.config.train, self.position.step
        count = min(len(self.held_out), max(c.num_samples, c.val_images))
        triples = translate_batches(self.model.generator, self.held_out, range(count), self.device)
        write_sample_grid(self.run.path / "samples" / f"step_{step:07d}.png", triples[: c.num_samples])
        l1 = mean_l1(triples)
        name = "val_L1" if self.has_val else "train_L1"
        self.log.write({"step": step, "epoch": self.position.epoch, name: round(l1, 6)})
        metrics = self.read_metrics()
        if initial:
            metrics = {"l1_step0": l1}
        metrics.update({"step": step, "l1_now": l1, "l1_images": count})
        write_text_atomic(self.run.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        write_run_report(self.run.path)  # also redraws losses.png

    def read_metrics(self) -> dict:
        path = self.run.path / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}


def train(config: RunConfig, run_dir: Path | str, resume: bool = False) -> TrainResult:
    return Trainer(config, run_dir, resume).fit()
