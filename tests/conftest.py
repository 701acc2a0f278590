"""Shared fixtures: a tiny embedded dataset and settings that train in a fraction of a second per step."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from pix2pix.config import RunConfig
from pix2pix.data.synthetic import generate_facades

os.environ["OMP_NUM_THREADS"] = "1"  # also for the command-line runs the tests start
torch.set_num_threads(1)
"""Tiny tensors gain nothing from threads, and on a busy host the thread pool's spinning costs 10x or more."""

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
"""For the checks of the GPU paths, which run where a GPU is."""

needs_cxx = pytest.mark.skipif(not any(shutil.which(cxx) for cxx in (os.environ.get("CXX"), "g++") if cxx),
                               reason="TorchInductor (--compile) needs a C++ compiler")
"""For the checks of compiled translation, which TorchInductor builds with the C++ compiler it finds (CXX or g++)."""

TINY = {"crop_size": 32, "load_size": 36, "ngf": 8, "ndf": 8, "batch_size": 2, "n_epochs": 2, "n_epochs_decay": 1,
        "num_workers": 0, "log_every": 1, "save_every": 0, "num_samples": 2, "val_images": 4}
"""The paper's architecture and objective at 32x32 and an eighth of the width."""


@pytest.fixture(scope="session")
def facades(tmp_path_factory) -> Path:
    """8 training, 4 validation and 4 test pairs of the embedded facades at 32 px."""
    return generate_facades(tmp_path_factory.mktemp("facades"), train=8, val=4, test=4, size=32, seed=0)


@pytest.fixture
def tiny_config(facades) -> RunConfig:
    return RunConfig().updated({**TINY, "data": str(facades)})


def tiny_flags(facades: Path, **overrides) -> list[str]:
    """TINY as command-line flags, with overrides (use None to drop a flag)."""
    settings = {**TINY, "data": str(facades), **overrides}
    return [part for key, value in settings.items() if value is not None
            for part in (f"--{key.replace('_', '-')}", str(value))]
