"""What a run records as it trains: the loss log, sample grids and the held-out L1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from pix2pix.atomic import atomic_path
from pix2pix.data.dataset import PairedDataset
from pix2pix.data.images import preview_image, save_pil
from pix2pix.models import in_mode, with_cpu_kernels


class LossLog:
    """Losses averaged over `every` iterations, appended to a JSON-lines file one flushed line at a time.

    In a distributed run every process keeps one: `combine` averages them over the processes, and only rank 0
    has a `path` to write to.
    """

    def __init__(self, path: Path | None, every: int,
                 combine: Callable[[dict[str, float]], dict[str, float]] = lambda averages: averages) -> None:
        self.path = path
        self.every = max(1, every)
        self.combine = combine
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.latest: dict[str, float] = {}
        self.window_start = time.perf_counter()

    def truncate_after(self, step: int) -> None:
        """On resume, drops lines written after the checkpoint, which the resumed run will write again."""
        if self.path is None or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))

    def add(self, losses: dict[str, torch.Tensor], step: int, epoch: int, lr: float) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.count += 1
        if step % self.every == 0:
            averages = self.combine({name: float(total) / self.count for name, total in self.sums.items()})
            self.latest = {name: round(value, 6) for name, value in averages.items()}
            now = time.perf_counter()
            seconds = round((now - self.window_start) / self.count, 4)
            self.write({"step": step, "epoch": epoch, "lr": lr, "sec_per_it": seconds, **self.latest})
            self.sums, self.count, self.window_start = {}, 0, now

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as log:
            log.write(json.dumps(record) + "\n")


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


def write_sample_grid(path: Path, triples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
    """Rows of input | output | target, so a glance shows how close the outputs are."""
    rows = [[preview_image(t) for t in triple] for triple in triples]
    width, height = rows[0][0].size
    grid = Image.new("RGB", (3 * width, len(rows) * height))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            grid.paste(image, (c * width, r * height))
    with atomic_path(path) as tmp:
        save_pil(grid, tmp)


def mean_l1(triples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> float:
    """Mean absolute error between output and target in the [-1, 1] range."""
    return float(torch.stack([(out - target).abs().mean() for _, out, target in triples]).mean())
