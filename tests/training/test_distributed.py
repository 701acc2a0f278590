"""Training in several processes on CPU (gloo), started the way users start it: torchrun, or plain processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pix2pix.config import RunConfig
from pix2pix.runs import RunDir
from pix2pix.training.loop import StopRequest, train
from pix2pix.training.processes import Processes
from pix2pix.training.step import Networks
from tests.conftest import TINY, tiny_flags
from tests.training.test_training import assert_same_tensors, final_state

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")

EQUIVALENT = {"norm": "none", "dropout": 0.0, "batch_size": 1}
"""Settings under which N processes at batch 1 compute what one process at batch N does: instance norm has no
statistics across the batch, and without dropout no random draws differ between processes."""


LAUNCHERS = {
    "torchrun": lambda processes: [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   f"--nproc_per_node={processes}", "-m", "pix2pix", "train"],
    "--processes": lambda processes: [sys.executable, "-m", "pix2pix", "train", f"--processes={processes}"],
}
"""The two ways to start training processes on one machine, as commands to which the flags are added."""


def torchrun(*args: str, processes: int = 2, timeout: float = 180,
             launcher: str = "torchrun") -> subprocess.CompletedProcess:
    command = [*LAUNCHERS[launcher](processes), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def log_records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]


def training_steps(run: Path) -> list[int]:
    return [r["step"] for r in log_records(run) if "G" in r]


def test_two_processes_at_batch_1_match_one_process_at_batch_2(facades, tmp_path):
    flags = tiny_flags(facades, **EQUIVALENT, max_steps=3)
    done = torchrun(*flags, "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr
    assert "effective batch 2 processes x 1 = 2 image(s) per step" in done.stderr
    config = RunConfig().updated({**TINY, **EQUIVALENT, "data": str(facades), "batch_size": 2, "max_steps": 3})
    train(config, tmp_path / "one")
    two, one = (final_state(tmp_path / name)[1]["training"] for name in ("two", "one"))
    initial = initial_weights(config)
    for net in ("generator", "discriminator"):
        for name, value in one[net].items():
            assert torch.allclose(two[net][name], value, rtol=0, atol=1e-5), f"{net}.{name}"
        moved = max(float((one[net][name] - value).abs().max()) for name, value in initial[net].items())
        assert moved > 1e-4, f"{net} did not train, so the comparison would prove nothing"


def initial_weights(config: RunConfig) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(config.train.seed)
    networks = Networks(config, torch.device("cpu"))
    return {"generator": networks.generator.state_dict(), "discriminator": networks.discriminator.state_dict()}


def test_a_two_process_run_writes_one_set_of_files_and_resumes_with_any_number_of_processes(facades, tmp_path):
    """Rank 0 alone writes; both processes restore their own random streams, so stopping and resuming with
    two processes ends bitwise where an uninterrupted run does; a third leg continues in one process."""
    flags = tiny_flags(facades, max_steps=4)
    straight = torchrun(*flags, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    first = torchrun(*tiny_flags(facades, max_steps=2), "--out", str(tmp_path / "resumed"))
    assert first.returncode == 0, first.stderr
    run = tmp_path / "resumed"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000002.pt"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000000.png", "step_0000002.png"]
    assert training_steps(run) == [1, 2]
    assert first.stdout.count("Training finished at step 2") == 1

    second = torchrun("--out", str(run), "--resume", "--max-steps", "4")
    assert second.returncode == 0, second.stderr
    weights_a, checkpoint_a = final_state(tmp_path / "straight")
    weights_b, checkpoint_b = final_state(run)
    assert checkpoint_b["position"] == {"epoch": 2, "images": 0, "step": 4}
    assert_same_tensors(weights_a, weights_b, "generator")
    assert_same_tensors(checkpoint_a["training"], checkpoint_b["training"], "training")
    assert_same_tensors(checkpoint_a["rng"], checkpoint_b["rng"], "rng")

    config = RunDir(run).load_config().updated({"max_steps": 7})
    train(config, run, resume=True)
    assert training_steps(run) == [1, 2, 3, 4, 5, 6, 7]
    assert final_state(run)[1]["position"] == {"epoch": 2, "images": 6, "step": 7}


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_a_setting_that_cannot_work_stops_every_process_with_the_reason(facades, tmp_path, launcher):
    done = torchrun(*tiny_flags(facades, norm="syncbatch", max_steps=1), "--out", str(tmp_path / "run"),
                    launcher=launcher)
    assert done.returncode != 0
    for rank in (0, 1):
        assert f"error: rank {rank}: --norm syncbatch needs CUDA devices" in done.stderr
    assert not our_traceback(done.stderr)
    assert not (tmp_path / "run" / "checkpoints").exists()
    if launcher == "--processes":  # which also leaves out torchrun's traceback and report
        assert done.returncode == 2 and "Traceback" not in done.stderr and "FAILED" not in done.stderr
        assert done.stderr.splitlines()[-1].startswith("pix2pix: training stopped: rank ")
        assert "exited with status 2" in done.stderr.splitlines()[-1]


def test_processes_checks_the_settings_and_the_data_once_before_starting_any(tmp_path):
    missing = tmp_path / "nothere"
    done = torchrun(*tiny_flags(missing), "--out", str(tmp_path / "run"), launcher="--processes")
    assert done.returncode == 2
    assert done.stderr == f"pix2pix: error: {missing}: dataset folder not found\n"


def test_bad_data_found_by_rank_0_stops_the_others_before_the_first_step(facades, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(facades, data)
    (data / "train" / "0003.png").write_bytes(b"not a png")
    run = tmp_path / "run"
    done = torchrun(*tiny_flags(data, max_steps=1, input_nc=3, output_nc=3), "--out", str(run))
    assert done.returncode != 0
    assert "error: rank 0: " in done.stderr and "0003.png" in (run / "bad_files.json").read_text()
    assert "pix2pix: rank 1: stopped because rank 0 failed (see its message)" in done.stderr
    assert not our_traceback(done.stderr)


def our_traceback(stderr: str) -> bool:
    """A traceback through this package (torchrun adds its own when a worker fails: that one is expected)."""
    return any(line.strip().startswith("File ") and "pix2pix" + os.sep in line for line in stderr.splitlines())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_processes(facades: Path, run: Path, **settings) -> list[subprocess.Popen]:
    """Two training processes started by hand (as a cluster scheduler would), on a schedule too long to end."""
    port = free_port()
    flags = tiny_flags(facades, n_epochs=100_000, **settings)
    processes = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        processes.append(subprocess.Popen([sys.executable, "-m", "pix2pix", "train", *flags, "--out", str(run)],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def wait_for_training(run: Path, processes: list[subprocess.Popen], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (run / "losses.jsonl").exists() and training_steps(run):
            return
        if any(p.poll() is not None for p in processes):
            raise AssertionError(processes[0].communicate()[1] + processes[1].communicate()[1])
        time.sleep(0.2)
    raise AssertionError("training did not start")


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_when_a_process_dies_or_hangs_the_other_stops_with_a_clear_message(facades, tmp_path, fault):
    run = tmp_path / "run"
    main, other = processes = start_processes(facades, run, dist_timeout=5)
    try:
        wait_for_training(run, processes)
        os.kill(other.pid, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        _, stderr = main.communicate(timeout=90)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert main.returncode == 1
    assert "rank 0: lost contact with the other training processes" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert [p.name for p in RunDir(run).checkpoint_dir.glob(".*")] == []


def test_process_devices_follow_the_local_rank():
    two = Processes(rank=1, world_size=2, local_rank=1)
    assert two.device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert two.device("auto") == torch.device("cpu")


def test_ctrl_c_passed_on_twice_by_torchrun_is_one_request_but_a_later_second_one_interrupts():
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        stop.requested_at -= StopRequest.GRACE_S + 1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_ctrl_c_on_the_launcher_checkpoints_the_last_step_of_every_process(facades, tmp_path, launcher):
    """The launcher passes Ctrl-C on to its workers; they agree on the step to stop at and rank 0 saves it."""
    run = tmp_path / "run"
    command = [*LAUNCHERS[launcher](2), *tiny_flags(facades, n_epochs=100_000), "--out", str(run)]
    started = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        wait_for_training(run, [started])
        started.send_signal(signal.SIGINT)
        stdout, stderr = started.communicate(timeout=90)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
            started.communicate()
    assert "Interrupted: checkpoint of step" in stderr and "Training interrupted at step" in stdout, stderr
    if launcher == "--processes":
        assert started.returncode == 130 and "Traceback" not in stderr
    checkpoint = torch.load(RunDir(run).checkpoints()[-1], weights_only=True)
    assert training_steps(run)[-1] == checkpoint["position"]["step"]
    first, second = checkpoint["rng"]["torch"]
    assert not torch.equal(first, second), "both processes drew the same dropout noise"
