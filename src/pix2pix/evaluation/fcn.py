"""The paper's FCN-score in `pix2pix evaluate`: how well label maps can be read back from generated images.

Labels -> photo (the label maps are the inputs): a segmenter trained on the dataset's real photos parses the
generated photos, scored against the input labels; the real photos, parsed alike, are the upper bound. Photo ->
labels or map (the label maps are the outputs): generated and real outputs are snapped to the palette and compared
directly, beside the trivial answer (every pixel the most common class), which on maps already gets about half
the pixels right, so per-class accuracy and IoU carry the verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pix2pix.data.dataset import files_by_stem, split_folder
from pix2pix.data.images import DataError
from pix2pix.data.reading import load_image_data
from pix2pix.devices import resolve_device
from pix2pix.evaluation.segmentation import (
    Palette,
    SegmentationScores,
    as_rgb8,
    confusion,
    dataset_palette,
    learn_palette,
    load_palette,
    most_common_class,
    snap,
)
from pix2pix.evaluation.segmenter import Segmenter, SegmenterSettings, labelled_pairs, trained_segmenter

LABEL_SIDES = ("auto", "input", "output", "off")
ROWS = {"pixel_accuracy": "FCN per-pixel acc", "class_accuracy": "FCN per-class acc", "class_iou": "FCN class IoU"}
"""Table rows of the scores of the generated images; the reference's rows add its name in brackets."""


@dataclass(frozen=True)
class FCNSettings:
    """Which side holds label maps (`labels`), their `palette` file or the number of `classes` to learn one with,
    where trained segmenters are cached (`segmenter_cache`), and the segmenter's training."""

    labels: str = "auto"
    palette: Path | None = None
    classes: int | None = None
    segmenter_cache: Path | None = None
    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)

    def __post_init__(self) -> None:
        if self.labels not in LABEL_SIDES:
            raise DataError(f"`labels` must be one of {', '.join(LABEL_SIDES)}, not {self.labels!r}")
        if self.classes is not None and self.classes < 2:
            raise DataError(f"`classes` must be at least 2, got {self.classes}")


@dataclass
class FCNScores:
    """The three numbers for the generated images and for the reference, and where the palette came from."""

    kind: str  # "segmenter" (labels are the inputs) or "snapped" (labels are the outputs)
    palette: Palette
    palette_source: str
    generated: SegmentationScores
    reference: SegmentationScores
    reference_name: str
    segmenter: dict[str, Any] | None = None

    def rows(self) -> dict[str, float]:
        generated, reference = self.generated.numbers(), self.reference.numbers()
        return {**{name: generated[key] for key, name in ROWS.items()},
                **{f"{name} ({self.reference_name})": reference[key] for key, name in ROWS.items()}}

    def per_class(self) -> dict[str, dict[str, float | None]]:
        """Per class name: accuracy and IoU of the generated images and of the reference (None: undefined)."""
        columns = {"accuracy": self.generated.per_class_accuracy, "IoU": self.generated.per_class_iou,
                   f"accuracy ({self.reference_name})": self.reference.per_class_accuracy,
                   f"IoU ({self.reference_name})": self.reference.per_class_iou}
        return {name: {column: _number(values[i]) for column, values in columns.items()}
                for i, name in enumerate(self.palette.names)}

    def summary(self) -> dict[str, Any]:
        """metrics.json's "fcn" section."""
        return {"kind": self.kind, "palette_source": self.palette_source, "classes": self.palette.as_json(),
                "generated": _scores_json(self.generated, self.palette),
                "reference": {"name": self.reference_name, **_scores_json(self.reference, self.palette)},
                "segmenter": self.segmenter}


def _scores_json(scores: SegmentationScores, palette: Palette) -> dict[str, Any]:
    per_class = {name: {"accuracy": _number(scores.per_class_accuracy[i]), "iou": _number(scores.per_class_iou[i])}
                 for i, name in enumerate(palette.names)}
    return {**scores.numbers(), "per_class": per_class}


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def fcn_for_run(settings: FCNSettings, data: Path, direction: str,
                translated: list[tuple[Path, Path, Path]]) -> FCNScores | None:
    """The FCN-score of a run's translations, (input, output, target) per image; None when `labels` is off."""
    side = _run_side(settings, Path(data), direction)
    if side == "off":
        return None
    label_side = "A" if (side == "input") == (direction == "AtoB") else "B"
    train = split_folder(Path(data), "train")
    palette, source = _palette(settings, Path(data), label_side, lambda: _label_maps(train, label_side))
    if side == "output":
        return _snapped(palette, source, [(output, target) for _, output, target in translated])
    segmenter = trained_segmenter(data, label_side, palette, settings.segmenter, settings.segmenter_cache,
                                  resolve_device("auto"))
    return _segmented(palette, source, segmenter, translated)


