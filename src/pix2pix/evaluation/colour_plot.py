"""The paper's colour figure: histograms of L, a and b of generated against real pixels, on a log scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pix2pix.atomic import atomic_path
from pix2pix.evaluation.metrics import LAB_CHANNELS, bin_edges


def plot_colour_histograms(generated: np.ndarray, real: np.ndarray, intersections: dict[str, float],
                           out_png: Path) -> Path:
    """Writes one panel per Lab channel, as in the paper's Figure 7, atomically so a report never shows half."""
    figure = Figure(figsize=(12, 3.2), layout="constrained")
    for channel, axis in enumerate(figure.subplots(1, 3)):
        name = LAB_CHANNELS[channel]
        for counts, label, color in ((real, "real", "black"), (generated, "generated", "tab:red")):
            density = counts[channel] / max(counts[channel].sum(), 1)
            axis.stairs(density, bin_edges(channel), label=label, color=color)
        axis.set_yscale("log")
        axis.set_title(f"{name} (intersection {intersections[name]:.3f})")
        axis.set_xlabel(name)
        axis.legend()
    figure.axes[0].set_ylabel("fraction of pixels")
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return out_png
