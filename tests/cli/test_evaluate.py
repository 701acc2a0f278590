"""`pix2pix evaluate` from the shell: the table printed, the files written, wrong combinations refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pix2pix.cli import main


def write_pairs(root, count: int = 3) -> None:
    rng = np.random.default_rng(0)
    for folder in ("pred", "target"):
        (root / folder).mkdir()
    for index in range(count):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "target" / f"{index}.png")
        Image.fromarray(pixels // 2).save(root / "pred" / f"{index}.png")


def test_pred_and_target_folders_end_to_end(tmp_path):
    write_pairs(tmp_path)
    result = subprocess.run([sys.executable, "-m", "pix2pix", "evaluate", "--pred", str(tmp_path / "pred"),
                             "--target", str(tmp_path / "target"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, check=True)
    for row in ("L1", "PSNR (dB)", "SSIM", "L intersection", "a intersection", "b intersection"):
        assert row in result.stdout
    means = json.loads((tmp_path / "out" / "metrics.json").read_text())["means"]
    assert f"{means['l1']:.4f}" in result.stdout
    assert (tmp_path / "out" / "metrics.csv").read_text().count("\n") == 4
    assert "colour.png" in (tmp_path / "out" / "report.html").read_text()


def write_label_maps(root) -> None:
    """target/: black left, white right; pred/: the same with the top left quarter white."""
    for folder in ("pred", "target"):
        (root / folder).mkdir()
    for index in range(2):
        target = np.zeros((32, 32, 3), dtype=np.uint8)
        target[:, 16:] = 255
        pred = target.copy()
        pred[:16, :16] = 255
        Image.fromarray(target).save(root / "target" / f"{index}.png")
        Image.fromarray(pred).save(root / "pred" / f"{index}.png")


def test_label_maps_scored_with_a_palette_file(tmp_path, capsys, monkeypatch):
    from pix2pix.evaluation import evaluate

    monkeypatch.setattr(evaluate, "add_distribution", lambda *args: None)  # FID: tested above, slow here
    write_label_maps(tmp_path)
    (tmp_path / "palette.json").write_text("[[0, 0, 0], [255, 255, 255]]")
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--target", str(tmp_path / "target"),
                 "--palette", str(tmp_path / "palette.json"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    # per image [[256, 256], [0, 512]]: accuracy 3/4, per class (1/2 + 1) / 2, IoU (1/2 + 2/3) / 2
    for row, value in (("FCN per-pixel acc", 3 / 4), ("FCN per-class acc", 3 / 4), ("FCN class IoU", 7 / 12),
                       ("FCN per-pixel acc (most common class)", 1 / 2)):
        assert re.search(rf"^{re.escape(row)} +{value:.4f}$", printed, re.MULTILINE), row
    assert "FCN-score per class" in (tmp_path / "out" / "report.html").read_text()


def test_a_palette_that_is_not_json_is_one_line_naming_it(tmp_path, capsys):
    write_label_maps(tmp_path)
    (tmp_path / "palette.json").write_text("[[0, 0, 0],")
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--target", str(tmp_path / "target"), "--labels",
                 "output", "--palette", str(tmp_path / "palette.json"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pix2pix: error: ") and "palette.json: not valid JSON" in err and err.count("\n") == 1
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--target", str(tmp_path / "target"),
                 "--labels", "output", "--out", str(tmp_path / "out")]) == 2
    assert "give a --palette file, or --classes to learn them" in capsys.readouterr().err


def test_one_form_at_a_time(tmp_path, capsys):
    write_pairs(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main(["evaluate", "run", "--pred", str(tmp_path / "pred"), "--out", str(tmp_path / "out")])
    assert exit.value.code == 2
    assert "give either RUN --data DIR, or --pred DIR --target DIR" in capsys.readouterr().err


def test_a_size_mismatch_is_one_line_naming_the_file(tmp_path, capsys):
    write_pairs(tmp_path, count=1)
    Image.new("RGB", (16, 16)).save(tmp_path / "pred" / "0.png")
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--target", str(tmp_path / "target"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pix2pix: error: ") and "0.png: 16x16 pixels" in err and err.count("\n") == 1


def test_without_scikit_image_it_says_what_to_install(tmp_path, capsys, monkeypatch):
    write_pairs(tmp_path, count=1)
    monkeypatch.setitem(sys.modules, "skimage.metrics", None)
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--target", str(tmp_path / "target"),
                 "--out", str(tmp_path / "out")]) == 2
    assert 'pip install "pix2pix[eval]"' in capsys.readouterr().err


def test_a_run_on_the_test_split_end_to_end(tmp_path, facades, capsys, monkeypatch):
    from pix2pix.config import RunConfig
    from pix2pix.training.loop import train
    from tests.conftest import TINY

    train(RunConfig().updated({**TINY, "data": str(facades), "max_steps": 4}), tmp_path / "run")
    out = tmp_path / "out"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(facades), "--seed", "1", "--out", str(out),
                 "--segmenter-steps", "5"]) == 0
    printed = capsys.readouterr().out
    assert "L intersection" in printed and "FCN class IoU (real photos)" in printed  # the facades' labels: auto
    assert len(list((tmp_path / "cache" / "pix2pix" / "segmenters").glob("*.safetensors"))) == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["scored"] == 4 and metrics["inputs"]["mode"] == "paper"
    assert metrics["fcn"]["segmenter"]["settings"]["steps"] == 5
    assert len(list((out / "images").glob("*_target.png"))) == 4
