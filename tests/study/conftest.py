"""Tiny studies (32 px images made here) and a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.study.settings import Study, StudySettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def write_images(folder: Path, names: list[str], seed: int, suffix: str = "") -> Path:
    """Flat-coloured 32x32 PNGs with a little noise, one per name."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        pixels = np.clip(rng.integers(0, 256, 3) + rng.integers(-20, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{name}{suffix}.png")
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
