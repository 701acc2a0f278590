"""The FCN-score through `evaluate_folders` and `evaluate_run`: known cases, the outputs, and wrong settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.images import DataError
from pix2pix.evaluation import evaluate
from pix2pix.evaluation.evaluate import evaluate_folders, table, write_outputs
from pix2pix.evaluation.fcn import FCNSettings, fcn_for_run
from pix2pix.evaluation.segmentation import dataset_palette, snap
from tests.evaluation.conftest import parse_page
from tests.evaluation.test_segmenter import TINY_SEGMENTER

ROWS = ("FCN per-pixel acc", "FCN per-class acc", "FCN class IoU")


@pytest.fixture(autouse=True)
def without_fid(monkeypatch):
    """FID and KID have their own tests; here their Inception network would only cost time."""
    monkeypatch.setattr(evaluate, "add_distribution", lambda *args: None)


def halves(facades: Path, out: Path) -> tuple[Path, Path]:
    """The test split's label maps (A) and photos (B) as out/A/NAME.png and out/B/NAME.png."""
    for path in sorted((facades / "test").iterdir()):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        half = pixels.shape[1] // 2
        for side, part in (("A", pixels[:, :half]), ("B", pixels[:, half:])):
            (out / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(part).save(out / side / path.name)
    return out / "A", out / "B"


def noisy_copy(folder: Path, out: Path, seed: int = 0) -> Path:
    """Every image of `folder` with +-20 of noise per sample: the same classes once snapped."""
    out.mkdir()
    rng = np.random.default_rng(seed)
    for path in sorted(folder.iterdir()):
        pixels = np.asarray(Image.open(path)).astype(int) + rng.integers(-20, 21, (32, 32, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out / path.name)
    return out


def test_snapped_label_maps_score_one_beside_the_most_common_class(facades, tmp_path):
    labels, _ = halves(facades, tmp_path)
    evaluation = evaluate_folders(noisy_copy(labels, tmp_path / "pred"), labels,
                                  fcn=FCNSettings("output", palette=facades / "palette.json"))
    rows = table(evaluation)
    assert [rows[name] for name in ROWS] == [1, 1, 1]
    palette = dataset_palette(facades)
    counts = np.bincount(np.concatenate([snap(np.asarray(Image.open(p)), palette).ravel()
                                         for p in sorted(labels.iterdir())]), minlength=len(palette))
    assert rows["FCN per-pixel acc (most common class)"] == pytest.approx(counts.max() / counts.sum())
    assert rows["FCN per-class acc (most common class)"] == pytest.approx(1 / np.count_nonzero(counts))
    assert rows["FCN class IoU (most common class)"] == pytest.approx(counts.max() / counts.sum()
                                                                      / np.count_nonzero(counts))


def test_k_means_learns_the_palette_from_the_targets(facades, tmp_path):
    labels, _ = halves(facades, tmp_path)
    colours = len(np.unique(np.concatenate([np.asarray(Image.open(p)).reshape(-1, 3) for p in labels.iterdir()]),
                            axis=0))
    evaluation = evaluate_folders(noisy_copy(labels, tmp_path / "pred"), labels, fcn=FCNSettings(classes=colours))
    assert evaluation.fcn.kind == "snapped" and evaluation.fcn.palette_source == f"k-means, {colours} classes"
    assert [table(evaluation)[name] for name in ROWS] == [1, 1, 1]


def test_real_photos_parsed_by_the_segmenter_score_as_the_reference(facades, tmp_path):
    labels, photos = halves(facades, tmp_path)
    settings = FCNSettings(segmenter_cache=tmp_path / "cache", segmenter=TINY_SEGMENTER)
    evaluation = evaluate_folders(photos, photos, fcn=settings, inputs=labels, data=facades)
    rows = table(evaluation)
    assert evaluation.fcn.kind == "segmenter" and rows["FCN per-pixel acc (real photos)"] > 0.7
    assert [rows[name] for name in ROWS] == [rows[f"{name} (real photos)"] for name in ROWS]
    assert list((tmp_path / "cache").glob("*.safetensors"))


def test_metrics_and_report_hold_the_scores_per_class(facades, tmp_path):
    labels, _ = halves(facades, tmp_path)
    evaluation = evaluate_folders(noisy_copy(labels, tmp_path / "pred"), labels,
                                  fcn=FCNSettings(palette=facades / "palette.json"))
    report = write_outputs(evaluation, tmp_path / "out")
    fcn = json.loads((tmp_path / "out" / "metrics.json").read_text())["fcn"]
    assert fcn["kind"] == "snapped" and fcn["reference"]["name"] == "most common class"
    assert [entry["name"] for entry in fcn["classes"]][:3] == ["background", "wall", "window"]
    assert fcn["generated"]["per_class"]["wall"] == {"accuracy": 1, "iou": 1}
    absent = [name for name, row in fcn["generated"]["per_class"].items() if row["accuracy"] is None]
    assert all(fcn["generated"]["per_class"][name]["iou"] is None for name in absent)
    page = report.read_text()
    parse_page(report)
    assert "FCN-score per class" in page and "FCN class IoU (most common class)" in page


def test_wrong_settings_say_what_to_give(facades, tmp_path):
    labels, photos = halves(facades, tmp_path)
    with pytest.raises(DataError, match="give a `palette` file, or `classes`"):
        evaluate_folders(labels, labels, fcn=FCNSettings("output"))
    with pytest.raises(DataError, match="`labels` input needs `inputs`"):
        evaluate_folders(photos, photos, fcn=FCNSettings("input"))
    (tmp_path / "A" / "0000.png").unlink()
    with pytest.raises(DataError, match="A: no label map named '0000'"):
        evaluate_folders(photos, photos, fcn=FCNSettings(), inputs=tmp_path / "A", data=facades)
    with pytest.raises(DataError, match="`labels` must be one of auto, input, output, off"):
        FCNSettings("both")
    assert evaluate_folders(labels, labels, fcn=FCNSettings()).fcn is None  # auto without a palette: off


def test_a_run_finds_the_label_side_from_palette_json(facades, tmp_path):
    assert fcn_for_run(FCNSettings("off"), facades, "AtoB", []) is None
    assert fcn_for_run(FCNSettings(), tmp_path, "AtoB", []) is None  # no palette.json: off
    with pytest.raises(DataError, match="no palette.json to tell which side holds the label maps; give `labels`"):
        fcn_for_run(FCNSettings(classes=3), tmp_path, "AtoB", [])
    labels, photos = halves(facades, tmp_path)  # BtoA on the facades: photo -> labels, snapped
    rows = [(photos / name, labels / name, labels / name) for name in sorted(path.name for path in labels.iterdir())]
    scores = fcn_for_run(FCNSettings(), facades, "BtoA", rows)
    assert scores.kind == "snapped" and scores.palette_source.endswith("palette.json")
    assert scores.generated.numbers() == {"pixel_accuracy": 1, "class_accuracy": 1, "class_iou": 1}
