"""The training loop: set up, then epochs of D/G steps with the loss log, checkpoints, Ctrl-C and records.

Under torchrun (or `pix2pix train --processes`) every process runs this loop on its share of each global batch
(see processes.py); rank 0 alone writes the run folder. Set-up errors of any process stop all of them with its
message, before the first step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pix2pix.config import RunConfig, TrainConfig
from pix2pix.data.dataset import EpochSampler, PairedDataset, training_loader
from pix2pix.data.validate import screen_for_training
from pix2pix.devices import DeviceError, check_precision
from pix2pix.runs import RunDir
from pix2pix.training.checkpoints import Checkpoints, Position, seed_dropout
from pix2pix.training.processes import Processes
from pix2pix.training.records import LossLog, Recorder, read_metrics
from pix2pix.training.settings import fitted_to_the_data
from pix2pix.training.step import Diverged, Networks
from pix2pix.training.tensorboard_log import TensorBoardLog, require_tensorboard


@dataclass
class TrainResult:
    """Where the run is, the step it stopped at, whether Ctrl-C (or SIGTERM: `stop_signal`) stopped it, and
    RUN/metrics.json."""

    run_dir: Path
    step: int
    interrupted: bool
    metrics: dict[str, float]
    stop_signal: int = signal.SIGINT


def train(config: RunConfig, run_dir: Path | str, resume: bool = False) -> TrainResult:
    """Trains in this process, or, started by `pix2pix train --processes` or torchrun, as one of its processes
    (see docs/distributed.md). Channel counts the config leaves unset come from the data, and sizes the networks
    cannot train on are refused, before anything is written (`fitted_to_the_data`, and `tensorboard` without
    its package)."""
    if config.train.tensorboard:
        require_tensorboard()
    config = fitted_to_the_data(config)
    processes = Processes.from_environment()
    with processes.joined(config.machine.dist_timeout), contextlib.ExitStack() as closing:
        return train_process(processes, config, RunDir(run_dir), resume, closing)


def train_process(processes: Processes, config: RunConfig, run: RunDir, resume: bool,
                  closing: contextlib.ExitStack) -> TrainResult:
    """This process's part of the run: sets up, then trains until the schedule ends, `max_steps` is reached or
    Ctrl-C; always ends on a checkpoint. What it opens, `closing` closes."""
    t = config.train
    device = processes.all_ready(lambda: training_device(config, processes))
    checkpoints = Checkpoints(run, config, processes)
    if resume:
        checkpoint = checkpoints.to_resume_from()
    else:
        checkpoints.refuse_to_overwrite()
        checkpoint = None
    data = screened_data(config, run, processes, device)
    if processes.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.save_config(config)
    torch.manual_seed(t.seed)
    networks = Networks(config, device, processes)
    if checkpoint is not None:
        position = checkpoints.restore(checkpoint, networks)
    else:
        position = Position()
        seed_dropout(t.seed, processes.rank, step=0)
    board = None
    if t.tensorboard and processes.is_main:
        board = closing.enter_context(TensorBoardLog(run.path, position.step))
    log = LossLog(run.path / "losses.jsonl" if processes.is_main else None, t.log_every,
                  combine=lambda values: processes.mean(values, device), board=board)
    log.truncate_after(position.step)
    recorder = Recorder(run.path, data.held_out, data.held_out_is_val, t.num_samples, t.val_images, log, device,
                        writes=processes.is_main, translates=processes.is_main or config.model.norm == "syncbatch")
    if processes.is_main:
        tell_batch(config, processes, len(data.dataset), device)
    if position.step == 0:
        recorder.record(networks.generator, position.epoch, position.step, initial=True)
    else:
        catch_up(run, networks, recorder, position, t, processes)

    with StopRequest() as stop:
        while not finished(position, t):
            data.sampler.set_epoch(position.epoch, start=position.images)
            with epoch_progress(position, t, len(data.dataset), processes) as bar:
                for batch in data.loader:
                    losses = networks.step(batch)  # one D step, then one G step
                    position.advance(len(batch["input"]) * processes.world_size, len(data.dataset))
                    log.add(losses, position.step, position.epoch, networks.lr)
                    bar.set_postfix(log.latest, refresh=False)
                    bar.update(1)
                    if processes.any(stop.requested, device):
                        save_if_finite(checkpoints, networks, log, position)
                        if processes.is_main:
                            print(f"\nInterrupted: checkpoint of step {position.step} saved in "
                                  f"{run.checkpoint_dir}", file=sys.stderr)
                        return TrainResult(run.path, position.step, True, read_metrics(run.path), stop.signal)
                    if max_steps_reached(position, t):
                        break
                    if checkpoint_due(position, t, len(data.dataset)):
                        save_if_finite(checkpoints, networks, log, position)
            if position.images >= len(data.dataset):
                position.next_epoch()
                networks.end_epoch()
            save_if_finite(checkpoints, networks, log, position)
            recorder.record(networks.generator, position.epoch, position.step)
    return TrainResult(run.path, position.step, False, read_metrics(run.path))


class StopRequest:
    """Turns Ctrl-C (and SIGTERM) into a request that the loop honours between iterations, so the checkpoint
    it then writes is of a finished step. A second Ctrl-C interrupts at once, unless it comes within
    `GRACE_S` of the first: torchrun passes the terminal's Ctrl-C on to its workers, which then get it twice."""

    GRACE_S = 2.0

    def __init__(self) -> None:
        self.requested = False
        self.requested_at = 0.0
        self.signal = signal.SIGINT
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
            self.requested, self.requested_at, self.signal = True, now, signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def save_if_finite(checkpoints: Checkpoints, networks: Networks, log: LossLog, position: Position) -> None:
    """A checkpoint, unless the weights hold a NaN or an infinity: then training stops and the checkpoints and
    generator saved before stay the newest. The check costs one sync per checkpoint, none per step."""
    bad = networks.non_finite_weights()
    if bad:
        where = log.first_non_finite() or f"weights `{bad[0]}` are not finite after step {position.step}"
        raise Diverged(where)
    checkpoints.save(networks, position)


