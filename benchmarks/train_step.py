"""Seconds per training iteration at the paper's defaults, the project's paths against a naive baseline; peak
memory of each; and the share of a real training run's time spent waiting for data.

    python benchmarks/train_step.py                  # 256x256, batch 1 and 4
    python benchmarks/train_step.py --size 64 --repeats 2 --data-steps 5   # a quick smoke run
    python benchmarks/train_step.py --device cuda    # on a GPU: also fp16 with a gradient scaler

The baseline is what a straightforward implementation does: the same models and losses in fp32, eager, NCHW,
PyTorch's own layers, with PyTorch's default (unfused, per-parameter) Adam. The project's paths (G with the CPU
kernels of `with_cpu_kernels` on a CPU): fp32
(the default layouts: channels_last for D's activations on CPU, for both nets on CUDA), fp32 and bf16 with both
nets in NCHW, bf16 autocast and fp16 autocast with a gradient scaler; a precision the device cannot run
at speed (bf16 on CPUs without native bf16, fp16 off CUDA and MPS) is skipped, with the reason. Every variant's
step runs in this one process, interleaved, so a noisy host slows them alike; the table gives ratios to the
baseline measured in the same run, and "of peak" compares each variant's FLOP rate with a large matmul's in its own
precision, timed in the same run. Peak memory comes from each variant run alone in a fresh process: max RSS on
the CPU, the most memory torch allocated on a GPU. On a GPU every timed step ends by waiting for the GPU.

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
from common import (  # noqa: E402
    interleave,
    machine,
    matmul_peak,
    peak_rss_mib,
    print_table,
    rss_mib,
    starved,
    synchronize,
    write_json,
)

from pix2pix.config import MachineConfig, RunConfig  # noqa: E402
from pix2pix.data.dataset import EpochSampler, PairedDataset, find_pairs, images_in, training_loader  # noqa: E402
from pix2pix.data.synthetic import generate_facades  # noqa: E402
from pix2pix.devices import (  # noqa: E402
    AUTOCAST_DTYPES,
    DeviceError,
    check_precision,
    resolve_device,
)
from pix2pix.training.step import Networks  # noqa: E402

MAPS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "maps" / "train"
BASELINE = "naive fp32 baseline"
PAPER_LOAD_RATIO = 286 / 256



Settings = dict | None
"""A variant: settings applied to the paper's config, or None for the naive baseline."""


def naive_trainer(config: RunConfig, device: torch.device) -> Networks:
    """The project's models in plain PyTorch layers (G trained directly, not through `with_cpu_kernels`) and NCHW,
    with PyTorch's default Adam."""
    trainer = Networks(config.updated({"memory_format": "contiguous"}), device)
    trainer.generator_replica = trainer.generator
    t = config.train
    for name, net in (("generator", trainer.generator), ("discriminator", trainer.discriminator)):
        trainer.optimizers[name] = torch.optim.Adam(net.parameters(), lr=t.lr, betas=(t.beta1, t.beta2),
                                                    foreach=False)
    return trainer


def build_trainer(settings: Settings, config: RunConfig, device: torch.device) -> Networks:
    if settings is None:
        return naive_trainer(config, device)
    return Networks(config.updated(settings), device)


def all_variants(device: torch.device) -> dict[str, Settings]:
    """The default layouts (`auto`) against NCHW for both nets, in fp32 and bf16: what `auto`'s channels_last
    (both nets on CUDA, D's activations on CPU) gains."""
    return {BASELINE: None, "pix2pix fp32 (default)": {},
            "pix2pix fp32 NCHW": {"memory_format": "contiguous"},
            "pix2pix bf16 autocast": {"precision": "bf16"},
            "pix2pix bf16 NCHW": {"precision": "bf16", "memory_format": "contiguous"},
            "pix2pix fp16 autocast": {"precision": "fp16"}}


def runnable_variants(device: torch.device) -> dict[str, Settings]:
    """The variants this device can run at speed; a precision it would emulate is named and left out."""
    variants = {}
    for name, settings in all_variants(device).items():
        try:
            check_precision(device, (settings or {}).get("precision", "fp32"))
        except DeviceError as err:
            print(f"skipped {name}: {err}", file=sys.stderr)
            continue
        variants[name] = settings
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


