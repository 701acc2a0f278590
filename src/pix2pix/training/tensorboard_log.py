"""The run's records also as TensorBoard event files in RUN/tensorboard/ (`tensorboard`), for those who watch runs
there; losses.jsonl and samples/ stay the records that a resume and the report read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.evaluation.metrics import MissingDependency

FOLDER = "tensorboard"
INSTALL_HINT = 'pip install "pix2pix[tensorboard]"'
TAGS = {"lr": "schedule/lr", "sec_per_it": "speed/sec_per_it", "val_L1": "held_out/val_L1",
        "train_L1": "held_out/train_L1"}
"""The tag of each number of a losses.jsonl line that is not a loss; a loss NAME is `loss/NAME`."""
NOT_SCALARS = ("step", "epoch")


def require_tensorboard() -> None:
    """A run that asks for TensorBoard where it is not installed stops before it writes anything."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as err:
        raise MissingDependency(f"`tensorboard` needs the tensorboard package: {INSTALL_HINT}") from err


def tag_of(name: str) -> str:
    return TAGS.get(name, f"loss/{name}")


class TensorBoardLog:
    """One event file per (resumed) run in RUN/tensorboard/, flushed at every record so that a kill loses none.

    A run that starts at step S (0, or a resume's checkpoint) begins its file with a restart marker at S:
    TensorBoard then drops what earlier files hold from step S on, which the run writes again (`restore` the
    records of step S that it does not redo), so that each step has once the values that losses.jsonl keeps.
    """

    def __init__(self, run: Path, start: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run / FOLDER), purge_step=start)
        self.start = start
        self.written_at_start: set[str] = set()

    def scalars(self, record: dict) -> None:
        """A losses.jsonl line: the losses, the learning rate and the speed of a log interval, or a held-out L1."""
        for name, value in record.items():
            if name not in NOT_SCALARS:
                self.writer.add_scalar(tag_of(name), value, record["step"])
                self.note(tag_of(name), record["step"])
        self.writer.flush()

    def image(self, grid: Image.Image, step: int) -> None:
        """A sample grid (input | output | target rows), as samples/ has it."""
        self.writer.add_image("samples", np.asarray(grid), step, dataformats="HWC")
        self.note("samples", step)
        self.writer.flush()

    def note(self, tag: str, step: int) -> None:
        if step == self.start:
            self.written_at_start.add(tag)

    def restore(self, records: list[dict], grid: Path) -> None:
        """The records of the step this run started at, kept from the stopped run, that it has not written again."""
        for record in records:
            self.scalars({name: value for name, value in record.items()
                          if name in NOT_SCALARS or tag_of(name) not in self.written_at_start})
        if "samples" not in self.written_at_start and grid.is_file():
            with Image.open(grid) as image:
                self.image(image.convert("RGB"), self.start)

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()
