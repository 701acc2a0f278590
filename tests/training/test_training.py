"""Training end to end on the embedded data: it learns, resumes exactly, and survives kills and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pix2pix.config import RunConfig
from pix2pix.data.synthetic import generate_facades
from pix2pix.runs import RunDir, RunError
from pix2pix.training.checkpoints import Checkpoints
from pix2pix.training.loop import train
from pix2pix.training.processes import ONE_PROCESS
from pix2pix.training.settings import resolve_config
from tests.conftest import TINY, tiny_flags


def read_log(run: Path) -> list[dict]:
    """The loss log without its timings, which differ from run to run."""
    records = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k != "sec_per_it"} for record in records]


def test_short_training_lowers_the_held_out_l1(tmp_path):
    data = generate_facades(tmp_path / "data", train=40, val=8, test=0, size=32, seed=1)
    config = RunConfig().updated({**TINY, "data": str(data), "ngf": 16, "ndf": 16, "batch_size": 1,
                                  "n_epochs": 4, "n_epochs_decay": 1, "val_images": 8})
    result = train(config, tmp_path / "run")
    assert result.step == 200
    assert result.metrics["l1_now"] < 0.85 * result.metrics["l1_step0"], result.metrics
    val_curve = [r["val_L1"] for r in read_log(tmp_path / "run") if "val_L1" in r]
    assert len(val_curve) == 6 and val_curve[-1] < val_curve[0]


def test_run_folder_holds_config_weights_checkpoints_log_samples_and_report(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config, run)
    assert RunDir(run).load_config() == tiny_config.updated({"input_nc": 3, "output_nc": 3})  # from the data
    assert [p.name for p in RunDir(run).checkpoints()] == ["step_00000008.pt", "step_00000012.pt"]
    assert (run / "generator.safetensors").is_file()
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000000.png", "step_0000004.png", "step_0000008.png", "step_0000012.png"]
    losses = [r for r in read_log(run) if "G" in r]
    assert [r["step"] for r in losses] == list(range(1, 13))
    assert {"D_real", "D_fake", "G_GAN", "G_L1"} <= losses[0].keys()
    assert [r["lr"] for r in losses[::4]] == pytest.approx([2e-4, 2e-4, 2e-4 * 0.5])
    assert (run / "losses.png").stat().st_size > 0
    assert "step_0000012.png" in (run / "report.html").read_text()


def test_a_second_run_into_the_same_folder_is_refused(tiny_config, tmp_path):
    train(tiny_config.updated({"max_steps": 1}), tmp_path / "run")
    with pytest.raises(RunError, match="`resume`"):
        train(tiny_config, tmp_path / "run")


def final_state(run: Path) -> tuple[dict, dict]:
    checkpoint = torch.load(RunDir(run).checkpoints()[-1], weights_only=True)
    return load_file(str(run / "generator.safetensors")), checkpoint


def assert_same_tensors(a, b, where: str = "") -> None:
    """Bitwise equality of nested states (dicts, lists, tensors, numbers)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_stopped_and_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(tiny_config, tmp_path):
    config = tiny_config.updated({"num_workers": 1, "max_steps": 7})
    train(config, tmp_path / "straight")
    train(config.updated({"max_steps": 3}), tmp_path / "resumed")
    train(config, tmp_path / "resumed", resume=True)
    weights_a, checkpoint_a = final_state(tmp_path / "straight")
    weights_b, checkpoint_b = final_state(tmp_path / "resumed")
    assert checkpoint_a["position"] == checkpoint_b["position"] == {"epoch": 1, "images": 6, "step": 7}
    assert_same_tensors(weights_a, weights_b, "generator")
    assert_same_tensors(checkpoint_a["training"], checkpoint_b["training"], "training")
    assert_same_tensors(checkpoint_a["rng"], checkpoint_b["rng"], "rng")
    losses = [[r for r in read_log(tmp_path / run) if "G" in r] for run in ("straight", "resumed")]
    assert losses[0] == losses[1] and len(losses[0]) == 7


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], capture_output=True, text=True, **kwargs)


