"""Translating with a trained run: any size, both test modes, seeds, the Python API and the command."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image

from pix2pix import Translator
from pix2pix.runs import RunError
from pix2pix.training.loop import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, facades):
    from pix2pix.config import RunConfig
    from tests.conftest import TINY

    run = tmp_path_factory.mktemp("translate") / "run"
    train(RunConfig().updated({**TINY, "data": str(facades), "max_steps": 4}), run)
    return run


def gradient_image(width: int, height: int) -> Image.Image:
    x = torch.linspace(0, 255, width).expand(height, width)
    y = torch.linspace(0, 255, height)[:, None].expand(height, width)
    return Image.fromarray(torch.stack([x, y, (x + y) / 2], dim=-1).to(torch.uint8).numpy())


@pytest.mark.parametrize("size", [(300, 217), (33, 47), (32, 32), (5, 3)])
def test_any_input_size_gives_an_output_of_that_size(trained_run, size):
    output = Translator.load(trained_run, mode="eval")(gradient_image(*size))
    assert output.size == size and output.mode == "RGB"


def test_eval_mode_is_deterministic_and_paper_mode_varies_unless_seeded(trained_run):
    image = gradient_image(64, 48)
    evaluate = Translator.load(trained_run, mode="eval")
    assert evaluate(image).tobytes() == evaluate(image).tobytes()
    paper = Translator.load(trained_run, mode="paper")
    assert paper(image).tobytes() != paper(image).tobytes()
    seeded_a, seeded_b = Translator.load(trained_run, seed=3), Translator.load(trained_run, seed=3)
    assert seeded_a(image).tobytes() == seeded_b(image).tobytes()
    assert seeded_a(image).tobytes() != Translator.load(trained_run, seed=4)(image).tobytes()


def test_paper_mode_uses_batch_statistics_and_leaves_the_running_ones_alone(trained_run):
    translator = Translator.load(trained_run, mode="paper", seed=0)
    norms = [m for m in translator.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    batch = torch.rand(2, 3, 32, 32) * 2 - 1
    both = translator(batch)
    alone = translator(batch[:1])
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms))
    assert all(m.track_running_stats for m in norms)
    assert not torch.allclose(both[:1], alone, atol=1e-4)  # statistics come from the batch it sees


def test_load_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(RunError, match="not a pix2pix run folder"):
        Translator.load(tmp_path)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], capture_output=True, text=True)


def test_translate_command_writes_outputs_targets_and_a_report(trained_run, facades, tmp_path):
    out = tmp_path / "out"
    result = run_cli("translate", str(trained_run), str(facades / "test"), "--out", str(out), "--aligned",
                     "--seed", "1", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    names = sorted(p.stem for p in (facades / "test").iterdir())
    for name in names:
        assert Image.open(out / f"{name}.png").size == (32, 32)
        assert Image.open(out / f"{name}_target.png").size == (32, 32)
    report = (out / "report.html").read_text()
    assert all(f"{name}_target.png" in report for name in names)


def test_translate_goes_on_past_bad_files_and_says_which_failed(trained_run, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    gradient_image(40, 30).save(inputs / "good.png")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    result = run_cli("translate", str(trained_run), str(inputs), "--out", str(out), "--mode", "eval")
    assert result.returncode == 1
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr
    assert Image.open(out / "good.png").size == (40, 30)
    assert not (out / "broken.png").exists() and not list(out.glob(".*.tmp"))


def test_16bit_gray_to_4band_tiff_trains_and_translates_at_full_fidelity(tmp_path):
    """Channels come from the data (1 in, 4 out) and a 16-bit input gives a 16-bit output."""
    import numpy as np

    tifffile = pytest.importorskip("tifffile")
    from pix2pix.data.images import load_image_data
    from tests.conftest import tiny_flags

    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (tmp_path / "data" / side).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 65535, (32, 32), dtype=np.uint16)).save(tmp_path / "data" / "A" / f"{i}.png")
        tifffile.imwrite(tmp_path / "data" / "B" / f"{i}.tif", rng.integers(0, 255, (32, 32, 4), dtype=np.uint8),
                         photometric="minisblack", planarconfig="contig")
    run, out = tmp_path / "run", tmp_path / "out"
    trained = run_cli("train", "--out", str(run), *tiny_flags(tmp_path / "data"), "--max-steps", "1")
    assert trained.returncode == 0, trained.stderr
    translated = run_cli("translate", str(run), str(tmp_path / "data" / "A" / "0.png"), "--out", str(out))
    assert translated.returncode == 0, translated.stderr
    output = load_image_data(out / "0.png")
    assert (output.channels, output.bit_depth, output.size) == (4, 16, (32, 32))
