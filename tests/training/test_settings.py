"""Settings resolved once, in the library: defaults <- the run's own on resume <- file <- given <- data."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pix2pix.config import ConfigError, RunConfig
from pix2pix.runs import RunDir
from pix2pix.training.loop import train
from pix2pix.training.settings import resolve_config
from tests.conftest import TINY


@pytest.fixture
def gray_to_rgb(tmp_path):
    """A/ grayscale, B/ RGB: a colorization dataset."""
    for side, mode in (("A", "L"), ("B", "RGB")):
        (tmp_path / "gray" / side).mkdir(parents=True)
        for i in range(2):
            Image.new(mode, (32, 32), 100 + i).save(tmp_path / "gray" / side / f"{i}.png")
    return tmp_path / "gray"


def test_given_settings_win_over_the_file_which_wins_over_the_defaults(facades, tmp_path):
    file = tmp_path / "settings.toml"
    file.write_text('objective = "l1+gan"\nload_size = 72\n[model]\nngf = 16\n[train]\nlr = 0.001\n')
    config = resolve_config({"data": str(facades), "crop_size": 64, "lr": 5e-4}, file)
    assert (config.model.ngf, config.data.load_size, config.data.crop_size) == (16, 72, 64)
    assert config.train.lr == 5e-4 and config.train.beta1 == 0.5
    assert config.objective == "l1+gan"


def test_an_objective_given_overrides_the_files_and_explicit_settings_beside_it_win(facades, tmp_path):
    file = tmp_path / "settings.json"
    file.write_text(json.dumps({"lambda_l1": 5.0, "objective": "cgan"}))
    config = resolve_config({"data": str(facades), "objective": "l1", "lambda_l1": 10.0}, file)
    assert (config.train.gan_mode, config.train.lambda_l1) == ("none", 10.0)
    assert resolve_config({"data": str(facades)}, file).train.lambda_l1 == 5.0


def test_channel_counts_come_from_the_data_unless_set(gray_to_rgb):
    assert resolve_config({"data": str(gray_to_rgb)}).channels == (1, 3)
    assert resolve_config({"data": str(gray_to_rgb), "direction": "BtoA"}).channels == (3, 1)
    assert resolve_config({"data": str(gray_to_rgb), "input_nc": 3}).channels == (3, 3)


def test_training_from_python_takes_the_channels_of_the_data_as_the_cli_does(gray_to_rgb, tmp_path):
    config = RunConfig().updated({**TINY, "data": str(gray_to_rgb), "max_steps": 1})
    train(config, tmp_path / "run")
    assert RunDir(tmp_path / "run").load_config().channels == (1, 3)


def test_no_dataset_names_the_setting():
    with pytest.raises(ConfigError, match="no dataset: set `data`"):
        resolve_config({"crop_size": 64})


def test_a_resume_keeps_the_runs_settings_but_takes_this_machines(facades, tmp_path):
    run = tmp_path / "run"
    first = resolve_config({**TINY, "data": str(facades), "device": "cpu", "num_workers": 0, "dist_timeout": 60,
                            "max_steps": 1})
    train(first, run)
    resumed = resolve_config({"max_steps": 2}, resume=run)
    assert (resumed.model, resumed.data) == (first.model, first.data)
    assert resumed.train == first.train.__class__(**{**vars(first.train), "max_steps": 2})
    assert (resumed.machine.device, resumed.machine.num_workers, resumed.machine.dist_timeout) == ("auto", 2, 1800.0)
    assert resolve_config({"num_workers": 1}, resume=run).machine.num_workers == 1


def test_a_resume_cannot_change_the_model(facades, tmp_path):
    train(resolve_config({**TINY, "data": str(facades), "max_steps": 1}), tmp_path / "run")
    with pytest.raises(ConfigError, match="keeps its model settings"):
        resolve_config({"ngf": 16}, resume=tmp_path / "run")
