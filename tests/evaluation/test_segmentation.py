"""Palettes, snapping, k-means and the FCN-score's three numbers on hand-made cases whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pix2pix.data.facade_layout import PALETTE
from pix2pix.data.images import DataError
from pix2pix.evaluation.segmentation import (
    SegmentationScores,
    confusion,
    learn_palette,
    load_palette,
    most_common_class,
    palette_from_colors,
    snap,
)

FACADE_COLORS = np.array([c.color for c in PALETTE], dtype=np.uint8)


def scores(truth: list[int], predicted: list[int], classes: int) -> SegmentationScores:
    return SegmentationScores.from_confusion(confusion(np.array(truth), np.array(predicted), classes))


def test_identical_label_maps_score_one():
    labels = np.random.default_rng(0).integers(0, 9, (32, 32))
    result = scores(labels, labels, 9)
    assert (result.pixel_accuracy, result.class_accuracy, result.class_iou) == (1, 1, 1)


def test_a_known_confusion_by_hand():
    # counts [[2, 1], [0, 1]]: accuracy 3/4; per class 2/3 and 1/1; IoU 2/(3+2-2) and 1/(1+2-1)
    result = scores([0, 0, 0, 1], [0, 0, 1, 1], 2)
    assert result.pixel_accuracy == pytest.approx(3 / 4)
    assert result.class_accuracy == pytest.approx((2 / 3 + 1) / 2)
    assert result.class_iou == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert scores([0, 0, 0, 1], [0, 0, 1, 1], 5).numbers() == result.numbers()  # absent classes drop out


def test_a_class_only_predicted_counts_in_iou_not_in_accuracy():
    result = scores([0, 0], [0, 1], 2)
    assert result.class_accuracy == pytest.approx(1 / 2)  # class 1 has no true pixels: no accuracy
    assert result.class_iou == pytest.approx((1 / 2 + 0) / 2)
    assert np.isnan(result.per_class_accuracy[1]) and result.per_class_iou[1] == 0


def test_the_most_common_class_by_hand():
    truth = np.array([0] * 6 + [1] * 3 + [2])
    trivial = SegmentationScores.from_confusion(most_common_class(confusion(truth, truth, 3)))
    assert trivial.pixel_accuracy == pytest.approx(0.6)
    assert trivial.class_accuracy == pytest.approx(1 / 3)
    assert trivial.class_iou == pytest.approx(0.6 / 3)


def test_snapping_recovers_the_classes_of_perturbed_colours():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(PALETTE), (48, 48))
    noisy = FACADE_COLORS[labels].astype(int) + rng.integers(-25, 26, (48, 48, 3))
    assert np.array_equal(snap(np.clip(noisy, 0, 255).astype(np.uint8), palette_from_colors(FACADE_COLORS)), labels)


def test_k_means_recovers_three_colours_most_common_first():
    rng = np.random.default_rng(1)
    colors = np.array([[200, 30, 30], [20, 180, 40], [30, 40, 220]])
    labels = rng.choice(3, size=(64, 64), p=[0.2, 0.5, 0.3])
    image = np.clip(colors[labels] + rng.integers(-6, 7, (64, 64, 3)), 0, 255).astype(np.uint8)
    learned = learn_palette([image], 3)
    assert np.abs(learned.colors.astype(int) - colors[[1, 2, 0]]).max() <= 2
    with pytest.raises(DataError, match="fewer than 5 colours; lower `classes`"):
        learn_palette([colors[labels].astype(np.uint8)], 5)


def test_palette_files_named_or_plain(tmp_path):
    named = tmp_path / "palette.json"
    named.write_text(json.dumps({"classes": [{"name": c.name, "color": list(c.color)} for c in PALETTE]}))
    palette = load_palette(named)
    assert palette.names[:2] == ("background", "wall") and np.array_equal(palette.colors, FACADE_COLORS)
    plain = tmp_path / "plain.json"
    plain.write_text("[[0, 0, 0], [255, 255, 255]]")
    assert load_palette(plain).names == ("class 0", "class 1")


@pytest.mark.parametrize(("text", "problem"), [
    ("{not json", "not valid JSON"),
    ('{"classes": [{"name": "a"}]}', "not a palette"),
    ("[[0, 0], [1, 1]]", "not a palette"),
    ("[[0, 0, 0], [0, 0, 300]]", "not a palette"),
    ("[[1, 2, 3], [1, 2, 3]]", "two classes share a colour"),
])
def test_a_bad_palette_file_is_named(tmp_path, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError, match=f"bad.json: {problem}"):
        load_palette(path)
