"""Seconds per training iteration at the paper's defaults, the project's paths against a naive baseline; peak
memory of each; and the share of a real training run's time spent waiting for data.

    python benchmarks/train_step.py                  # 256x256, batch 1 and 4
    python benchmarks/train_step.py --size 64 --repeats 2 --data-steps 5   # a quick smoke run

The baseline is what a straightforward implementation does: the same models and losses in fp32, eager, NCHW,
built from PyTorch's own layers, with PyTorch's default (unfused, per-parameter) Adam. The project's paths: fp32
(the default) and bf16 autocast, which runs only on CPUs with native bf16 (elsewhere it is skipped, with the
reason). Every variant's step runs in this one process, interleaved, so a noisy host slows them alike; the table
gives ratios to the baseline measured in the same run. Peak memory (max RSS) comes from each variant run alone in
a fresh process.

The data table times short training runs on real files (the shared maps set when it is there, else the embedded
synthetic facades written to a temporary folder), jittered 286 -> 256 as in training: how long each iteration
waits for its batch and how long the step takes, through the project's loader (0 and the default 2 worker
processes) and through a plain DataLoader with a straightforward dataset and no workers (the baseline's).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from common import interleave, machine, matmul_peak, peak_rss_mib, print_table, rss_mib, starved, write_json  # noqa: E402

from pix2pix.config import DataConfig, RunConfig  # noqa: E402
from pix2pix.data.dataset import EpochSampler, PairedDataset, find_pairs, images_in, training_loader  # noqa: E402
from pix2pix.data.synthetic import generate_facades  # noqa: E402
from pix2pix.devices import DeviceError, check_precision  # noqa: E402
from pix2pix.models.layers import with_plain_transposed_convs  # noqa: E402
from pix2pix.training.step import Pix2PixTrainer  # noqa: E402

MAPS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "maps" / "train"
BASELINE = "naive fp32 baseline"
PAPER_LOAD_RATIO = 286 / 256



def naive_trainer(config: RunConfig) -> Pix2PixTrainer:
    """The project's models in plain PyTorch layers, with PyTorch's default Adam."""
    trainer = Pix2PixTrainer(config, torch.device("cpu"))
    with_plain_transposed_convs(trainer.generator)
    t = config.train
    for name, net in (("generator", trainer.generator), ("discriminator", trainer.discriminator)):
        trainer.optimizers[name] = torch.optim.Adam(net.parameters(), lr=t.lr, betas=(t.beta1, t.beta2),
                                                    foreach=False)
    return trainer


def project_trainer(config: RunConfig) -> Pix2PixTrainer:
    return Pix2PixTrainer(config, torch.device("cpu"))


def bf16_trainer(config: RunConfig) -> Pix2PixTrainer:
    return project_trainer(config.updated({"precision": "bf16"}))


VARIANTS = {BASELINE: naive_trainer, "pix2pix fp32 (default)": project_trainer, "pix2pix bf16 autocast": bf16_trainer}
PRECISION_OF = {"pix2pix bf16 autocast": "bf16"}


def runnable_variants() -> dict[str, Callable[[RunConfig], Pix2PixTrainer]]:
    """The variants this CPU can run at speed; a precision it would emulate is named and left out."""
    variants = {}
    for name, build in VARIANTS.items():
        try:
            check_precision(torch.device("cpu"), PRECISION_OF.get(name, "fp32"))
        except DeviceError as err:
            print(f"skipped {name}: {err}", file=sys.stderr)
            continue
        variants[name] = build
    return variants


def paper_config(size: int, batch_size: int) -> RunConfig:
    """The paper's settings at `size`, with the jitter's load size scaled alike (286 for a crop of 256)."""
    return RunConfig().updated({"crop_size": size, "load_size": round(size * PAPER_LOAD_RATIO),
                                "batch_size": batch_size})


def random_batch(size: int, batch_size: int) -> dict[str, torch.Tensor]:
    """A fixed batch in [-1, 1]: the step's cost does not depend on the pixels, and this keeps data out of it."""
    torch.manual_seed(0)
    return {"input": torch.rand(batch_size, 3, size, size) * 2 - 1,
            "target": torch.rand(batch_size, 3, size, size) * 2 - 1}


