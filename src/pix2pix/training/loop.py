"""The training loop: epochs of D/G steps, with checkpoints, exact resume, Ctrl-C and what the run records."""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pix2pix.atomic import write_text_atomic
from pix2pix.config import RunConfig
from pix2pix.data.dataset import EpochSampler, PairedDataset, training_loader
from pix2pix.data.validate import screen_for_training
from pix2pix.devices import DeviceError, check_precision
from pix2pix.evaluation.report import write_run_report
from pix2pix.runs import RunDir, RunError
from pix2pix.training import distributed
from pix2pix.training.distributed import SINGLE_PROCESS, Ranks
from pix2pix.training.records import LossLog, mean_l1, translate_batches, write_sample_grid
from pix2pix.training.settings import with_channels_of_the_data
from pix2pix.training.step import Pix2PixTrainer


@dataclass
class Position:
    """Where training is: the epoch, the images of it done (by all processes), and iterations done in all.
    Counting images rather than batches lets a run resume with another batch size or number of processes."""

    epoch: int = 0
    images: int = 0
    step: int = 0


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    metrics: dict[str, float]


class StopRequest:
    """Turns Ctrl-C (and SIGTERM) into a request that the loop honours between iterations, so the checkpoint
    it then writes is of a finished step. A second Ctrl-C interrupts at once, unless it comes within
    `GRACE_S` of the first: torchrun passes the terminal's Ctrl-C on to its workers, which then get it twice."""

    GRACE_S = 2.0

    def __init__(self) -> None:
        self.requested = False
        self.requested_at = 0.0
        self.previous = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum, frame) -> None:
        now = time.monotonic()
        if self.requested and signum == signal.SIGINT and now - self.requested_at > self.GRACE_S:
            raise KeyboardInterrupt
        if not self.requested:
            self.requested, self.requested_at = True, now

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class Trainer:
    """One run: builds everything from the config, restores the newest checkpoint on resume, then loops.

    Under torchrun there is one Trainer per process: each trains on its share of every global batch, and rank 0
    alone writes the run folder (config, checkpoints, log, samples, report). Set-up errors of any process stop
    all of them with its message, before the first step.
    """

    def __init__(self, config: RunConfig, run_dir: Path | str, resume: bool = False,
                 ranks: Ranks = SINGLE_PROCESS) -> None:
        self.config = config
        self.ranks = ranks
        self.run = RunDir(run_dir)
        self.device = self._prepare_device()
        checkpoint = self._checkpoint_to_resume() if resume else self._check_fresh_run()
        self._build_data()
        if ranks.is_main:
            self.run.path.mkdir(parents=True, exist_ok=True)
            self.run.save_config(config)
        torch.manual_seed(config.train.seed)
        self.model = Pix2PixTrainer(config, self.device, ranks)
        self.position = Position()
        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            self._seed_dropout(step=0)
        self.log = LossLog(self.run.path / "losses.jsonl" if ranks.is_main else None, config.train.log_every,
                           combine=lambda values: distributed.mean_over_ranks(ranks, values, self.device))
        self.log.truncate_after(self.position.step)
        self._tell_batch()

    def _prepare_device(self) -> torch.device:
        """This process's device, checked for the precision and norm asked for; all processes agree first."""
        error = device = None
        try:
            device = distributed.process_device(self.config.machine.device, self.ranks)
            check_precision(device, self.config.train.precision)
            self._check_norm(device)
        except (DeviceError, RunError) as err:
            error = err
        distributed.agree(self.ranks, error)
        return device

    def _check_norm(self, device: torch.device) -> None:
        if self.config.model.norm == "syncbatch" and self.ranks.distributed and device.type != "cuda":
            raise DeviceError(f"--norm syncbatch needs CUDA devices (PyTorch syncs batch norm on GPUs only; this "
                              f"run is on {device}); use --norm batch (statistics per process) or instance")

    def _check_fresh_run(self) -> None:
        def check() -> None:
            if self.run.checkpoints():
                raise RunError(f"{self.run.path} already holds a trained run; continue it with --resume, "
                               "or choose another --out")
        distributed.share_from_main(self.ranks, check)
        return None

    def _checkpoint_to_resume(self) -> dict:
        """Rank 0 picks the newest readable checkpoint; every process loads that same one."""
        found: dict[str, dict] = {}

        def newest_step() -> int:
            self.run.remove_incomplete_saves()
            checkpoint = self.run.load_latest_checkpoint()
            if checkpoint is None:
                unreadable = len(self.run.checkpoints())
                raise RunError(f"{self.run.path}: none of its {unreadable} checkpoint(s) could be read (see the "
                               "warnings above); start a new run with another --out" if unreadable else
                               f"{self.run.path}: no checkpoint to resume from")
            found["checkpoint"] = checkpoint
            return checkpoint["position"]["step"]

        step = distributed.share_from_main(self.ranks, newest_step)
        checkpoint = error = None
        try:
            checkpoint = found.get("checkpoint") or self.run.load_checkpoint(step)
        except RunError as err:
            error = err
        distributed.agree(self.ranks, error)
        return checkpoint

    def _restore(self, checkpoint: dict) -> None:
        if set(checkpoint["position"]) != set(vars(Position())):
            raise RunError(f"{self.run.checkpoint_dir}: the newest checkpoint was written by an older pix2pix "
                           "(it counts batches, not images); start a new run with another --out")
        self.model.load_training_state(checkpoint["training"])
        self.position = Position(**checkpoint["position"])
        rng = checkpoint["rng"]
        if len(rng["torch"]) != self.ranks.world_size:
            self._seed_dropout(self.position.step)
            return
        torch.set_rng_state(rng["torch"][self.ranks.rank])
        if self.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"][self.ranks.rank], self.device)

    def _seed_dropout(self, step: int) -> None:
        """Each process draws its own dropout noise. A run resumed with another number of processes cannot
        continue the saved streams, so each process starts a new one from (seed, rank, step)."""
        if self.ranks.rank > 0 or step > 0:
            torch.manual_seed(hash((self.config.train.seed, self.ranks.rank, step)) % 2**63)

    def _tell_batch(self) -> None:
        """The batch a step really averages over, and the learning rate, which is not scaled with it."""
        if not self.ranks.is_main:
            return
        t, world = self.config.train, self.ranks.world_size
        split = f"{world} processes x {t.batch_size} = " if world > 1 else ""
        print(f"pix2pix: {len(self.dataset)} training pairs; effective batch {split}{self.global_batch} "
              f"image(s) per step; lr {t.lr:g}; on {self.device}", file=sys.stderr)

    def _build_data(self) -> None:
        """Every file of the train and val splits is checked before the first step (see --on-bad-file); the
        list of problems goes to RUN/bad_files.json, which is written even when the run stops there, and what
        each file held to RUN/checked_files.json, so a resume re-reads only changed files. Rank 0 checks, for
        all processes."""
        c = self.config

        def screen() -> tuple[list, list]:
            report = screen_for_training(Path(c.data.data), c.data.layout, c.data.on_bad_file,
                                         self.run.path / "bad_files.json", workers=c.machine.num_workers,
                                         checked=self.run.path / "checked_files.json")
            return report.usable_pairs("train"), report.usable_pairs("val")

        pairs, held_out = distributed.share_from_main(self.ranks, screen)
        self.dataset = PairedDataset(pairs, c.data, c.model.input_nc, c.model.output_nc, train=True,
                                     seed=c.train.seed)
        self.sampler = EpochSampler(len(pairs), c.train.seed, c.train.batch_size, self.ranks.rank,
                                    self.ranks.world_size)
        self.loader = training_loader(self.dataset, self.sampler, c.train.batch_size, c.machine.num_workers,
                                      pin_memory=self.device.type == "cuda")
        self.held_out = PairedDataset(held_out or pairs, c.data, c.model.input_nc, c.model.output_nc, train=False)
        self.has_val = bool(held_out)

    @property
    def global_batch(self) -> int:
        return self.config.train.batch_size * self.ranks.world_size

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.dataset) / self.global_batch)

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
        self.sampler.set_epoch(pos.epoch, start=pos.images)
        bar = tqdm(total=self.steps_per_epoch, initial=pos.images // self.global_batch,
                   desc=f"epoch {pos.epoch + 1}/{self.total_epochs}", unit="it", dynamic_ncols=True, leave=False,
                   file=sys.stderr, mininterval=1.0, disable=not self.ranks.is_main)
        with bar:
            for batch in self.loader:
                losses = self.model.step(batch)
                pos.step += 1
                pos.images = min(len(self.dataset), pos.images + len(batch["input"]) * self.ranks.world_size)
                self.log.add(losses, pos.step, pos.epoch, self.model.lr)
                bar.set_postfix(self.log.latest, refresh=False)
                bar.update(1)
                if distributed.any_rank(self.ranks, stop.requested, self.device):
                    self.save_checkpoint()
                    if self.ranks.is_main:
                        print(f"\nInterrupted: checkpoint of step {pos.step} saved in {self.run.checkpoint_dir}; "
                              "continue with --resume", file=sys.stderr)
                    return True
                if self._max_steps_reached():
                    break
                if t.save_every and pos.step % t.save_every == 0 and pos.images < len(self.dataset):
                    self.save_checkpoint()
        if pos.images >= len(self.dataset):
            pos.epoch += 1
            pos.images = 0
            self.model.end_epoch()
        self.save_checkpoint()
        self.record()
        return False

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes the checkpoint, with every process's random state (so an equal number of processes
        resumes exactly); returns its path there, None elsewhere."""
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        every_rng = distributed.gather_to_main(self.ranks, rng)
        if not self.ranks.is_main:
            return None
        state = {"training": self.model.training_state(), "position": vars(self.position).copy(),
                 "rng": {"torch": [r["torch"] for r in every_rng],
                         "cuda": [r["cuda"] for r in every_rng] if self.device.type == "cuda" else None},
                 "config": self.config.to_dict()}
        path = self.run.save_checkpoint(state, self.position.step, self.config.train.keep_checkpoints)
        self.run.save_generator(self.model.generator.state_dict(), self.position.step)
        return path

    def record(self, initial: bool = False) -> None:
        """Sample grid, held-out L1, loss plot and report: what a user looks at while a run trains. Rank 0
        records; with synchronized batch norm every process translates too, since its layers work together."""
        if not (self.ranks.is_main or self.config.model.norm == "syncbatch"):
            return
        c, step = self.config.train, self.position.step
        count = min(len(self.held_out), max(c.num_samples, c.val_images))
        triples = translate_batches(self.model.generator, self.held_out, range(count), self.device)
        if not self.ranks.is_main:
            return
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
    """Trains in this process, or, started by --processes or torchrun, as one of its processes (see
    docs/distributed.md). Channel counts the config leaves unset come from the data (`resolve_config`)."""
    config = with_channels_of_the_data(config)
    ranks = Ranks.from_environment()
    distributed.start(ranks, config.machine.dist_timeout)
    finished = False
    try:
        result = Trainer(config, run_dir, resume, ranks).fit()
        finished = True
        return result
    except RuntimeError as err:
        if ranks.distributed and distributed.is_peer_failure(err):
            raise distributed.lost_peer(err) from err
        raise
    finally:
        distributed.stop(ranks, finished)