def catch_up(run: RunDir, networks: Networks, recorder: Recorder, position: Position, t: TrainConfig,
             processes: Processes) -> None:
    """On resume, what a process stopped after the checkpoint left undone: the generator weights of its step,
    and the record of an epoch's (or the run's) end; and the TensorBoard records of its step."""
    if processes.is_main and run.generator_step() != position.step:
        run.save_generator(networks.generator.state_dict(), position.step)
    due = position.images == 0 or max_steps_reached(position, t)
    if processes.main_tells(due and processes.is_main and not recorder.recorded(position.step)):
        recorder.record(networks.generator, position.epoch, position.step)
    recorder.restore_board(position.step)


# --- set-up ---------------------------------------------------------------------------------------------------


def training_device(config: RunConfig, processes: Processes) -> torch.device:
    """This process's device, checked for the precision and norm asked for before any work starts."""
    device = processes.device(config.machine.device)
    check_precision(device, config.train.precision)
    if config.model.norm == "syncbatch" and processes.distributed and device.type != "cuda":
        raise DeviceError(f"`norm` syncbatch needs CUDA devices (PyTorch syncs batch norm on GPUs only; this run "
                          f"is on {device}); use `norm` batch (statistics per process) or instance")
    return device


@dataclass
class TrainingData:
    """The usable pairs as this process reads them: its share of each epoch, and the held-out images that the
    records translate (the val split, else training images without jitter)."""

    dataset: PairedDataset
    sampler: EpochSampler
    loader: DataLoader
    held_out: PairedDataset
    held_out_is_val: bool


def screened_data(config: RunConfig, run: RunDir, processes: Processes, device: torch.device) -> TrainingData:
    """Every file of the train and val splits is checked before the first step (see `on_bad_file`); the list of
    problems goes to RUN/bad_files.json, which is written even when the run stops there, and what each file held
    to RUN/checked_files.json, so a resume re-reads only changed files. Rank 0 checks, for all processes."""
    c = config

    def screen() -> tuple[list, list]:
        report = screen_for_training(Path(c.data.data), c.data.layout, c.data.on_bad_file,
                                     run.path / "bad_files.json", workers=c.machine.num_workers,
                                     checked=run.path / "checked_files.json")
        return report.usable_pairs("train"), report.usable_pairs("val")

    pairs, held_out = processes.main_decides(screen)
    dataset = PairedDataset(pairs, c.data, c.model.input_nc, c.model.output_nc, train=True, seed=c.train.seed)
    sampler = EpochSampler(len(pairs), c.train.seed, c.train.batch_size, processes.rank, processes.world_size)
    loader = training_loader(dataset, sampler, c.train.batch_size, c.machine.num_workers,
                             pin_memory=device.type == "cuda")
    held_out_set = PairedDataset(held_out or pairs, c.data, c.model.input_nc, c.model.output_nc, train=False)
    return TrainingData(dataset, sampler, loader, held_out_set, bool(held_out))


def tell_batch(config: RunConfig, processes: Processes, pairs: int, device: torch.device) -> None:
    """The batch a step really averages over, and the learning rate, which is not scaled with it."""
    t, world = config.train, processes.world_size
    split = f"{world} processes x {t.batch_size} = " if world > 1 else ""
    print(f"pix2pix: {pairs} training pairs; effective batch {split}{t.batch_size * world} image(s) per step; "
          f"lr {t.lr:g}; on {device}", file=sys.stderr)


# --- the loop's questions -------------------------------------------------------------------------------------


def total_epochs(t: TrainConfig) -> int:
    return t.n_epochs + t.n_epochs_decay


def max_steps_reached(position: Position, t: TrainConfig) -> bool:
    return t.max_steps is not None and position.step >= t.max_steps


def finished(position: Position, t: TrainConfig) -> bool:
    return position.epoch >= total_epochs(t) or max_steps_reached(position, t)


def checkpoint_due(position: Position, t: TrainConfig, epoch_size: int) -> bool:
    """Every `save_every` steps, except at an epoch's end, which saves anyway."""
    return bool(t.save_every) and position.step % t.save_every == 0 and position.images < epoch_size


def epoch_progress(position: Position, t: TrainConfig, epoch_size: int, processes: Processes) -> tqdm:
    """The progress bar of the current epoch, on rank 0."""
    global_batch = t.batch_size * processes.world_size
    return tqdm(total=math.ceil(epoch_size / global_batch), initial=position.images // global_batch,
                desc=f"epoch {position.epoch + 1}/{total_epochs(t)}", unit="it", dynamic_ncols=True, leave=False,
                file=sys.stderr, mininterval=1.0, disable=not processes.is_main)
