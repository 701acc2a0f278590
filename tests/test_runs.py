"""The run folder: file modes, refusing weights that are not finite, and what a full disk leaves behind."""

from __future__ import annotations

import errno
import os
import uuid

import pytest
import torch

import pix2pix.runs
from pix2pix.config import RunConfig
from pix2pix.models import build_generator
from pix2pix.runs import RunDir, RunError, load_generator

CONFIG = RunConfig().updated({"crop_size": 32, "load_size": 36, "ngf": 4, "ndf": 4})


def saved_run(tmp_path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.save_config(CONFIG)
    run.save_generator(build_generator(CONFIG).state_dict(), step=3)
    return run


def test_generator_weights_get_the_mode_of_every_other_file(tmp_path):
    run = saved_run(tmp_path)
    assert (run.generator_path.stat().st_mode & 0o777) == (run.config_path.stat().st_mode & 0o777)
    assert run.generator_step() == 3


def test_weights_that_are_not_finite_are_refused_naming_the_file(tmp_path):
    run = saved_run(tmp_path)
    state = build_generator(CONFIG).state_dict()
    next(iter(state.values())).fill_(float("nan"))
    run.save_generator(state, step=4)
    with pytest.raises(RunError, match=f"{run.generator_path}: .*NaN or infinite"):
        load_generator(run)


def test_unreadable_weights_advise_a_resume_which_also_works_for_a_finished_run(tmp_path):
    run = saved_run(tmp_path)
    run.generator_path.write_bytes(b"not safetensors")
    with pytest.raises(RunError, match="--resume` \\(which, for a finished run, only rewrites them\\)"):
        load_generator(run)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_while_saving_a_checkpoint_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    run = saved_run(tmp_path)
    state = {"weights": torch.zeros(100_000)}
    first = run.save_checkpoint(state, step=1, keep=1)
    monkeypatch.setattr(pix2pix.runs, "open", lambda path, mode: open("/dev/full", mode), raising=False)
    with pytest.raises(OSError) as raised:
        run.save_checkpoint({"weights": torch.ones(100_000)}, step=2, keep=1)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(run.checkpoint_path(2))
    assert run.checkpoints() == [first] and torch.equal(torch.load(first)["weights"], state["weights"])
    assert not list(run.checkpoint_dir.glob(".*.tmp"))


def test_temporary_files_anywhere_in_the_run_are_removed_as_incomplete_saves(tmp_path):
    run = saved_run(tmp_path)
    leftovers = [run.path / f".generator.safetensors.{uuid.uuid4().hex}.tmp",
                 run.path / "samples" / f".step_0000004.png.{uuid.uuid4().hex}.tmp",
                 run.checkpoint_dir / f".step_00000004.pt.{uuid.uuid4().hex}.tmp"]
    kept = run.path / "notes.tmp"
    for path in [*leftovers, kept]:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half")
    run.remove_incomplete_saves()
    assert not any(path.exists() for path in leftovers) and kept.exists()
