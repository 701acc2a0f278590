"""`evaluate_folders` and `evaluate_run`: files matched by name, scored, and written as JSON, CSV and a page."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.images import DataError
from pix2pix.evaluation.evaluate import evaluate_folders, evaluate_run, table, write_outputs
from tests.evaluation.conftest import resolved_sources


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def random_rgb(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture
def folders(tmp_path):
    """pred/ and target/: 'same' identical, 'noisy' off by a known amount, one file without a partner each."""
    for name, seed in (("same", 0), ("noisy", 1)):
        save(tmp_path / "target" / f"{name}.png", random_rgb(seed))
    save(tmp_path / "pred" / "same.jpg.png", random_rgb(5))  # stem 'same.jpg': no partner
    save(tmp_path / "pred" / "same.png", random_rgb(0))
    save(tmp_path / "pred" / "noisy.png", 255 - random_rgb(1))
    save(tmp_path / "target" / "lonely.png", random_rgb(2))
    return tmp_path / "pred", tmp_path / "target"


def test_matched_files_are_scored_and_the_unmatched_listed(folders):
    evaluation = evaluate_folders(*folders)
    scores = {image.name: image.scores for image in evaluation.images}
    assert set(scores) == {"same", "noisy"}
    assert scores["same"].l1 == 0 and np.isinf(scores["same"].psnr)
    assert scores["noisy"].l1 == pytest.approx(np.mean(np.abs(255 - 2 * random_rgb(1).astype(float))) / 255)
    assert [Path(name).name for name in evaluation.unmatched] == ["same.jpg.png", "lonely.png"]
    intersections = evaluation.intersections()
    assert set(intersections) == {"L", "a", "b"} and all(0 < value < 1 for value in intersections.values())


def test_no_common_names_is_an_error(tmp_path):
    save(tmp_path / "pred" / "a.png", random_rgb(0))
    save(tmp_path / "target" / "b.png", random_rgb(0))
    with pytest.raises(DataError, match="no file names in common"):
        evaluate_folders(tmp_path / "pred", tmp_path / "target")


def test_a_size_mismatch_names_the_file(tmp_path):
    save(tmp_path / "pred" / "a.png", random_rgb(0, size=32))
    save(tmp_path / "target" / "a.png", random_rgb(0, size=48))
    with pytest.raises(DataError, match=r"pred/a\.png: 32x32 pixels but its target .* is 48x48"):
        evaluate_folders(tmp_path / "pred", tmp_path / "target")


def test_grayscale_skips_the_colour_test_with_a_note(tmp_path):
    save(tmp_path / "pred" / "a.png", random_rgb(0)[..., 0])
    save(tmp_path / "target" / "a.png", random_rgb(1)[..., 0])
    evaluation = evaluate_folders(tmp_path / "pred", tmp_path / "target")
    assert evaluation.intersections() == {} and "RGB" in evaluation.colour_note
    write_outputs(evaluation, tmp_path / "out")
    assert not (tmp_path / "out" / "colour.png").exists()
    assert "RGB" in (tmp_path / "out" / "report.html").read_text()


def test_outputs_hold_means_rows_and_the_page(folders, tmp_path):
    out = tmp_path / "out"
    report = write_outputs(evaluate_folders(*folders), out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"] == {"scored": 2, "unmatched": 2, "failed": 0}
    rows = {row["name"]: row for row in metrics["images"]}
    assert rows["same"]["psnr"] == "inf" and rows["same"]["l1"] == 0
    assert metrics["means"]["l1"] == pytest.approx(rows["noisy"]["l1"] / 2)
    assert metrics["inputs"] == {"pred": str(folders[0]), "target": str(folders[1])}
    with open(out / "metrics.csv") as file:
        assert [row["name"] for row in csv.DictReader(file)] == ["noisy", "same"]
    shown = resolved_sources(report)
    assert (out / "colour.png").resolve() in shown
    assert {path.name for path in shown} >= {"same.png", "noisy.png"}
    assert "lonely.png" in report.read_text()


def test_a_run_translates_the_test_split_and_scores_it(tmp_path_factory, facades):
    from pix2pix.config import RunConfig
    from pix2pix.evaluation.fcn import FCNSettings
    from pix2pix.training.loop import train
    from tests.conftest import TINY
    from tests.evaluation.test_segmenter import TINY_SEGMENTER

    run = tmp_path_factory.mktemp("evaluate") / "run"
    train(RunConfig().updated({**TINY, "data": str(facades), "max_steps": 4}), run)
    out = tmp_path_factory.mktemp("evaluate") / "out"
    fcn = FCNSettings(segmenter_cache=out / "cache", segmenter=TINY_SEGMENTER)
    evaluation = evaluate_run(run, facades, out, mode="eval", fcn=fcn)
    assert len(evaluation.images) == len(list((facades / "test").iterdir()))
    assert all(image.pred.parent == out / "images" and image.target.name.endswith("_target.png")
               for image in evaluation.images)
    assert all(0 < image.scores.l1 < 1 for image in evaluation.images)
    rows = table(evaluation)  # labels -> photo after 4 steps: the real photos parse far better than the generated
    assert evaluation.fcn.kind == "segmenter"
    assert rows["FCN per-pixel acc (real photos)"] > 0.7 > rows["FCN per-pixel acc"]
    write_outputs(evaluation, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inputs"]["split"] == "test" and metrics["fcn"]["reference"]["name"] == "real photos"
    with pytest.raises(DataError, match="no `split` folder 'nope'"):
        evaluate_run(run, facades, out, split="nope")
