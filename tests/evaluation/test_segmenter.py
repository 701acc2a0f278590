"""The FCN-score's segmenter: it learns the embedded facades' classes from their photos, and is trained once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pix2pix.data.images import DataError
from pix2pix.evaluation import segmenter as segmenter_module
from pix2pix.evaluation.segmentation import dataset_palette
from pix2pix.evaluation.segmenter import (
    SegmentationNet,
    SegmenterSettings,
    default_cache,
    load_split,
    score_split,
    trained_segmenter,
)

TINY_SEGMENTER = SegmenterSettings(width=8, depth=2, steps=150, batch=4, crop=32, lr=2e-2)


def test_a_segmenter_scores_high_on_its_training_labels_and_is_trained_once(facades, tmp_path, monkeypatch):
    palette = dataset_palette(facades)
    segmenter = trained_segmenter(facades, "A", palette, TINY_SEGMENTER, tmp_path)
    train = load_split(facades / "train", "A", palette)
    scores = score_split(segmenter, train)
    assert segmenter.trained_now and scores.pixel_accuracy > 0.9 and scores.class_iou > 0.7
    cached = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert cached["train_images"] == 8 and cached["accuracy"]["split"] == "val"

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(segmenter_module, "train_net", no_training)
    again = trained_segmenter(facades, "A", palette, TINY_SEGMENTER, tmp_path)
    assert not again.trained_now and again.info["file"] == segmenter.info["file"]
    assert score_split(again, train).numbers() == scores.numbers()
    with pytest.raises(AssertionError, match="trained again"):  # other settings: another segmenter
        trained_segmenter(facades, "A", palette, SegmenterSettings(width=8, depth=2, steps=3), tmp_path)
    monkeypatch.undo()
    Path(segmenter.info["file"]).write_bytes(b"truncated")  # a damaged cache is trained again, not an error
    assert trained_segmenter(facades, "A", palette, TINY_SEGMENTER, tmp_path).trained_now


def test_any_image_size_gives_one_class_per_pixel():
    net = SegmentationNet(5, width=4, depth=3).eval()
    assert net(torch.zeros(1, 3, 37, 21)).shape == (1, 5, 37, 21)


def test_the_cache_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache() == tmp_path / "pix2pix" / "segmenters"


def test_a_missing_dataset_is_named(tmp_path, facades):
    with pytest.raises(DataError, match="nothing: dataset folder not found"):
        trained_segmenter(tmp_path / "nothing", "A", dataset_palette(facades), TINY_SEGMENTER, tmp_path)