def fcn_for_folders(settings: FCNSettings, pairs: list[tuple[str, Path, Path]], inputs: Path | None = None,
                    data: Path | None = None) -> FCNScores | None:
    """The FCN-score of generated images matched by name: of label maps (`labels` output), or of photos parsed by a
    segmenter trained on DATA's train split (whose A side holds the label maps) against the label maps in INPUTS."""
    side = settings.labels
    if side == "auto":
        given = settings.palette is not None or settings.classes is not None
        side = "input" if inputs is not None else "output" if given else "off"
    if side == "off":
        return None
    if side == "output":
        targets = [target for _, _, target in pairs]
        palette, source = _palette(settings, None, "", lambda: [_rgb(path) for path in targets])
        return _snapped(palette, source, [(pred, target) for _, pred, target in pairs])
    if inputs is None or data is None:
        raise DataError("`labels` input needs `inputs` (the label maps, named as the images) and `data` (a dataset "
                        "whose train split the segmenter learns from)")
    label_maps = _matching(Path(inputs), pairs)
    train = split_folder(Path(data), "train")
    palette, source = _palette(settings, Path(data), "A", lambda: _label_maps(train, "A"))
    segmenter = trained_segmenter(data, "A", palette, settings.segmenter, settings.segmenter_cache,
                                  resolve_device("auto"))
    rows = [(label_maps[name], pred, target) for name, pred, target in pairs]
    return _segmented(palette, source, segmenter, rows)


def _run_side(settings: FCNSettings, data: Path, direction: str) -> str:
    """`labels` auto: the side palette.json describes (A) when the dataset has one, else off."""
    if settings.labels != "auto":
        return settings.labels
    if (data / "palette.json").is_file():
        return "input" if direction == "AtoB" else "output"
    if settings.palette is not None or settings.classes is not None:
        raise DataError(f"{data}: no palette.json to tell which side holds the label maps; give `labels` input or "
                        "output")
    return "off"


def _palette(settings: FCNSettings, data: Path | None, label_side: str,
             label_maps: Callable[[], list[np.ndarray]]) -> tuple[Palette, str]:
    """The palette file given, else the dataset's palette.json when it describes the label side (A), else one
    learned by k-means from the label maps; and where it came from."""
    if settings.palette is not None:
        return load_palette(settings.palette), str(settings.palette)
    if data is not None and label_side == "A" and (palette := dataset_palette(data)) is not None:
        return palette, str(data / "palette.json")
    if settings.classes is None:
        raise DataError("the FCN-score needs the label maps' colours: give a `palette` file, or `classes` to learn "
                        "them by k-means")
    return learn_palette(label_maps(), settings.classes), f"k-means, {settings.classes} classes"


def _label_maps(train: Path, label_side: str) -> list[np.ndarray]:
    return [label_map for label_map, _ in labelled_pairs(train, label_side)]


def _matching(inputs: Path, pairs: list[tuple[str, Path, Path]]) -> dict[str, Path]:
    found = files_by_stem(inputs)
    missing = [name for name, _, _ in pairs if name not in found]
    if missing:
        raise DataError(f"{inputs}: no label map named {missing[0]!r} ({len(missing)} missing); give `inputs` "
                        "holding one per image, named as the images")
    return found


def _rgb(path: Path) -> np.ndarray:
    image = load_image_data(path)
    return as_rgb8(image.pixels, image.bit_depth)


def _same_size(path: Path, pixels: np.ndarray, labels: np.ndarray, labels_path: Path) -> np.ndarray:
    if pixels.shape[:2] != labels.shape:
        raise DataError(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels but its label map {labels_path} is "
                        f"{labels.shape[1]}x{labels.shape[0]}; score images of the same size")
    return pixels


def _snapped(palette: Palette, source: str, pairs: list[tuple[Path, Path]]) -> FCNScores:
    """Generated label maps snapped to the palette against the real ones, beside the most common class."""
    counts = np.zeros((len(palette), len(palette)), dtype=np.int64)
    for pred, target in pairs:
        truth = snap(_rgb(target), palette)
        counts += confusion(truth, snap(_same_size(pred, _rgb(pred), truth, target), palette), len(palette))
    return FCNScores("snapped", palette, source, SegmentationScores.from_confusion(counts),
                     SegmentationScores.from_confusion(most_common_class(counts)), "most common class")


def _segmented(palette: Palette, source: str, segmenter: Segmenter,
               rows: list[tuple[Path, Path, Path]]) -> FCNScores:
    """Generated and real photos parsed by the segmenter, each against the label map they were made from."""
    generated, real = (np.zeros((len(palette), len(palette)), dtype=np.int64) for _ in range(2))
    for labels_path, pred, target in rows:
        truth = snap(_rgb(labels_path), palette)
        generated += confusion(truth, segmenter(_same_size(pred, _rgb(pred), truth, labels_path)), len(palette))
        real += confusion(truth, segmenter(_same_size(target, _rgb(target), truth, labels_path)), len(palette))
    return FCNScores("segmenter", palette, source, SegmentationScores.from_confusion(generated),
                     SegmentationScores.from_confusion(real), "real photos", segmenter.info)