def flops_per_step(trainer: Pix2PixTrainer, batch: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        trainer.step(batch)
    return counter.get_total_flops()


def measure(size: int, batch_size: int, repeats: int) -> list[dict]:
    """One row per variant: its step timed interleaved with the others', and its peak memory run alone."""
    config = paper_config(size, batch_size)
    batch = random_batch(size, batch_size)
    trainers = {name: build(config) for name, build in runnable_variants().items()}
    flops = flops_per_step(next(iter(trainers.values())), batch)
    peak_before = matmul_peak()
    timings = interleave({name: (lambda t=t: t.step(batch)) for name, t in trainers.items()}, repeats)
    peak = max(peak_before, matmul_peak())  # before and after: a neighbour's burst at one moment cannot lower it
    del trainers
    base = timings[BASELINE].median
    rows = []
    for name, timing in timings.items():
        low, high = timing.spread
        rows.append({"variant": name, "size": size, "batch": batch_size,
                     "s/it": f"{timing.median:.3f}", "spread": f"{low:.3f}-{high:.3f}",
                     "s/image": f"{timing.median / batch_size:.3f}", "speedup": f"{base / timing.median:.2f}x",
                     "GFLOP/s": f"{flops / timing.median / 1e9:.0f}",
                     "of peak": f"{flops / timing.median / 1e9 / peak:.0%}",
                     "cpu/wall": f"{statistics.median(timing.cpu_ratios):.2f}",
                     **memory_of(name, size, batch_size),
                     "walls": timing.walls, "gflop_per_step": flops / 1e9, "matmul_peak_gflops": peak})
    if starved(timings, torch.get_num_threads()):
        warn_starved(f"size {size} batch {batch_size}", rows)
    return rows


def warn_starved(what: str, rows: list[dict]) -> None:
    """Timings from a host that gave this process far fewer cores than it asked for must not pass as real."""
    print(f"WARNING: starved host at {what}: CPU time per wall second is far below {torch.get_num_threads()} "
          "threads; these timings are not representative.", file=sys.stderr)
    for row in rows:
        row["starved"] = True


def step_memory(name: str, size: int, batch_size: int, steps: int = 3) -> dict:
    """Max RSS of this process over a few steps of one variant, and how much of it the steps added to the built
    models (activations, gradients, Adam's state); run by `memory_of` in a process of its own."""
    batch = random_batch(size, batch_size)
    trainer = VARIANTS[name](paper_config(size, batch_size))
    built = rss_mib()
    for _ in range(steps):
        trainer.step(batch)
    peak = peak_rss_mib()
    return {"peak MiB": round(peak), "step MiB": round(peak - built)}


def memory_of(name: str, size: int, batch_size: int) -> dict:
    """Each variant's own peak: a fresh process, so no other variant's buffers or freed memory count."""
    child = subprocess.run([sys.executable, __file__, "--memory-of", name, "--size", str(size),
                            "--batch", str(batch_size)], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


class NaivePairs(Dataset):
    """What a straightforward pix2pix loader does per item: open, split A|B, resize, random crop and mirror."""

    def __init__(self, files: list[Path], load_size: int, crop_size: int) -> None:
        self.files, self.load_size, self.crop_size = files, load_size, crop_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = Image.open(self.files[index]).convert("RGB")
        width, height = image.size
        halves = image.crop((0, 0, width // 2, height)), image.crop((width // 2, 0, width, height))
        left, top = (random.randint(0, self.load_size - self.crop_size) for _ in range(2))
        flip = random.random() < 0.5
        source, target = (self.jittered(half, left, top, flip) for half in halves)
        return {"input": source, "target": target}

    def jittered(self, image: Image.Image, left: int, top: int, flip: bool) -> torch.Tensor:
        image = image.resize((self.load_size, self.load_size), Image.Resampling.BICUBIC)
        image = image.crop((left, top, left + self.crop_size, top + self.crop_size))
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)


def naive_loader(folder: Path, config: RunConfig, workers: int) -> DataLoader:
    return DataLoader(NaivePairs(images_in(folder), config.data.load_size, config.data.crop_size),
                      batch_size=config.train.batch_size, shuffle=True, num_workers=workers)


def project_loader(folder: Path, config: RunConfig, workers: int) -> DataLoader:
    """The data path of `pix2pix train`: PairedDataset (decoding, paired jitter) through training_loader."""
    pairs = find_pairs(folder)
    dataset = PairedDataset(pairs, config.data, config.model.input_nc, config.model.output_nc, train=True)
    return training_loader(dataset, EpochSampler(len(pairs), config.train.seed), config.train.batch_size, workers)


LoaderFactory = Callable[[Path, RunConfig, int], DataLoader]
DATA_VARIANTS: dict[str, tuple[Callable[[RunConfig], Pix2PixTrainer], LoaderFactory, int]] = {
    BASELINE: (naive_trainer, naive_loader, 0),
    "pix2pix fp32, no workers": (project_trainer, project_loader, 0),
    "pix2pix fp32 (default)": (project_trainer, project_loader, DataConfig().num_workers),
}


def endless(loader: DataLoader) -> Iterator[dict]:
    """Epoch after epoch, so that a small folder still feeds a run of any length."""
    while True:
        yield from loader


def waits_and_steps(trainer: Pix2PixTrainer, loader: DataLoader, warmup: int,
                    steps: int) -> tuple[list[float], list[float]]:
    """Wall seconds each iteration waits for its batch, and spends in the step, after `warmup` iterations
    that start the workers; the loader and its workers end when this returns."""
    batches = endless(loader)
    for _ in range(warmup):
        trainer.step(next(batches))
    waits, step_times = [], []
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        trainer.step(batch)
        waits.append(fetched - start)
        step_times.append(time.perf_counter() - fetched)
    batches.close()
    return waits, step_times


def tree_cpu_seconds() -> float:
    """CPU time of this process and of its finished children: loader workers count once they have exited."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def data_starved(cpu_per_wall: float, wait: float, step: float, workers: int) -> bool:
    """Like `starved`, allowing that without workers the main process decodes on one core while it waits."""
    threads = torch.get_num_threads()
    busy = threads if workers else (wait + step * threads) / (wait + step)
    return cpu_per_wall < 0.75 * busy


def data_run(name: str, folder: Path, size: int, batch_size: int, steps: int, warmup: int = 3) -> dict:
    """One short training run of a data variant: mean wait and step per iteration, and the wait's share."""
    build, loader_for, workers = DATA_VARIANTS[name]
    config = paper_config(size, batch_size)
    trainer = build(config)
    cpu, wall = tree_cpu_seconds(), time.perf_counter()
    waits, step_times = waits_and_steps(trainer, loader_for(folder, config, workers), warmup, steps)
    gc.collect()
    cpu_per_wall = (tree_cpu_seconds() - cpu) / (time.perf_counter() - wall)
    wait, step = sum(waits), sum(step_times)
    return {"variant": name, "size": size, "batch": batch_size, "workers": workers,
            "s/it": f"{(wait + step) / steps:.3f}", "wait s/it": f"{wait / steps:.3f}",
            "step s/it": f"{step / steps:.3f}", "wait share": f"{wait / (wait + step):.1%}",
            "cpu/wall": f"{cpu_per_wall:.2f}", "waits": waits, "steps": step_times,
            **({"starved": True} if data_starved(cpu_per_wall, wait, step, workers) else {})}


def data_folder(requested: Path | None, scratch: Path) -> Path:
    """The folder asked for, else the shared maps set (1200x600 JPEGs), else synthetic facade PNGs made in
    `scratch`."""
    if requested is not None:
        return requested
    if MAPS.is_dir():
        return MAPS
    return generate_facades(scratch, train=32, val=0, test=0) / "train"


def data_rows(folder: Path, size: int, batches: list[int], steps: int) -> list[dict]:
    rows = [data_run(name, folder, size, batch_size, steps) for batch_size in batches for name in DATA_VARIANTS]
    flagged = [row for row in rows if row.get("starved")]
    if flagged:
        warn_starved("the data runs", flagged)
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data-steps", type=int, default=20, help="timed iterations per data run (0: none)")
    parser.add_argument("--data", type=Path, help="aligned A|B images for the data runs (default: shared maps)")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.memory_of:
        print(json.dumps(step_memory(args.memory_of, args.size, args.batch[0])))
        return
    rows = [row for batch in args.batch for row in measure(args.size, batch, args.repeats)]
    print_table(rows, ["variant", "size", "batch", "s/it", "spread", "s/image", "speedup", "GFLOP/s", "of peak",
                       "cpu/wall", "peak MiB", "step MiB"])
    with tempfile.TemporaryDirectory(prefix="train_step_") as scratch:
        folder = data_folder(args.data, Path(scratch)) if args.data_steps else None
        data = data_rows(folder, args.size, args.batch, args.data_steps) if folder else []
    if data:
        print(f"\nData wait, {args.data_steps} iterations per run, files from {folder}:")
        print_table(data, ["variant", "batch", "workers", "s/it", "wait s/it", "step s/it", "wait share",
                           "cpu/wall"])
    payload = {"machine": machine(), "peak_rss_mib": peak_rss_mib(), "rows": rows,
               "data_folder": str(folder) if folder else None, "data_rows": data}
    path = write_json(f"train_step_{args.size}", payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
