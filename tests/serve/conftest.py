"""A tiny trained run of the embedded facades (whose label maps have a palette), served in-process or for real."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.config import RunConfig
from pix2pix.training.loop import train
from tests.conftest import TINY

pytest.importorskip("fastapi", reason='the server needs the serve extra: pip install "pix2pix[serve]"')


@pytest.fixture(scope="session")
def served_run(tmp_path_factory, facades) -> Path:
    run = tmp_path_factory.mktemp("serve") / "run"
    train(RunConfig().updated({**TINY, "data": str(facades), "max_steps": 2}), run)
    return run


def png_bytes(width: int = 40, height: int = 24, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A gradient in `mode`, encoded as `fmt`."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    image = Image.fromarray(np.stack([x, x[::-1], x / 2], axis=2).astype(np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: its size in bytes is about 3 x its pixels."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(served_run) -> Iterator[str]:
    """`pix2pix serve RUN` as a user starts it, on a free loopback port: its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pix2pix", "serve", str(served_run), "--port", str(port),
                                "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(port, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server ended: {process.stdout.read()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the server did not listen on port {port} in {timeout} s")