KILLED_WHILE_SAVING = textwrap.dedent("""
    import os, signal, sys, torch
    real_save, calls = torch.save, []
    def save_then_die(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint: write half of it, then die as if killed
            handle = path if hasattr(path, "write") else open(path, "wb")  # torch.save takes either
            handle.write(b"PK\\x03\\x04 half a checkpoint")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, path, *args, **kwargs)
    torch.save = save_then_die
    from pix2pix.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_process_killed_while_saving_leaves_the_previous_checkpoint_to_resume_from(facades, tmp_path):
    run = tmp_path / "run"
    flags = ["train", "--out", str(run), *tiny_flags(facades), "--save-every", "2"]
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_SAVING, *flags], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p.name for p in RunDir(run).checkpoints()] == ["step_00000002.pt"]
    leftovers = list((run / "checkpoints").glob(".*.tmp"))
    assert len(leftovers) == 1  # the half-written file exists only under a hidden temporary name
    resumed = run_cli("train", "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert torch.load(RunDir(run).checkpoints()[-1], weights_only=True)["position"]["step"] == 12
    assert [r["step"] for r in read_log(run) if "G" in r] == list(range(1, 13))


def test_ctrl_c_saves_a_checkpoint_of_the_last_step_and_resume_continues(facades, tmp_path):
    run = tmp_path / "run"
    flags = tiny_flags(facades, num_workers=1, n_epochs=1000, batch_size=1)
    process = subprocess.Popen([sys.executable, "-m", "pix2pix", "train", "--out", str(run), *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run / "losses.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 5):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "continue it with --resume" in stdout and "Traceback" not in stderr
    stopped_at = torch.load(RunDir(run).checkpoints()[-1], weights_only=True)["position"]["step"]
    assert stopped_at == max(r["step"] for r in read_log(run) if "G" in r)
    resumed = run_cli("train", "--out", str(run), "--resume", "--max-steps", str(stopped_at + 3))
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(RunDir(run).checkpoints()[-1], weights_only=True)["position"]["step"] == stopped_at + 3


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    result = run_cli("train", "--out", str(tmp_path / "nothing"), "--resume")
    assert result.returncode == 2
    assert "not a pix2pix run folder" in result.stderr and "Traceback" not in result.stderr


def test_a_damaged_newest_checkpoint_is_skipped_and_all_damaged_is_a_clear_error(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config.updated({"max_steps": 4, "save_every": 2}), run)
    older, newest = RunDir(run).checkpoints()[-2:]
    newest.write_bytes(newest.read_bytes()[:1000])
    checkpoints = Checkpoints(RunDir(run), tiny_config, ONE_PROCESS)
    with pytest.warns(UserWarning, match=f"{newest}: unreadable checkpoint skipped"):
        assert checkpoints.to_resume_from()["position"]["step"] == 2
    resumed = run_cli("train", "--out", str(run), "--resume", "--max-steps", "2")
    assert resumed.returncode == 0 and "UserWarning" not in resumed.stderr
    assert f"pix2pix: warning: {newest}: unreadable checkpoint skipped (" in resumed.stderr
    older.write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(RunError, match="none of its 2 checkpoint"):
        checkpoints.to_resume_from()


def test_a_checkpoint_from_an_older_layout_is_refused_with_the_reason(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config.updated({"max_steps": 1}), run)
    path = RunDir(run).checkpoints()[-1]
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["position"] = {"epoch": 0, "batch": 1, "step": 1}
    torch.save(checkpoint, path)
    with pytest.raises(RunError, match="older pix2pix"):
        train(tiny_config.updated({"max_steps": 2}), run, resume=True)


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(tiny_config, tmp_path):
    config = tiny_config.updated({"max_steps": 2})
    train(config, tmp_path / "straight")
    stopped = RunDir(tmp_path / "stopped")
    stopped.path.mkdir()
    stopped.save_config(config)
    assert train(config, stopped.path, resume=True).step == 2
    assert_same_tensors(final_state(tmp_path / "straight")[0], final_state(stopped.path)[0], "generator")


def test_a_resume_of_a_folder_without_config_is_refused_as_not_a_run(tiny_config, tmp_path):
    with pytest.raises(RunError, match="not a pix2pix run folder"):
        train(tiny_config, tmp_path / "nothing", resume=True)
    assert not (tmp_path / "nothing").exists()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_command_line(facades, tmp_path):
    run = tmp_path / "run"
    flags = ["train", "--out", str(run), *tiny_flags(facades)]
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_SAVING.replace("== 2", "== 1"), *flags],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (run / "config.json").is_file() and not RunDir(run).checkpoints()
    resumed = run_cli("train", "--out", str(run), "--resume", "--max-steps", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "no checkpoint yet" in resumed.stderr
    assert [p.name for p in RunDir(run).checkpoints()] == ["step_00000002.pt"]


def test_a_resume_may_change_the_batch_size_and_continues_the_epoch_by_images(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config.updated({"max_steps": 2}), run)
    resumed = train(resolve_config({"batch_size": 1, "max_steps": 5}, resume=run), run, resume=True)
    position = torch.load(RunDir(run).checkpoints()[-1], weights_only=True)["position"]
    assert resumed.step == 5 and position == {"epoch": 0, "images": 7, "step": 5}
