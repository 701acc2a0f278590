"""Faults a long run meets: divergence, a full disk, kill -9 at any moment, SIGTERM; each ends clearly and the run
resumes exactly."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pix2pix.atomic
import pix2pix.training.records
from pix2pix.cli import main
from pix2pix.runs import RunDir
from pix2pix.training.loop import train
from pix2pix.training.step import Diverged, Networks
from tests.conftest import tiny_flags
from tests.training.test_training import assert_same_tensors, final_state, read_log


def assert_same_run(a: Path, b: Path) -> None:
    """Generator, checkpoint and log of two runs equal bitwise, and no temporary file left in either."""
    weights_a, checkpoint_a = final_state(a)
    weights_b, checkpoint_b = final_state(b)
    assert_same_tensors(weights_a, weights_b, "generator")
    for key in ("training", "rng", "position"):
        assert_same_tensors(checkpoint_a[key], checkpoint_b[key], key)
    assert read_log(a) == read_log(b)
    assert sorted(p.name for p in (a / "samples").iterdir()) == sorted(p.name for p in (b / "samples").iterdir())
    assert not list(b.rglob(".*.tmp"))


def nan_from_step(monkeypatch, bad_step: int) -> None:
    """Networks.step as if the learning rate blew up at `bad_step`: NaN losses, then NaN weights."""
    real_step, count = Networks.step, [0]

    def step(self, batch):
        count[0] += 1
        losses = real_step(self, batch)
        if count[0] >= bad_step:
            with torch.no_grad():
                next(self.generator.parameters()).fill_(float("nan"))
            losses["G_GAN"] = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(Networks, "step", step)


def test_divergence_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path,
                                                                                       monkeypatch):
    nan_from_step(monkeypatch, bad_step=3)
    run = tmp_path / "run"
    with pytest.raises(Diverged, match="loss `G_GAN` is nan at step 3"):
        train(tiny_config.updated({"save_every": 1}), run)
    assert [p.name for p in RunDir(run).checkpoints()] == ["step_00000001.pt", "step_00000002.pt"]
    assert RunDir(run).generator_step() == 2
    assert all(torch.isfinite(t).all() for t in load_file(str(run / "generator.safetensors")).values())


def test_divergence_seen_only_at_a_checkpoint_is_caught_before_it_is_saved(tiny_config, tmp_path, monkeypatch):
    nan_from_step(monkeypatch, bad_step=3)
    run = tmp_path / "run"
    with pytest.raises(Diverged, match="at step 3"):
        train(tiny_config.updated({"log_every": 100}), run)
    assert not RunDir(run).checkpoints() and not (run / "generator.safetensors").exists()


def test_the_command_exits_1_with_one_line_on_divergence(facades, tmp_path, monkeypatch, capsys):
    nan_from_step(monkeypatch, bad_step=2)
    assert main(["train", "--out", str(tmp_path / "run"), *tiny_flags(facades)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [errors[0]] and "step 2" in errors[0] and "--lr" in errors[0]


WRITE_SITES = [("step_00000004.pt", 1), ("generator.safetensors", 2), ("step_0000004.png", 1),
               ("metrics.json", 2), ("report.html", 2), ("losses.png", 2), ("losses.jsonl", 5)]


@pytest.fixture(scope="module")
def straight(facades, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("straight") / "run"
    assert main(["train", "--out", str(run), *tiny_flags(facades, save_every=2)]) == 0
    return run


@pytest.mark.parametrize("name, nth", WRITE_SITES)
def test_a_full_disk_at_each_write_gives_one_line_and_resume_is_exact(facades, straight, tmp_path, monkeypatch,
                                                                      capsys, name, nth):
    calls = []

    def full(opener):
        def fake(path, mode="r", *args, **kwargs):
            target = Path(path).name
            if target == name or target.startswith(f".{name}."):
                calls.append(path)
                if len(calls) == nth and ("+" in mode or "a" in mode):
                    raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return opener(path, mode, *args, **kwargs)
        return fake

    monkeypatch.setattr(pix2pix.atomic, "open", full(open), raising=False)
    monkeypatch.setattr(pix2pix.training.records, "open", full(open), raising=False)
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *tiny_flags(facades, save_every=2)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert errors[-1].startswith("pix2pix: error: ") and errors[-1].endswith(f"{name}: No space left on device")
    assert "Traceback" not in "\n".join(errors) and not list(run.rglob(".*.tmp"))
    assert all(torch.load(p, weights_only=True) for p in RunDir(run).checkpoints())
    monkeypatch.undo()
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert_same_run(straight, run)


def test_resume_removes_orphaned_temporary_files_and_redoes_an_unfinished_record(facades, straight, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *tiny_flags(facades, save_every=2)]) == 0
    (run / "samples" / "step_0000012.png").unlink()
    orphans = [run / f".generator.safetensors.{uuid.uuid4().hex}.tmp",
               run / "samples" / f".step_0000012.png.{uuid.uuid4().hex}.tmp",
               run / f".metrics.json.{uuid.uuid4().hex}.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half")
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert_same_run(straight, run)


KILLABLE = textwrap.dedent("""
    import os, signal, sys
    kill_at, on = int(os.environ["KILL_AT"]), os.environ["KILL_ON"]
    real, seen = getattr(os, on), [0]
    def maybe_die(*args, **kwargs):
        seen[0] += 1
        if seen[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(os, on, maybe_die)
    from pix2pix.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def train_until_killed(run: Path, flags: list[str], kill_at: int, on: str) -> int:
    """Trains (or resumes, once the run folder holds its config), killed with SIGKILL at the `kill_at`-th call of
    os.`on`."""
    resume = ["--resume"] if (run / "config.json").exists() else flags
    env = {**os.environ, "KILL_AT": str(kill_at), "KILL_ON": on}
    done = subprocess.run([sys.executable, "-c", KILLABLE, "train", "--out", str(run), *resume],
                          capture_output=True, text=True, env=env)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode


def test_kill_9_at_random_moments_and_resume_ends_bitwise_equal(facades, straight, tmp_path):
    """os.fsync comes just before a temporary file is renamed (so a kill there leaves it), os.replace just
    after; both happen at every write of the run folder, so the kills land in every kind of save. A longer trial:
    FAULT_KILLS=100 FAULT_SEED=1 pytest -s -k kill_9 tests/training/test_faults.py."""
    rng, flags = random.Random(int(os.environ.get("FAULT_SEED", 20240607))), tiny_flags(facades, save_every=2)
    kills, finished = 0, 0
    while kills < int(os.environ.get("FAULT_KILLS", 12)):
        run = tmp_path / f"run{finished}"
        while train_until_killed(run, flags, rng.randint(1, 30), rng.choice(["fsync", "replace"])) != 0:
            kills += 1
        assert_same_run(straight, run)
        finished += 1
    assert finished >= 1
    print(f"{kills} kills; {finished} killed runs resumed to the end, each bitwise equal to the straight run")


def wait_for_steps(process: subprocess.Popen, log: Path, steps: int) -> None:
    import time

    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= steps):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


def test_sigterm_saves_a_checkpoint_and_exits_143(facades, tmp_path):
    run = tmp_path / "run"
    flags = tiny_flags(facades, n_epochs=1000, batch_size=1)
    process = subprocess.Popen([sys.executable, "-m", "pix2pix", "train", "--out", str(run), *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_steps(process, run / "losses.jsonl", 3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "continue it with --resume" in stdout and RunDir(run).checkpoints()


TERMINATED_IN_SET_UP = textwrap.dedent("""
    import os, signal, sys
    import pix2pix.training.loop as loop
    real = loop.screened_data
    def screened_then_terminated(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args)
    loop.screened_data = screened_then_terminated
    from pix2pix.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_sigterm_during_set_up_ends_with_a_message(facades, tmp_path):
    done = subprocess.run([sys.executable, "-c", TERMINATED_IN_SET_UP, "train", "--out", str(tmp_path / "run"),
                           *tiny_flags(facades)], capture_output=True, text=True)
    assert done.returncode == 143 and "pix2pix: terminated" in done.stderr and "Traceback" not in done.stderr

