"""Checkpoints and resume: which checkpoint a run continues from, saving one, and restoring exactly from it.

A checkpoint holds both networks with their optimizers, schedules and gradient scaler, the position, the config
and every process's random state, so that a run resumed with as many processes continues bitwise as if never
stopped; with another number of processes it continues the data order exactly and starts new dropout streams.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from pix2pix.config import RunConfig
from pix2pix.runs import RunDir, RunError
from pix2pix.training.processes import Processes
from pix2pix.training.step import Networks


@dataclass
class Position:
    """Where training is: the epoch, the images of it done (by all processes), and iterations done in all.
    Counting images rather than batches lets a run resume with another batch size or number of processes."""

    epoch: int = 0
    images: int = 0
    step: int = 0

    def advance(self, images: int, epoch_size: int) -> None:
        self.step += 1
        self.images = min(epoch_size, self.images + images)

    def next_epoch(self) -> None:
        self.epoch += 1
        self.images = 0


class Checkpoints:
    """The run's checkpoints as each of its processes sees them: rank 0 chooses and writes, every process
    restores its own random state."""

    def __init__(self, run: RunDir, config: RunConfig, processes: Processes) -> None:
        self.run, self.config, self.processes = run, config, processes

    def to_resume_from(self) -> dict | None:
        """Rank 0 picks the newest checkpoint that loads; the others then load the one of the same step. None for
        a run stopped before its first checkpoint, which starts again from step 0 on its saved settings."""
        newest = self.processes.main_does(self._newest_readable)
        step = self.processes.main_tells(newest["position"]["step"] if newest else None)
        return self.processes.all_ready(lambda: newest or (None if step is None else self.run.load_checkpoint(step)))

    def _newest_readable(self) -> dict | None:
        self.run.remove_incomplete_saves()
        saved = self.run.checkpoints()
        if not saved:
            self.run.load_config()  # refuses a folder that is not a run, with the reason
            self.refuse_weights_without_state()
            print(f"pix2pix: {self.run.path} has no checkpoint yet; training it from step 0 with its saved "
                  "settings", file=sys.stderr)
            return None
        checkpoint = self.run.load_latest_checkpoint()
        if checkpoint is None:
            raise RunError(f"{self.run.path}: none of its {len(saved)} checkpoint(s) could be read (see the "
                           "warnings above); start a new run in another folder")
        return checkpoint

    def refuse_to_overwrite(self) -> None:
        """A new run into a folder that holds a trained one stops before it writes anything."""
        def check() -> None:
            if self.run.checkpoints():
                raise RunError(f"{self.run.path} already holds a trained run; continue it with `resume`, "
                               "or train into another folder")
            self.refuse_weights_without_state()
            self.run.remove_incomplete_saves()  # of a start killed before its first checkpoint
        self.processes.main_does(check)

    def refuse_weights_without_state(self) -> None:
        """Generator weights come with a checkpoint, so weights alone are a model brought in (`pix2pix import`) or
        kept on purpose: training from step 0 would overwrite them."""
        if self.run.generator_path.exists():
            raise RunError(f"{self.run.path} holds generator weights but no training state (an imported model?); "
                           "training would overwrite them: train into another folder")

    def save(self, networks: Networks, position: Position) -> Path | None:
        """Rank 0 writes the checkpoint, with every process's random state (so an equal number of processes
        resumes exactly); returns its path there, None elsewhere."""
        cuda = networks.device.type == "cuda"
        rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(networks.device) if cuda else None}
        every_rng = self.processes.gather(rng)
        if not self.processes.is_main:
            return None
        state = {"training": networks.training_state(), "position": vars(position).copy(),
                 "rng": {"torch": [r["torch"] for r in every_rng],
                         "cuda": [r["cuda"] for r in every_rng] if cuda else None},
                 "config": self.config.to_dict()}
        path = self.run.save_checkpoint(state, position.step, self.config.train.keep_checkpoints)
        self.run.save_generator(networks.generator.state_dict(), position.step)
        return path

    def restore(self, checkpoint: dict, networks: Networks) -> Position:
        """The networks, their optimizers and this process's random state as saved, and the position to go on
        from."""
        if set(checkpoint["position"]) != set(vars(Position())):
            raise RunError(f"{self.run.checkpoint_dir}: the newest checkpoint was written by an older pix2pix "
                           "(it counts batches, not images); start a new run in another folder")
        networks.load_training_state(checkpoint["training"])
        position = Position(**checkpoint["position"])
        rng = checkpoint["rng"]
        if len(rng["torch"]) != self.processes.world_size:
            seed_dropout(self.config.train.seed, self.processes.rank, position.step)
            return position
        torch.set_rng_state(rng["torch"][self.processes.rank])
        if networks.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"][self.processes.rank], networks.device)
        return position


def seed_dropout(seed: int, rank: int, step: int) -> None:
    """Each process draws its own dropout noise: rank 0 of a new run keeps the stream of the seed, the others
    start one from (seed, rank, 0). A run resumed with another number of processes cannot continue the saved
    streams, so each process starts a new one from (seed, rank, step)."""
    if rank > 0 or step > 0:
        torch.manual_seed(hash((seed, rank, step)) % 2**63)
