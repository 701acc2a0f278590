"""What every benchmark here shares: interleaved timing, the machine's matmul peak, starvation checks, output."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
CPU = torch.device("cpu")


@dataclass
class Timing:
    """Wall seconds of repeated calls, with the process CPU time of each (to tell a starved host)."""

    name: str
    walls: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.walls), max(self.walls)


def timed(timing: Timing, fn: Callable[[], object]) -> None:
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    fn()
    wall = time.perf_counter() - start_wall
    timing.walls.append(wall)
    timing.cpu_ratios.append((time.process_time() - start_cpu) / wall)


SETTLE_SECONDS = 0.05
"""Idle time after each timed call, outside the timing: ONNX Runtime's threads keep spinning for a while after a
call returns, and without the pause they took the cores from whichever variant ran next (measured 10-40% slower)."""


def interleave(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, Timing]:
    """Runs each variant `warmup` times, then round-robin `repeats` times, so drift of a noisy host hits all."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    timings = {name: Timing(name) for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            timed(timings[name], fn)
            time.sleep(SETTLE_SECONDS)
    return timings


def synchronize(device: torch.device) -> None:
    """Waits for a GPU's queued work, so that a timing covers it; nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5,
                device: torch.device = CPU) -> float:
    """GFLOP/s of a large square matmul, its fastest of `repeats` calls: the most this machine's math library gets
    out of it right now, not lowered by a neighbour's burst during one call. (On a GPU, fp32 convolutions may use
    TF32, which cuDNN allows by default and this fp32 matmul does not: "of peak" can exceed 100% there.)"""
    if device.type == "cuda":
        n *= 4
    a = torch.randn(n, n, device=device).to(dtype)
    a @ a
    fastest = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ a
        synchronize(device)
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * n**3 / fastest / 1e9


def starved(timings: dict[str, Timing], threads: int) -> bool:
    """The host gives this process much less than `threads` cores when CPU time per wall second is far below."""
    ratios = [r for t in timings.values() for r in t.cpu_ratios]
    return statistics.median(ratios) < 0.75 * threads


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def proc_status_mib(field: str) -> float | None:
    """One memory line of /proc/self/status (Linux), in MiB; None where there is no such file."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(f"{field}:")), None)


def peak_rss_mib() -> float:
    """This process's own peak RSS: getrusage's ru_maxrss survives exec, so a child started by a big parent
    would report the parent's size, while Linux's VmHWM belongs to the child's own memory."""
    peak = proc_status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Resident memory now (falls back to the peak where /proc is missing)."""
    now = proc_status_mib("VmRSS")
    return now if now is not None else peak_rss_mib()


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o)) + "\n")
    return path
