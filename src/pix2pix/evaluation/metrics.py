"""Scores of a generated image against its target, and the paper's colour statistics, on numpy arrays.

PSNR and SSIM are scikit-image's, so that numbers compare with other papers'; only the L1 and the histogram
intersection are written here, being one line each. scikit-image is the `eval` extra, imported when first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

LAB_CHANNELS = ("L", "a", "b")
LAB_RANGES = ((0.0, 100.0), (-128.0, 128.0), (-128.0, 128.0))
"""CIE Lab's range for L and the usual 8-bit range for a and b: sRGB colours fall well inside."""
LAB_BINS = 64
SSIM_WINDOW = 7
INSTALL_HINT = 'pip install "pix2pix[eval]"'


class MissingDependency(ImportError):
    """scikit-image is not installed; the message says how to install it."""


@dataclass(frozen=True)
class PixelScores:
    """One image's scores: L1 in [0, 1] intensity, PSNR in dB (inf for identical images), SSIM."""

    l1: float
    psnr: float
    ssim: float


def skimage_module(name: str):
    """`skimage.NAME`, or a one-line MissingDependency: metrics are an extra so that training does not need it."""
    try:
        import importlib

        return importlib.import_module(f"skimage.{name}")
    except ImportError as err:
        raise MissingDependency(f"evaluation needs scikit-image: {INSTALL_HINT}") from err


def as_unit(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Samples as float64 in [0, 1], so that 8- and 16-bit images score on one scale."""
    return pixels.astype(np.float64) / (2**bit_depth - 1)


def pixel_scores(pred: np.ndarray, target: np.ndarray) -> PixelScores:
    """L1, PSNR and SSIM of two H x W x C images in [0, 1] (`as_unit`), data range 1."""
    metrics = skimage_module("metrics")
    l1 = float(np.mean(np.abs(pred - target)))
    with np.errstate(divide="ignore"):  # identical images: PSNR is infinite, not a warning
        psnr = float(metrics.peak_signal_noise_ratio(target, pred, data_range=1.0))
    window = min(SSIM_WINDOW, _largest_odd(min(pred.shape[:2])))
    ssim = float(metrics.structural_similarity(target, pred, data_range=1.0, channel_axis=2, win_size=window))
    return PixelScores(l1, psnr, ssim)


def _largest_odd(n: int) -> int:
    """SSIM's window must be odd and fit the image."""
    return n if n % 2 else n - 1


def lab_counts(rgb: np.ndarray) -> np.ndarray:
    """3 x LAB_BINS histogram counts of L, a and b over an H x W x 3 RGB image in [0, 1]."""
    lab = skimage_module("color").rgb2lab(rgb).reshape(-1, 3)
    return np.stack([np.histogram(lab[:, i], bins=LAB_BINS, range=LAB_RANGES[i])[0] for i in range(3)])


def bin_edges(channel: int) -> np.ndarray:
    return np.linspace(*LAB_RANGES[channel], LAB_BINS + 1)


def intersection(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    """Sum of the minimum of two normalised histograms: 1 for equal distributions, 0 for disjoint ones."""
    return float(np.minimum(counts_a / counts_a.sum(), counts_b / counts_b.sum()).sum())


@dataclass(frozen=True)
class ScoredImage:
    """A generated image, its target and their scores: one row of metrics.csv and of the report."""

    name: str
    pred: Path
    target: Path
    scores: PixelScores
