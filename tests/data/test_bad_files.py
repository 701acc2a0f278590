"""Bad files end to end: training stops listing them or skips them (--on-bad-file), an error inside a loader
worker reaches the user as one line naming the file, and translate goes on past every kind of bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.cli import main, user_message
from pix2pix.config import RunConfig
from pix2pix.data import validate
from pix2pix.data.dataset import EpochSampler, PairedDataset, find_pairs, training_loader
from pix2pix.data.images import DataError
from pix2pix.data.reading import load_image_data
from pix2pix.models import build_generator
from pix2pix.runs import RunDir
from pix2pix.training.loop import screened_data, train
from pix2pix.training.processes import ONE_PROCESS
from tests.conftest import TINY, tiny_flags
from tests.data.conftest import bomb_png


def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.fixture
def damaged(facades, tmp_path) -> Path:
    """The tiny facades with three bad training files: empty, truncated, not an image."""
    data = Path(shutil.copytree(facades, tmp_path / "data"))
    train = sorted((data / "train").iterdir())
    train[0].write_bytes(b"")
    truncate(train[1])
    train[2].write_text("not an image")
    return data


CPU = torch.device("cpu")


def config_for(data: Path, **changes) -> RunConfig:
    return RunConfig().updated({**TINY, "data": str(data), **changes})


# --- training: --on-bad-file ----------------------------------------------------------------------------------


def test_fail_stops_before_training_naming_every_bad_file(damaged, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DataError) as info:
        train(config_for(damaged), run)
    message = str(info.value)
    bad = sorted((damaged / "train").iterdir())[:3]
    assert "3 bad file(s) among 12" in message and "`on_bad_file` skip" in message
    assert all(f"train/{path.name}: " in message for path in bad)
    assert str(run / "bad_files.json") in message
    listed = json.loads((run / "bad_files.json").read_text())
    assert sorted(Path(p["path"]) for p in listed["problems"]) == bad
    assert not (run / "checkpoints").exists() and not (run / "config.json").exists()


def test_skip_drops_bad_pairs_names_each_file_once_and_trains(damaged, tmp_path, capsys):
    run = tmp_path / "run"
    config = config_for(damaged, on_bad_file="skip", max_steps=2)
    data = screened_data(config, RunDir(run), ONE_PROCESS, CPU)
    assert len(data.dataset) == 5 and len(data.held_out) == 4
    err = capsys.readouterr().err
    bad = sorted((damaged / "train").iterdir())[:3]
    assert [line.split(": ")[2].removeprefix("skipping ") for line in err.splitlines() if "skipping" in line] == [
        str(p) for p in bad]
    assert "skipped 3 bad file(s), kept train 5 of 8 pairs, val 4 of 4 pairs" in err
    assert train(config, run).step == 2
    assert len(json.loads((run / "bad_files.json").read_text())["problems"]) == 3


def test_a_clean_start_removes_a_stale_bad_file_list(facades, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "bad_files.json").write_text("{}")
    screened_data(config_for(facades), RunDir(run), ONE_PROCESS, CPU)
    assert not (run / "bad_files.json").exists()


def test_a_resume_reads_only_the_files_changed_since_and_stops_on_new_damage(facades, tmp_path, monkeypatch):
    data, run = Path(shutil.copytree(facades, tmp_path / "data")), tmp_path / "run"
    train(config_for(data, max_steps=1), run)
    reads = []
    monkeypatch.setattr(validate, "load_image_data", lambda path, **kwargs: reads.append(path) or
                        load_image_data(path, **kwargs))
    again = screened_data(config_for(data, max_steps=2), RunDir(run), ONE_PROCESS, CPU)
    assert reads == [] and len(again.dataset) == 8 and len(again.held_out) == 4
    victim = truncate(sorted((data / "train").iterdir())[5])
    with pytest.raises(DataError, match=f"(?s)1 bad file.*train/{victim.name}: cannot decode"):
        train(config_for(data, max_steps=2), run, resume=True)
    assert reads == [victim]


# --- errors inside loader workers -----------------------------------------------------------------------------


def test_a_data_error_in_a_worker_process_arrives_as_one_line_naming_the_file(facades, tmp_path):
    data = Path(shutil.copytree(facades / "train", tmp_path / "train"))
    broken = truncate(sorted(data.iterdir())[0])
    dataset = PairedDataset(find_pairs(data), config_for(facades).data, 3, 3, train=True)
    loader = training_loader(dataset, EpochSampler(len(dataset), 0), batch_size=8, num_workers=1)
    with pytest.raises(DataError) as info:
        next(iter(loader))
    assert "Original Traceback" in str(info.value)  # what PyTorch makes of it; the command shows:
    line = user_message(info.value)
    assert line.startswith(f"{broken}: cannot decode (") and "\n" not in line


def test_train_command_reports_a_file_damaged_after_validation_in_one_line(damaged, facades, tmp_path):
    """The file is truncated after the start-up check passed, so that only a loader worker meets it."""
    data = Path(shutil.copytree(facades, tmp_path / "fresh"))
    victim = sorted((data / "train").iterdir())[3]
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import pix2pix.training.loop as loop
        checked = loop.screen_for_training

        def check_then_damage(*args, **kwargs):
            report = checked(*args, **kwargs)
            victim = Path({str(victim)!r})
            victim.write_bytes(victim.read_bytes()[:200])
            return report

        loop.screen_for_training = check_then_damage
        from pix2pix.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    flags = tiny_flags(data, num_workers=1)
    result = subprocess.run([sys.executable, "-c", script, "train", "--out", str(tmp_path / "run"), *flags],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("pix2pix: error:")]
    assert errors == [line for line in errors if line.startswith(f"pix2pix: error: {victim}: cannot decode (")]
    assert len(errors) == 1 and "Traceback" not in result.stderr


# --- translate ------------------------------------------------------------------------------------------------


def random_run(folder: Path, **model) -> Path:
    """A run folder with untrained weights: enough to translate, without the cost of training."""
    config = RunConfig().updated({**TINY, **model})
    RunDir(folder).save_config(config)
    RunDir(folder).save_generator(build_generator(config).state_dict(), 0)
    return folder


def test_translate_goes_on_past_every_kind_of_bad_input(tmp_path, capsys):
    run = random_run(tmp_path / "run")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(inputs / "good.png")
    (inputs / "empty.png").write_bytes(b"")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(inputs / "cut.png")
    truncate(inputs / "cut.png")
    (inputs / "notes.jpg").write_text("not an image")
    (inputs / "bomb.png").write_bytes(bomb_png())
    out = tmp_path / "out"
    assert main(["translate", str(run), str(inputs), "--out", str(out), "--mode", "eval", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    failed = {line.split(": ")[1] for line in err.splitlines() if line.startswith("failed: ")}
    assert failed == {str(inputs / name) for name in ("empty.png", "cut.png", "notes.jpg", "bomb.png")}
    assert "empty file (0 bytes)" in err and "image bomb" in err and "not an image" in err and "truncated" in err
    assert "4 of 5 input(s) failed" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "report.html"]


def test_translate_writes_16_bits_for_16_bit_inputs(tmp_path):
    gray_run, colour_run = random_run(tmp_path / "gray", input_nc=1, output_nc=1), random_run(tmp_path / "rgb")
    y, x = np.mgrid[0:24, 0:36]
    gray = (x * 1800 + y * 3).astype(np.uint16)
    Image.fromarray(gray).save(tmp_path / "gray16.png")
    from pix2pix.data.images import ImageData
    from pix2pix.data.writing import write_image

    write_image(ImageData.from_pixels(np.stack([gray, gray // 2, gray // 3], axis=-1)), tmp_path / "rgb16.png")
    write_image(ImageData.from_pixels(np.concatenate([gray, gray], axis=1)[:, :, None]), tmp_path / "pair16.png")
    assert main(["translate", str(gray_run), str(tmp_path / "gray16.png"), "--out", str(tmp_path / "g")]) == 0
    assert main(["translate", str(colour_run), str(tmp_path / "rgb16.png"), "--out", str(tmp_path / "c")]) == 0
    assert main(["translate", str(gray_run), str(tmp_path / "pair16.png"), "--aligned", "--out",
                 str(tmp_path / "a")]) == 0
    for path, channels in [(tmp_path / "g" / "gray16.png", 1), (tmp_path / "c" / "rgb16.png", 3),
                           (tmp_path / "a" / "pair16.png", 1), (tmp_path / "a" / "pair16_target.png", 1)]:
        image = load_image_data(path)
        assert (image.bit_depth, image.channels, image.size) == (16, channels, (36, 24)), path
    assert np.array_equal(load_image_data(tmp_path / "a" / "pair16_input.png").pixels[:, :, 0], gray)


def test_translate_writes_multichannel_tiffs(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    run = random_run(tmp_path / "run", input_nc=5, output_nc=5)
    tifffile.imwrite(tmp_path / "bands.tif", np.zeros((20, 24, 5), np.uint16), photometric="minisblack",
                     planarconfig="contig")
    assert main(["translate", str(run), str(tmp_path / "bands.tif"), "--out", str(tmp_path / "out")]) == 0
    image = load_image_data(tmp_path / "out" / "bands.tif")
    assert (image.channels, image.bit_depth, image.size) == (5, 16, (24, 20))
