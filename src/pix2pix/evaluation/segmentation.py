"""Label maps as classes and the FCN-score's three numbers (Long et al., 2015), on numpy arrays.

A palette names the classes and the colour that paints each; pixels are snapped to the nearest palette colour, so
generated (imperfect) label maps can be scored too. A palette can be learned from label maps by k-means (scipy's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pix2pix.data.images import DataError

PALETTE_FORMS = 'give {"classes": [{"name": ..., "color": [r, g, b]}, ...]} or a list of [r, g, b] colours'
KMEANS_PIXELS = 200_000
"""k-means sees at most this many pixels, drawn at random: enough for a handful of colours, and quick."""


@dataclass(frozen=True)
class Palette:
    """The classes of a label map: names, and K x 3 uint8 colours in the same order."""

    names: tuple[str, ...]
    colors: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def as_json(self) -> list[dict[str, object]]:
        return [{"name": name, "color": [int(c) for c in color]} for name, color in zip(self.names, self.colors)]


def palette_from_colors(colors: list[list[int]] | np.ndarray, names: list[str] | None = None) -> Palette:
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    return Palette(tuple(names or (f"class {i}" for i in range(len(colors)))), colors)


def load_palette(path: Path) -> Palette:
    """A palette file: palette.json as the embedded facades write it ({"classes": [{"name", "color"}]}), or a plain
    JSON list of [r, g, b] colours."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DataError.about(path, "palette file not found", "check the `palette` path") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError.about(path, f"not valid JSON ({err})", PALETTE_FORMS) from err
    classes = value.get("classes") if isinstance(value, dict) else value
    try:
        named = all(isinstance(item, dict) for item in classes)
        colors = np.asarray([item["color"] for item in classes] if named else classes)
        names = [str(item["name"]) for item in classes] if named else None
    except (TypeError, KeyError, ValueError) as err:
        raise DataError.about(path, "not a palette", PALETTE_FORMS) from err
    if colors.ndim != 2 or colors.shape[1:] != (3,) or len(colors) < 2 or colors.dtype.kind not in "iu" \
            or colors.min() < 0 or colors.max() > 255:
        raise DataError.about(path, "not a palette (at least two [r, g, b] colours of integers 0..255)", PALETTE_FORMS)
    if len(np.unique(colors, axis=0)) < len(colors):
        raise DataError.about(path, "two classes share a colour", "give each class its own colour")
    return palette_from_colors(colors, names)


def dataset_palette(data: Path) -> Palette | None:
    """DATA/palette.json (the colours of the A side), or None when the dataset has none."""
    path = Path(data) / "palette.json"
    return load_palette(path) if path.is_file() else None


def as_rgb8(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """H x W x 3 uint8 from any bit depth, grey repeated: palettes are 8-bit RGB."""
    if bit_depth == 16:
        pixels = (pixels.astype(np.uint32) * 255 + 32767) // 65535
    pixels = pixels.astype(np.uint8)
    return np.repeat(pixels[..., :1], 3, axis=2) if pixels.shape[2] < 3 else pixels[..., :3]


def snap(pixels: np.ndarray, palette: Palette) -> np.ndarray:
    """Class index (H x W int64) of the nearest palette colour to each RGB pixel."""
    flat = pixels.reshape(-1, 3).astype(np.int32)
    colors = palette.colors.astype(np.int32)
    distances = (flat * flat).sum(1, keepdims=True) - 2 * flat @ colors.T + (colors * colors).sum(1)
    return distances.argmin(axis=1).reshape(pixels.shape[:2])


def learn_palette(images: list[np.ndarray], classes: int, seed: int = 0) -> Palette:
    """The `classes` colours that k-means finds in the pixels of RGB label maps, most common first."""
    from scipy.cluster.vq import kmeans2

    pixels = np.concatenate([image.reshape(-1, 3) for image in images]).astype(np.float64)
    rng = np.random.default_rng(seed)
    if len(pixels) > KMEANS_PIXELS:
        pixels = pixels[rng.choice(len(pixels), KMEANS_PIXELS, replace=False)]
    if len(np.unique(pixels, axis=0)) < classes:
        raise DataError(f"the label maps hold fewer than {classes} colours; lower `classes`")
    centres, assigned = kmeans2(pixels, classes, minit="++", seed=rng)
    order = np.argsort(-np.bincount(assigned, minlength=classes), kind="stable")
    return palette_from_colors(np.clip(np.round(centres[order]), 0, 255))


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """K x K counts: row = true class, column = predicted class."""
    counts = np.bincount(truth.ravel().astype(np.int64) * classes + predicted.ravel(), minlength=classes * classes)
    return counts.reshape(classes, classes)


@dataclass(frozen=True)
class SegmentationScores:
    """The FCN paper's per-pixel accuracy, mean class accuracy and mean class IoU, and the per-class terms (NaN
    where a class is absent from the truth, or from both sides for IoU)."""

    pixel_accuracy: float
    class_accuracy: float
    class_iou: float
    per_class_accuracy: np.ndarray
    per_class_iou: np.ndarray

    @classmethod
    def from_confusion(cls, counts: np.ndarray) -> SegmentationScores:
        """Classes absent from the truth drop out of the mean accuracy, classes absent from both sides out of the
        mean IoU (a class only predicted counts with IoU 0), as in the FCN paper's and CycleGAN's code."""
        hits, truth, predicted = np.diag(counts), counts.sum(1), counts.sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            accuracy = hits / truth
            iou = hits / (truth + predicted - hits)
        present = ~np.isnan(accuracy)
        return cls(float(hits.sum() / counts.sum()), float(np.nanmean(accuracy)) if present.any() else float("nan"),
                   float(np.nanmean(iou)), accuracy, iou)

    def numbers(self) -> dict[str, float]:
        return {"pixel_accuracy": self.pixel_accuracy, "class_accuracy": self.class_accuracy,
                "class_iou": self.class_iou}


def most_common_class(counts: np.ndarray) -> np.ndarray:
    """The confusion of the trivial answer: every pixel the truth's most common class."""
    truth = counts.sum(1)
    trivial = np.zeros_like(counts)
    trivial[:, truth.argmax()] = truth
    return trivial
