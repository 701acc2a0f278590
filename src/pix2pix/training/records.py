"""What a run records as it trains: the loss log, and at step 0 and each epoch end sample grids, the held-out L1,
metrics.json and the report."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from pix2pix.atomic import atomic_path, write_text_atomic
from pix2pix.data.dataset import PairedDataset
from pix2pix.data.tensors import preview_image
from pix2pix.data.writing import save_pil
from pix2pix.evaluation.report import write_run_report
from pix2pix.models import in_mode, with_cpu_kernels
from pix2pix.training.step import Diverged
from pix2pix.training.tensorboard_log import TensorBoardLog

HELD_OUT_KEYS = ("val_L1", "train_L1")


class LossLog:
    """Losses averaged over `every` iterations, appended to a JSON-lines file one flushed line at a time.

    In a distributed run every process keeps one: `combine` averages them over the processes, and only rank 0
    has a `path` to write to (and a `board`, TensorBoard's copy of every line).
    """

    def __init__(self, path: Path | None, every: int,
                 combine: Callable[[dict[str, float]], dict[str, float]] = lambda averages: averages,
                 board: TensorBoardLog | None = None) -> None:
        self.path = path
        self.board = board
        self.every = max(1, every)
        self.combine = combine
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.window: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.latest: dict[str, float] = {}
        self.window_start = time.perf_counter()

    def truncate_after(self, step: int) -> None:
        """On resume, drops lines written after the checkpoint, which the resumed run will write again."""
        self.keep_only(lambda record: record["step"] <= step)

    def keep_only(self, keep: Callable[[dict], bool]) -> None:
        """Rewrites the log with the lines `keep` accepts (and without unreadable ones), if that drops any."""
        lines = self.lines()
        kept = [line for line in lines if holds(line, keep)]
        if len(kept) < len(lines):
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept))

    def has_held_out_line(self, step: int) -> bool:
        return any(holds(line, lambda record: is_held_out_line(record, step)) for line in self.lines())

    def records_at(self, step: int) -> list[dict]:
        """The readable lines of `step`."""
        return [json.loads(line) for line in self.lines() if holds(line, lambda record: record["step"] == step)]

    def lines(self) -> list[str]:
        if self.path is None or not self.path.exists():
            return []
        return self.path.read_text().splitlines()

    def add(self, losses: dict[str, torch.Tensor], step: int, epoch: int, lr: float) -> None:
        """Sums the losses, and every `every` steps logs their averages: reading them is the one sync, and where
        the divergence check happens, at no cost to the steps in between."""
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.count += 1
        self.window.append((step, losses))
        if step % self.every == 0:
            averages = self.combine({name: float(total) / self.count for name, total in self.sums.items()})
            self.refuse_non_finite(averages)
            self.latest = {name: round(value, 6) for name, value in averages.items()}
            now = time.perf_counter()
            seconds = round((now - self.window_start) / self.count, 4)
            self.write({"step": step, "epoch": epoch, "lr": lr, "sec_per_it": seconds, **self.latest})
            self.sums, self.count, self.window, self.window_start = {}, 0, [], now

    def refuse_non_finite(self, averages: dict[str, float]) -> None:
        """Stops training at the first NaN or infinite loss, which the averages of every process carry."""
        bad = [name for name, value in averages.items() if not math.isfinite(value)]
        if bad:
            raise Diverged(self.first_non_finite() or f"loss `{bad[0]}` is {averages[bad[0]]} in the steps "
                           f"{self.window[0][0]}-{self.window[-1][0]}")

    def first_non_finite(self) -> str | None:
        """'loss `G_GAN` is nan at step 7' for the first non-finite loss of this process since the last line."""
        for step, losses in self.window:
            for name, value in losses.items():
                if not math.isfinite(float(value)):
                    return f"loss `{name}` is {float(value)} at step {step}"
        return None

    def write(self, record: dict) -> None:
        """Appends one line; a failed write leaves the file as it was and names it."""
        if self.path is None:
            return
        with open(self.path, "a") as log:
            size = log.tell()
            try:
                log.write(json.dumps(record) + "\n")
                log.flush()
            except OSError as err:
                log.truncate(size)
                raise OSError(err.errno, err.strerror, str(self.path)) from err
        if self.board is not None:
            self.board.scalars(record)


def holds(line: str, test: Callable[[dict], bool]) -> bool:
    """Whether a log line is readable and passes `test`; an unreadable or incomplete line passes none."""
    try:
        return bool(test(json.loads(line)))
    except (ValueError, KeyError, TypeError):
        return False


def is_held_out_line(record: dict, step: int) -> bool:
    return record["step"] == step and any(key in record for key in HELD_OUT_KEYS)


def translate_batches(generator: torch.nn.Module, dataset: PairedDataset, indices: Sequence[int],
                      device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(input, output, target) per image, one at a time in the paper's test mode, without touching the
    training RNG (so that recording does not change what training does next) or the generator."""
    paper = in_mode(generator, "paper")
    if device.type == "cpu":
        paper = with_cpu_kernels(paper)
    results = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(0)
        for index in indices:
            item = dataset[index]
            output = paper(item["input"].unsqueeze(0).to(device))[0].cpu()
            results.append((item["input"], output, item["target"]))
    return results


def write_sample_grid(path: Path, triples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> Image.Image:
    """Rows of input | output | target, so a glance shows how close the outputs are."""
    rows = [[preview_image(t) for t in triple] for triple in triples]
    width, height = rows[0][0].size
    grid = Image.new("RGB", (3 * width, len(rows) * height))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            grid.paste(image, (c * width, r * height))
    with atomic_path(path) as tmp:
        save_pil(grid, tmp)
    return grid


def mean_l1(triples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> float:
    """Mean absolute error between output and target in the [-1, 1] range."""
    return float(torch.stack([(out - target).abs().mean() for _, out, target in triples]).mean())


@dataclass
class Recorder:
    """What a user looks at while a run trains: sample grid, held-out L1, loss plot and report. Rank 0 `writes`;
    with synchronized batch norm every process `translates` too, since its layers work together."""

    run: Path
    held_out: PairedDataset
    held_out_is_val: bool
    num_samples: int
    val_images: int
    log: LossLog
    device: torch.device
    writes: bool
    translates: bool

    def record(self, generator: torch.nn.Module, epoch: int, step: int, initial: bool = False) -> None:
        """Done again in full by a resume that finds it incomplete (see `recorded`), so each part may exist."""
        if not self.translates:
            return
        count = min(len(self.held_out), max(self.num_samples, self.val_images))
        triples = translate_batches(generator, self.held_out, range(count), self.device)
        if not self.writes:
            return
        grid = write_sample_grid(self.sample_path(step), triples[: self.num_samples])
        if self.log.board is not None:
            self.log.board.image(grid, step)
        l1 = mean_l1(triples)
        self.log.keep_only(lambda record: not is_held_out_line(record, step))
        self.log.write({"step": step, "epoch": epoch, "val_L1" if self.held_out_is_val else "train_L1": round(l1, 6)})
        metrics = {"l1_step0": l1} if initial else read_metrics(self.run)
        metrics.update({"step": step, "l1_now": l1, "l1_images": count})
        write_text_atomic(self.run / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        write_run_report(self.run)  # also redraws losses.png

    def restore_board(self, step: int) -> None:
        """A resumed run's TensorBoard file gets again the records of its first step that it did not redo."""
        if self.writes and self.log.board is not None:
            self.log.board.restore(self.log.records_at(step), self.sample_path(step))

    def sample_path(self, step: int) -> Path:
        return self.run / "samples" / f"step_{step:07d}.png"

    def recorded(self, step: int) -> bool:
        """Whether the record of `step` was written in full: its grid, its held-out line, metrics.json of its
        step, and the report written after them (a process killed in between leaves one of them missing)."""
        metrics, report = self.run / "metrics.json", self.run / "report.html"
        return (self.sample_path(step).is_file() and self.log.has_held_out_line(step)
                and read_metrics(self.run).get("step") == step
                and report.is_file() and report.stat().st_mtime_ns >= metrics.stat().st_mtime_ns)


def read_metrics(run: Path) -> dict:
    """RUN/metrics.json: the held-out L1 at step 0 and now."""
    path = run / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}
