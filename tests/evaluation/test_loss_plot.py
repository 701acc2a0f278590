"""The loss plot is drawn from losses.jsonl files as training writes them, truncated last lines included."""

import math
from pathlib import Path

import pytest
from PIL import Image

from pix2pix.evaluation.loss_plot import plot_losses, read_loss_log
from tests.evaluation.conftest import GAN_LOSSES, write_loss_log


def test_read_loss_log_skips_truncated_last_line(tmp_path: Path) -> None:
    log = tmp_path / "losses.jsonl"
    complete = '{"step": 0, "epoch": 0, "G_L1": 0.5, "note": "x"}\n\n{"step": 10, "epoch": 0, "G_L1": 0.4}\n'
    log.write_text(complete + '{"step": 20, "ep')

    assert read_loss_log(log) == [{"step": 0, "epoch": 0, "G_L1": 0.5}, {"step": 10, "epoch": 0, "G_L1": 0.4}]


def test_read_loss_log_of_missing_or_empty_file_is_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")

    assert read_loss_log(tmp_path / "missing.jsonl") == []
    assert read_loss_log(tmp_path / "empty.jsonl") == []


@pytest.mark.parametrize("keys", [GAN_LOSSES, ("G_L1",)])
def test_plot_losses_writes_png_atomically(tmp_path: Path, keys: tuple[str, ...]) -> None:
    log = tmp_path / "losses.jsonl"
    write_loss_log(log, steps=100, keys=keys)

    out = plot_losses(log, tmp_path / "plots" / "losses.png")

    assert out == tmp_path / "plots" / "losses.png"
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
    assert [path.name for path in out.parent.iterdir()] == ["losses.png"]  # no temp file left behind


def test_plot_losses_handles_single_point_and_non_finite_values(tmp_path: Path) -> None:
    log = tmp_path / "losses.jsonl"
    log.write_text('{"step": 0, "epoch": 0, "G_L1": 0.5}\n{"step": 10, "epoch": 0, "G_L1": NaN}\n')

    assert plot_losses(log, tmp_path / "losses.png") is not None
    assert math.isnan(read_loss_log(log)[1]["G_L1"])


@pytest.mark.parametrize("content", [None, "", '{"step": 0, "epoch": 0, "lr": 0.0002}\n{"step": 1'])
def test_plot_losses_returns_none_without_losses(tmp_path: Path, content: str | None) -> None:
    log = tmp_path / "losses.jsonl"
    if content is not None:
        log.write_text(content)

    assert plot_losses(log, tmp_path / "losses.png") is None
    assert not (tmp_path / "losses.png").exists()
