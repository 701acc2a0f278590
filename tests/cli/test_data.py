"""`pix2pix data ...`: help with defaults, what each tool prints, exit statuses and the validate wiring."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.cli.data import add_commands
from pix2pix.data.dataset import find_pairs
from pix2pix.data.images import DataError


def build_parser() -> argparse.ArgumentParser:
    """The `pix2pix` parser with only the data commands, as `pix2pix.cli.build_parser` adds them."""
    parser = argparse.ArgumentParser(prog="pix2pix")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def run(*argv: str) -> int:
    args = build_parser().parse_args(["data", *map(str, argv)])
    return args.handler(args)


def _save(path: Path, width: int = 32, height: int = 32, shift: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:height, 0:width]
    Image.fromarray(np.stack([(x * 5 + shift) % 256, y * 4 % 256, x * y % 256], axis=-1).astype(np.uint8)).save(path)
    return path


def test_combine_prints_the_count_and_the_unpaired_files(tmp_path, capsys):
    _save(tmp_path / "A" / "x.png")
    _save(tmp_path / "B" / "x.png", shift=7)
    _save(tmp_path / "B" / "y.png")
    assert run("combine", tmp_path / "A", tmp_path / "B", tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "Wrote 1 aligned A|B images" in out and "1 file(s) without a partner" in out
    assert str(tmp_path / "B" / "y.png") in out and "unpaired.txt" in out


def test_combine_size_mismatch_flag_resizes(tmp_path, capsys):
    _save(tmp_path / "A" / "x.png", 32, 32)
    _save(tmp_path / "B" / "x.png", 48, 40)
    with pytest.raises(DataError, match="`size_mismatch`"):
        run("combine", tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert run("combine", tmp_path / "A", tmp_path / "B", tmp_path / "out", "--size-mismatch", "resize-b") == 0
    assert "resized (resize-b):\n  x: A 32x32, B 48x40" in capsys.readouterr().out
    assert Image.open(tmp_path / "out" / "x.png").size == (64, 32)


def test_split_prints_the_counts(tmp_path, capsys):
    for index in range(10):
        _save(tmp_path / f"{index}.png", 16, 8, shift=index)
    assert run("split", tmp_path, "--val", "0.2", "--test", "0.1", "--seed", "3") == 0
    assert "Moved 10 aligned pair(s)" in capsys.readouterr().out
    assert [len(find_pairs(tmp_path / s)) for s in ("train", "val", "test")] == [7, 2, 1]


def test_grayscale_exits_1_and_names_a_photo_it_could_not_read(tmp_path, capsys):
    _save(tmp_path / "photos" / "ok.png")
    (tmp_path / "photos" / "broken.png").write_bytes(b"nope")
    assert run("grayscale", tmp_path / "photos", tmp_path / "out", "--size", "16") == 1
    captured = capsys.readouterr()
    assert "Wrote 1 grayscale | colour pair(s)" in captured.out and "broken.png" in captured.err


def test_edges_writes_aligned_pairs(tmp_path, capsys):
    pytest.importorskip("skimage")
    _save(tmp_path / "photos" / "p.jpg", 40, 30)
    assert run("edges", tmp_path / "photos", tmp_path / "out", "--size", "32", "--min-edge-pixels", "5") == 0
    assert Image.open(tmp_path / "out" / "p.png").size == (64, 32)


def test_synth_writes_the_embedded_facades_and_rejects_a_tiny_size(tmp_path, capsys):
    assert run("synth", tmp_path / "facades", "--train", "2", "--val", "1", "--test", "1", "--size", "32") == 0
    assert [len(find_pairs(tmp_path / "facades" / s)) for s in ("train", "val", "test")] == [2, 1, 1]
    with pytest.raises(DataError, match="size must be >= 32"):
        run("synth", tmp_path / "small", "--size", "16")


def test_download_without_network_explains_the_manual_placement(tmp_path):
    with pytest.raises(DataError, match=r"cannot reach .* put it at .*facades.tar.gz"):
        run("download", "facades", "--root", tmp_path, "--base-url", "http://127.0.0.1:9/")


def test_validate_prints_the_summary_writes_json_and_exits_1_on_problems(tmp_path, capsys, monkeypatch):
    data = tmp_path / "facades"
    assert run("synth", data, "--train", "2", "--val", "1", "--test", "1", "--size", "32") == 0
    monkeypatch.chdir(tmp_path)
    assert run("validate", data, "--crop-size", "32") == 0
    assert json.loads((tmp_path / "facades-validation.json").read_text())["ok"] is True
    assert not (data / "validation.json").exists()  # the dataset itself is left untouched
    report = tmp_path / "reports" / "too_small.json"
    assert run("validate", data, "--crop-size", "64", "--json", report) == 1
    assert json.loads(report.read_text())["ok"] is False
    assert f"Report written to {report}" in capsys.readouterr().out
