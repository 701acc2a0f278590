"""Tiny studies (32 px images made here) and a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pix2pix.study.settings import Study, StudySettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def write_images(folder: Path, names: list[str], seed: int, suffix: str = "") -> Path:
    """32x32 PNGs, one per name: a colour gradient with a square on it, so that a broken (shuffled) one shows."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 32)[:, None, None]
    for name in names:
        top, bottom = rng.integers(0, 256, (2, 1, 1, 3))
        pixels = top * (1 - ramp) + bottom * ramp + np.zeros((32, 32, 3))
        y, x = rng.integers(2, 18, 2)
        pixels[y:y + 12, x:x + 12] = rng.integers(0, 256, 3)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}{suffix}.png")
    return folder


def name_study(names: int, conditions: tuple[str, ...] = ("L1", "cGAN"), **settings) -> Study:
    """A study of image names only (no files): enough for schedules."""
    inputs = [f"in{i:03d}" for i in range(names)]
    return Study(Path("unused"), StudySettings(**settings), {name: f"real/{name}" for name in inputs},
                 {label: {name: f"fake/{label}/{name}" for name in inputs} for label in conditions},
                 {name: f"broken/{name}" for name in inputs})


@pytest.fixture
def model_folders(tmp_path) -> tuple[Path, dict[str, Path]]:
    """A real folder and two models' output folders over the same 12 inputs."""
    names = [f"img{i:02d}" for i in range(12)]
    real = write_images(tmp_path / "real", names, seed=0)
    fakes = {label: write_images(tmp_path / label, names, seed=seed) for seed, label in enumerate(("L1", "L1+cGAN"), 1)}
    return real, fakes


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium under Playwright, headless."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright: "
                                                                       'pip install "pix2pix[study,test]"')
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip(f"the browser test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


LIGHT_SERVE = ("import sys; from pix2pix.study.app import serve; from pix2pix.study.settings import load_study; "
               "serve(load_study(sys.argv[1]), port=int(sys.argv[2]))")
"""The server of `pix2pix study serve` without the CLI's imports (torch): seconds less per start on a busy machine."""


@dataclass
class Server:
    """The study's server running in its own process, as raters meet it; `cli` starts it as `pix2pix study serve`."""

    study: Path
    port: int
    cli: bool = False
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> Server:
        command = ["-m", "pix2pix", "study", "serve"] if self.cli else ["-c", LIGHT_SERVE]
        self.process = subprocess.Popen([sys.executable, *command, str(self.study), *(["--port"] if self.cli else []),
                                         str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server stopped: {self.process.stdout.read().decode()}")
            try:
                httpx.get(self.url + "api/study", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not answer within 60 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash or power cut of the process."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(study: Path, cli: bool = False) -> Iterator[Server]:
    server = Server(study, free_port(), cli).start()
    try:
        yield server
    finally:
        server.stop()
