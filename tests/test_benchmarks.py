"""The benchmarks run against the package as it is now: a smoke run of each at a tiny size (timings unchecked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(script: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *flags], capture_output=True, text=True)


@pytest.mark.slow
def test_train_step_benchmark_times_every_variant(facades):
    done = run_benchmark("train_step.py", "--size", "32", "--batch", "1", "--repeats", "1", "--data-steps", "2",
                         "--data", str(facades / "train"))
    assert done.returncode == 0, done.stderr
    for variant in ("naive fp32 baseline", "pix2pix fp32 (default)", "pix2pix fp32, no workers"):
        assert variant in done.stdout
    assert "wrote " in done.stdout


@pytest.mark.slow
def test_translate_benchmark_times_every_backend():
    done = run_benchmark("translate.py", "--size", "32", "--repeats", "1")
    assert done.returncode == 0, done.stderr
    for variant in ("naive eval", "pix2pix eval, torch", "pix2pix paper, onnx", "pix2pix paper, torch, compiled"):
        assert variant in done.stdout
    assert "wrote " in done.stdout


@pytest.mark.slow
def test_serve_load_benchmark_loads_and_overloads_the_real_server():
    pytest.importorskip("fastapi", reason='the server needs the serve extra: pip install "pix2pix[serve]"')
    # translations of 256 px take long enough (about 0.1 s) that 6 clients at once always overfill 1 + 1 places
    done = run_benchmark("serve_load.py", "--size", "256", "--ngf", "16", "--requests", "8", "--clients", "2",
                         "--queue", "1", "--overload-clients", "6", "--overload-requests", "12")
    assert done.returncode == 0, done.stderr
    assert "still serving after the overload: True" in done.stdout and "wrote " in done.stdout
    load, overload = (line.split() for line in done.stdout.splitlines()[1:3])
    assert load[:6] == ["load", "2", "8", "8", "0", "0"]  # all answered, no 503, no other error
    assert overload[0] == "overload" and int(overload[4]) > 0 and overload[5] == "0"  # the excess got 503s only
