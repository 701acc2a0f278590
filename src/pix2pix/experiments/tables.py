"""A suite's results in the paper's layout: rows are variants, columns metrics, as Markdown and CSV, and one figure
of the same test inputs translated by every variant."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from pix2pix.atomic import atomic_path, write_text_atomic
from pix2pix.experiments.suites import Result

FIGURE_INPUTS = 4
"""Test inputs shown per suite figure, the first by file name."""
SHARED = ("FID floor (real halves)",)
"""Scores of the real images alone: one value for all variants, so it goes under the table, not in a column."""
REFERENCE = re.compile(r"^(FCN .+) \((.+)\)$")
"""The FCN-score of the reference (the real photos, or the most common class), a row of its own as in the paper."""
REFERENCE_LABELS = {"real photos": "Ground truth (real photos)",
                    "most common class": "Every pixel the most common class"}


def metric_columns(results: Sequence[Result]) -> list[str]:
    columns: list[str] = []
    for result in results:
        columns += [name for name in result.scores
                    if name not in columns and name not in SHARED and not REFERENCE.match(name)]
    return columns


def reference_rows(results: Sequence[Result]) -> dict[str, dict[str, float]]:
    """The references' FCN-scores by row label: the same for every variant, read from the first that has them."""
    rows: dict[str, dict[str, float]] = {}
    for name, value in results[0].scores.items():
        match = REFERENCE.match(name)
        if match:
            label = REFERENCE_LABELS.get(match.group(2), match.group(2))
            rows.setdefault(label, {})[match.group(1)] = value
    return rows


def markdown_table(title: str, results: Sequence[Result], notes: Sequence[str]) -> str:
    columns = metric_columns(results)
    lines = [f"## {title}", "", "| variant | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    rows = [(result.variant.label, result.scores) for result in results] + list(reference_rows(results).items())
    for label, scores in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(scores.get(name)) for name in columns) + " |")
    shared = {name: value for result in results for name, value in result.scores.items() if name in SHARED}
    notes = [*notes, *(f"{name}: {_cell(value)}" for name, value in shared.items())]
    return "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"


def csv_table(results: Sequence[Result]) -> str:
    columns = metric_columns(results)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["variant", "key", *columns])
    for result in results:
        writer.writerow([result.variant.label, result.variant.key,
                         *(_number(result.scores.get(name)) for name in columns)])
    for label, scores in reference_rows(results).items():
        writer.writerow([label, "", *(_number(scores.get(name)) for name in columns)])
    return text.getvalue()


def write_tables(out: Path, suite: str, title: str, results: Sequence[Result], notes: Sequence[str]) -> list[Path]:
    """out/SUITE.md, SUITE.csv and SUITE.png."""
    markdown, table_csv, figure = out / f"{suite}.md", out / f"{suite}.csv", out / f"{suite}.png"
    write_text_atomic(markdown, markdown_table(title, results, notes))
    write_text_atomic(table_csv, csv_table(results))
    plot_variants(results, figure)
    return [markdown, table_csv, figure]


def plot_variants(results: Sequence[Result], out_png: Path) -> Path:
    """Columns: input, each variant's output, ground truth; rows: the same first test inputs, as the paper's
    figures show an ablation."""
    names = sorted(path.name for path in results[0].images.glob("*_input.png"))[:FIGURE_INPUTS]
    stems = [name.removesuffix("_input.png") for name in names]
    columns = [("Input", lambda stem: results[0].images / f"{stem}_input.png")]
    columns += [(result.variant.label, lambda stem, r=result: r.images / f"{stem}.png") for result in results]
    columns += [("Ground truth", lambda stem: results[0].images / f"{stem}_target.png")]
    figure = Figure(figsize=(1.6 * len(columns), 1.6 * len(stems) + 0.5), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(stems), len(columns), squeeze=False))
    for row, stem in enumerate(stems):
        for column, (label, path_of) in enumerate(columns):
            axis = axes[row, column]
            axis.imshow(np.asarray(Image.open(path_of(stem)).convert("RGB")))
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(label, fontsize=8)
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return out_png


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return "inf" if math.isinf(value) else f"{value:.6g}"


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