def flops_per_step(trainer: Networks, batch: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        trainer.step(batch)
    return counter.get_total_flops()


def timed_step(trainer: Networks, batch: dict) -> None:
    trainer.step(batch)
    synchronize(trainer.device)


def precision_of(settings: Settings) -> str:
    return (settings or {}).get("precision", "fp32")


def matmul_peaks(precisions: set[str], device: torch.device) -> dict[str, float]:
    """The matmul peak in each precision timed: a bf16 step's "of peak" is against the bf16 peak (AMX or tensor
    cores run it several times faster than fp32)."""
    return {precision: matmul_peak(AUTOCAST_DTYPES.get(precision, torch.float32), device=device)
            for precision in sorted(precisions)}


def measure(size: int, batch_size: int, repeats: int, device: torch.device) -> list[dict]:
    """One row per variant: its step timed interleaved with the others', and its peak memory run alone."""
    config = paper_config(size, batch_size)
    batch = random_batch(size, batch_size)
    variants = runnable_variants(device)
    trainers = {name: build_trainer(settings, config, device) for name, settings in variants.items()}
    flops = flops_per_step(next(iter(trainers.values())), batch)
    precisions = {precision_of(settings) for settings in variants.values()}
    peaks_before = matmul_peaks(precisions, device)
    timings = interleave({name: (lambda t=t: timed_step(t, batch)) for name, t in trainers.items()}, repeats)
    peaks_after = matmul_peaks(precisions, device)  # before and after: a neighbour's burst cannot lower the peak
    peaks = {precision: max(peaks_before[precision], peaks_after[precision]) for precision in precisions}
    del trainers
    base = timings[BASELINE].median
    rows = []
    for name, timing in timings.items():
        low, high = timing.spread
        peak = peaks[precision_of(variants[name])]
        rows.append({"variant": name, "size": size, "batch": batch_size,
                     "s/it": f"{timing.median:.3f}", "spread": f"{low:.3f}-{high:.3f}",
                     "s/image": f"{timing.median / batch_size:.3f}", "speedup": f"{base / timing.median:.2f}x",
                     "GFLOP/s": f"{flops / timing.median / 1e9:.0f}",
                     "of peak": f"{flops / timing.median / 1e9 / peak:.0%}",
                     "cpu/wall": f"{statistics.median(timing.cpu_ratios):.2f}",
                     **memory_of(name, size, batch_size, device),
                     "walls": timing.walls, "gflop_per_step": flops / 1e9, "matmul_peak_gflops": peak})
    if device.type == "cpu" and starved(timings, torch.get_num_threads()):
        warn_starved(f"size {size} batch {batch_size}", rows)
    return rows


def warn_starved(what: str, rows: list[dict]) -> None:
    """Timings from a host that gave this process far fewer cores than it asked for must not pass as real."""
    print(f"WARNING: starved host at {what}: CPU time per wall second is far below {torch.get_num_threads()} "
          "threads; these timings are not representative.", file=sys.stderr)
    for row in rows:
        row["starved"] = True


def step_memory(name: str, size: int, batch_size: int, device: torch.device, steps: int = 3) -> dict:
    """Peak memory of this process over a few steps of one variant (max RSS; on a GPU, what torch allocated
    there), and how much of it the steps added to the built models (activations, gradients, Adam's state); run
    by `memory_of` in a process of its own."""
    batch = random_batch(size, batch_size)
    trainer = build_trainer(all_variants(device)[name], paper_config(size, batch_size), device)
    gpu = device.type == "cuda"
    built = torch.cuda.memory_allocated(device) / 2**20 if gpu else rss_mib()
    for _ in range(steps):
        timed_step(trainer, batch)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if gpu else peak_rss_mib()
    return {"peak MiB": round(peak), "step MiB": round(peak - built)}


def memory_of(name: str, size: int, batch_size: int, device: torch.device) -> dict:
    """Each variant's own peak: a fresh process, so no other variant's buffers or freed memory count."""
    child = subprocess.run([sys.executable, __file__, "--memory-of", name, "--size", str(size),
                            "--batch", str(batch_size), "--device", str(device)],
                           capture_output=True, text=True, check=True)
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


def naive_loader(folder: Path, config: RunConfig, workers: int, device: torch.device) -> DataLoader:
    """A plain DataLoader (nor workers nor pinned memory, whatever the device)."""
    return DataLoader(NaivePairs(images_in(folder), config.data.load_size, config.data.crop_size),
                      batch_size=config.train.batch_size, shuffle=True, num_workers=workers)


def project_loader(folder: Path, config: RunConfig, workers: int, device: torch.device) -> DataLoader:
    """The data path of `pix2pix train`: PairedDataset (decoding, paired jitter) through training_loader, in
    pinned memory for a GPU."""
    pairs = find_pairs(folder)
    dataset = PairedDataset(pairs, config.data, *config.channels, train=True)
    return training_loader(dataset, EpochSampler(len(pairs), config.train.seed), config.train.batch_size, workers,
                           pin_memory=device.type == "cuda")


LoaderFactory = Callable[[Path, RunConfig, int, torch.device], DataLoader]
DATA_VARIANTS: dict[str, tuple[Settings, LoaderFactory, int]] = {
    BASELINE: (None, naive_loader, 0),
    "pix2pix fp32, no workers": ({}, project_loader, 0),
    "pix2pix fp32 (default)": ({}, project_loader, MachineConfig().num_workers),
}


def endless(loader: DataLoader) -> Iterator[dict]:
    """Epoch after epoch, so that a small folder still feeds a run of any length."""
    while True:
        yield from loader


def waits_and_steps(trainer: Networks, loader: DataLoader, warmup: int,
                    steps: int) -> tuple[list[float], list[float]]:
    """Wall seconds each iteration waits for its batch, and spends in the step, after `warmup` iterations
    that start the workers; the loader and its workers end when this returns."""
    batches = endless(loader)
    for _ in range(warmup):
        timed_step(trainer, next(batches))
    waits, step_times = [], []
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        timed_step(trainer, batch)
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


def data_run(name: str, folder: Path, size: int, batch_size: int, steps: int, device: torch.device,
             warmup: int = 3) -> dict:
    """One short training run of a data variant: mean wait and step per iteration, and the wait's share."""
    settings, loader_for, workers = DATA_VARIANTS[name]
    config = paper_config(size, batch_size)
    trainer = build_trainer(settings, config, device)
    cpu, wall = tree_cpu_seconds(), time.perf_counter()
    waits, step_times = waits_and_steps(trainer, loader_for(folder, config, workers, device), warmup, steps)
    gc.collect()
    cpu_per_wall = (tree_cpu_seconds() - cpu) / (time.perf_counter() - wall)
    wait, step = sum(waits), sum(step_times)
    return {"variant": name, "size": size, "batch": batch_size, "workers": workers,
            "s/it": f"{(wait + step) / steps:.3f}", "wait s/it": f"{wait / steps:.3f}",
            "step s/it": f"{step / steps:.3f}", "wait share": f"{wait / (wait + step):.1%}",
            "cpu/wall": f"{cpu_per_wall:.2f}", "waits": waits, "steps": step_times,
            **({"starved": True} if device.type == "cpu" and data_starved(cpu_per_wall, wait, step, workers)
               else {})}


def data_folder(requested: Path | None, scratch: Path) -> Path:
    """The folder asked for, else the shared maps set (1200x600 JPEGs), else synthetic facade PNGs made in
    `scratch`."""
    if requested is not None:
        return requested
    if MAPS.is_dir():
        return MAPS
    return generate_facades(scratch, train=32, val=0, test=0) / "train"


def data_rows(folder: Path, size: int, batches: list[int], steps: int, device: torch.device) -> list[dict]:
    rows = [data_run(name, folder, size, batch_size, steps, device)
            for batch_size in batches for name in DATA_VARIANTS]
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
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to time the GPU paths")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        device = resolve_device(args.device)
    except DeviceError as err:
        sys.exit(f"train_step.py: {err}")
    if args.memory_of:
        print(json.dumps(step_memory(args.memory_of, args.size, args.batch[0], device)))
        return
    rows = [row for batch in args.batch for row in measure(args.size, batch, args.repeats, device)]
    print_table(rows, ["variant", "size", "batch", "s/it", "spread", "s/image", "speedup", "GFLOP/s", "of peak",
                       "cpu/wall", "peak MiB", "step MiB"])
    with tempfile.TemporaryDirectory(prefix="train_step_") as scratch:
        folder = data_folder(args.data, Path(scratch)) if args.data_steps else None
        data = data_rows(folder, args.size, args.batch, args.data_steps, device) if folder else []
    if data:
        print(f"\nData wait, {args.data_steps} iterations per run, files from {folder}:")
        print_table(data, ["variant", "batch", "workers", "s/it", "wait s/it", "step s/it", "wait share",
                           "cpu/wall"])
    payload = {"machine": machine(), "device": str(device), "peak_rss_mib": peak_rss_mib(), "rows": rows,
               "data_folder": str(folder) if folder else None, "data_rows": data}
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    path = write_json(f"train_step_{args.size}{suffix}", payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
