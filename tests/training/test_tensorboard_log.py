"""`tensorboard`: the loss log, the held-out L1 and the sample grids also as TensorBoard events, continued by a
resume, and a clear refusal where the package is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pix2pix.cli import main
from pix2pix.evaluation.metrics import MissingDependency
from pix2pix.runs import RunDir
from pix2pix.training.loop import train
from pix2pix.training.tensorboard_log import tag_of
from tests.conftest import tiny_flags

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def events(run: Path) -> event_accumulator.EventAccumulator:
    """What TensorBoard shows of RUN/tensorboard/, every event kept."""
    board = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    return board.Reload()


def logged_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """losses.jsonl as TensorBoard tags: (step, value) per tag, in the order written."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for line in (run / "losses.jsonl").read_text().splitlines():
        record = json.loads(line)
        for name, value in record.items():
            if name not in ("step", "epoch"):
                scalars.setdefault(tag_of(name), []).append((record["step"], value))
    return scalars


def assert_board_matches_the_log(run: Path) -> event_accumulator.EventAccumulator:
    board = events(run)
    expected = logged_scalars(run)
    assert set(board.Tags()["scalars"]) == set(expected)
    for tag, points in expected.items():
        shown = [(event.step, event.value) for event in board.Scalars(tag)]
        assert [step for step, _ in shown] == [step for step, _ in points], tag
        assert [value for _, value in shown] == pytest.approx([value for _, value in points], rel=1e-6), tag
    return board


def test_the_records_are_tensorboard_events_and_a_resume_continues_them(tiny_config, tmp_path):
    run = tmp_path / "run"
    config = tiny_config.updated({"tensorboard": True, "max_steps": 6, "keep_checkpoints": 3})
    train(config, run)
    board = assert_board_matches_the_log(run)
    assert {"loss/G", "loss/D_real", "loss/G_L1", "schedule/lr", "held_out/val_L1"} <= set(board.Tags()["scalars"])
    assert [event.step for event in board.Scalars("loss/G")] == list(range(1, 7))
    assert [event.step for event in board.Images("samples")] == [0, 4, 6]
    assert (board.Images("samples")[0].width, board.Images("samples")[0].height) == (3 * 32, 2 * 32)

    RunDir(run).checkpoints()[-1].unlink()  # as if killed after the record of step 6 but before its checkpoint
    train(config.updated({"max_steps": 9}), run, resume=True)  # from step 4, which it records again
    board = assert_board_matches_the_log(run)
    assert [event.step for event in board.Scalars("loss/G")] == list(range(1, 10))
    assert [event.step for event in board.Scalars("held_out/val_L1")] == [0, 4, 8, 9]
    assert [event.step for event in board.Images("samples")] == [0, 4, 8, 9]
    assert len(list((run / "tensorboard").iterdir())) == 2


def test_a_missing_tensorboard_is_refused_before_anything_is_written(tiny_config, facades, tmp_path, monkeypatch,
                                                                      capsys):
    for module in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingDependency, match=r'pip install "pix2pix\[tensorboard\]"'):
        train(tiny_config.updated({"tensorboard": True}), tmp_path / "run")
    assert main(["train", "--out", str(tmp_path / "run"), *tiny_flags(facades), "--tensorboard"]) == 2
    assert capsys.readouterr().err == ('pix2pix: error: --tensorboard needs the tensorboard package: '
                                       'pip install "pix2pix[tensorboard]"\n')
    assert not (tmp_path / "run").exists()
