"""The training losses of a run's losses.jsonl, drawn as one PNG: one subplot per loss, the trend over the noise.

Only numpy and matplotlib: reports are rebuilt from run folders on machines without torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pix2pix.atomic import atomic_path

NON_LOSS_KEYS = frozenset({"step", "epoch", "lr", "sec_per_it"})
MAX_SMOOTHING_WINDOW = 51


def read_loss_log(path: Path) -> list[dict[str, float]]:
    """Numeric fields of every complete JSON line of a losses.jsonl.

    A run that has not logged yet has no file, and a process killed mid-write leaves a truncated last line:
    both are normal, so unreadable lines are skipped instead of failing the report.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = (_parse_json_object(line) for line in lines if line.strip())
    return [_numeric_fields(record) for record in records if record is not None]


def _parse_json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _numeric_fields(record: dict[str, Any]) -> dict[str, float]:
    return {
        key: value
        for key, value in record.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _loss_keys(records: Sequence[dict[str, float]]) -> list[str]:
    """Every logged key that is not bookkeeping, in first-seen order (the set depends on the objective)."""
    keys = dict.fromkeys(key for record in records for key in record if key not in NON_LOSS_KEYS)
    return list(keys)


def _loss_series(records: Sequence[dict[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one loss sorted by step, without non-finite values that would poison the average."""
    pairs = [
        (record["step"], record[key])
        for record in records
        if "step" in record and key in record and math.isfinite(record[key])
    ]
    steps = np.array([step for step, _ in pairs], dtype=float)
    values = np.array([value for _, value in pairs], dtype=float)
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order]


def _smoothing_window(count: int) -> int:
    """Odd window of about a tenth of the points: visible trend without hiding the shape of short runs."""
    return min(MAX_SMOOTHING_WINDOW, 2 * (count // 20) + 1)


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of the same length; the ends average over the points that exist (no lag)."""
    kernel = np.ones(window)
    sums = np.convolve(values, kernel, mode="same")
    counts = np.convolve(np.ones_like(values), kernel, mode="same")
    return sums / counts


def plot_losses(log_path: Path, out_png: Path) -> Path | None:
    """One PNG with one subplot per loss key (G_GAN, G_L1, D_real, D_fake, ...) against step.

    The raw values are drawn faint and a moving average on top, so the trend is readable with noisy GAN
    losses. Returns None if there is nothing to plot. The PNG is written atomically so a report or viewer
    never sees a half-written file while training is still logging.
    """
    records = read_loss_log(Path(log_path))
    series = {key: _loss_series(records, key) for key in _loss_keys(records)}
    series = {key: (steps, values) for key, (steps, values) in series.items() if len(steps) > 0}
    if not series:
        return None
    figure = _loss_figure(series)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return out_png


def _loss_figure(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    columns = min(2, len(series))
    rows = math.ceil(len(series) / columns)
    figure = Figure(figsize=(6 * columns, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, (axis, (key, (steps, values))) in enumerate(zip(axes, series.items(), strict=False)):
        _plot_loss(axis, key, steps, values, color=f"C{index}")
    for axis in axes[len(series) :]:
        axis.set_visible(False)
    figure.suptitle("Training losses: raw values faint, centred moving average bold")
    return figure


def _plot_loss(axis: Axes, key: str, steps: np.ndarray, values: np.ndarray, color: str) -> None:
    window = _smoothing_window(len(values))
    marker = "o" if len(values) == 1 else None  # a lone point draws no line
    axis.plot(steps, values, color=color, alpha=0.25, linewidth=0.8, marker=marker)
    axis.plot(steps, _moving_average(values, window), color=color, linewidth=2)
    axis.set_title(f"{key}   (average over {window} points)" if window > 1 else key)
    axis.set_xlabel("step")
    axis.grid(alpha=0.3)
