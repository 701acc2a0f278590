"""Settings resolved once, in the library: defaults <- the run's own on resume <- file <- given <- data."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from PIL import Image

from pix2pix.config import FIELDS, SECTION_OF, ConfigError, MachineConfig, RunConfig
from pix2pix.data.synthetic import generate_facades
from pix2pix.runs import RunDir
from pix2pix.training.loop import train
from pix2pix.training.settings import RESUME_MAY_CHANGE, resolve_config
from tests.conftest import TINY, tiny_flags


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
    with pytest.raises(ConfigError, match="keeps `ngf` 8 \\(given: 16\\)"):
        resolve_config({"ngf": 16}, resume=tmp_path / "run")


def _aligned(folder, sizes_and_modes):
    """Aligned A|B files of the given (width, height, mode), named 0.png, 1.png, ... in that order."""
    folder.mkdir(parents=True)
    for i, (width, height, mode) in enumerate(sizes_and_modes):
        Image.new(mode, (width, height), 90).save(folder / f"{i}.png")
    return folder


def test_channels_of_a_new_run_are_those_of_most_files_not_of_the_first(tmp_path):
    data = _aligned(tmp_path / "d", [(64, 32, "L")] + [(64, 32, "RGB")] * 3)
    assert resolve_config({**TINY, "data": str(data)}).channels == (3, 3)


def test_channel_counts_split_evenly_are_refused_with_the_counts_and_the_settings_to_choose(tmp_path):
    data = _aligned(tmp_path / "d", [(64, 32, "L"), (64, 32, "RGB")])
    with pytest.raises(ConfigError, match=r"1 file\(s\) of 1 channel\(s\), 1 of 3.*`input_nc` and `output_nc`"):
        resolve_config({**TINY, "data": str(data)})
    assert resolve_config({**TINY, "data": str(data), "input_nc": 3, "output_nc": 3}).channels == (3, 3)


@pytest.mark.parametrize(("settings", "message"), [
    ({"crop_size": 16}, r"`patch` 70 needs `crop_size` >= 32: .*16x16 input to 8x8, 4x4, 2x2, then 1x1"),
    ({"crop_size": 8, "load_size": 8}, r"`patch` 70 needs `crop_size` >= 32"),
    ({"patch": 286}, r"`patch` 286 needs `crop_size` >= 128: .*32x32 input to 16x16, .*then 1x1"),
    ({"crop_size": 64, "load_size": 72, "patch": 286}, r"`patch` 286 needs `crop_size` >= 128"),
])
def test_a_crop_the_discriminator_cannot_judge_is_refused_with_the_smallest_that_works(facades, settings, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config({**TINY, "data": str(facades), **settings})


def test_the_smallest_crops_accepted_train_a_step(facades, tmp_path):
    for settings in ({"crop_size": 8, "load_size": 10, "patch": 16}, {"crop_size": 16, "load_size": 18, "patch": 1},
                     {"crop_size": 8, "load_size": 8, "objective": "l1"}, {"crop_size": 32, "batch_size": 1}):
        config = resolve_config({**TINY, "data": str(facades), "max_steps": 1, "val_images": 1, **settings})
        assert train(config, tmp_path / str(len(list(tmp_path.iterdir())))).step == 1


def test_preprocess_none_refuses_files_the_networks_cannot_take_naming_them(tmp_path):
    data = _aligned(tmp_path / "d", [(64, 32, "RGB"), (32, 16, "RGB"), (80, 40, "RGB")])
    with pytest.raises(ConfigError, match=r"`preprocess` none .* 2 of 3 .*1\.png: 16x16 is not a multiple of 32.*"
                                          r"2\.png: 40x40 is not a multiple of 32.*`num_downs`"):
        resolve_config({**TINY, "data": str(data), "preprocess": "none", "batch_size": 1})
    with pytest.raises(ConfigError, match=r"1 of 3 .*1\.png: D cannot judge it: its layers take a 16x16 input"):
        resolve_config({**TINY, "data": str(data), "preprocess": "none", "batch_size": 1, "crop_size": 8,
                        "load_size": 8})
    _aligned(tmp_path / "ok", [(64, 32, "RGB"), (128, 64, "RGB")])
    config = resolve_config({**TINY, "data": str(tmp_path / "ok"), "preprocess": "none", "batch_size": 1,
                             "max_steps": 2, "val_images": 1})
    assert train(config, tmp_path / "run").step == 2


def test_preprocess_none_at_a_batch_above_one_needs_one_size(tmp_path):
    data = _aligned(tmp_path / "d", [(64, 32, "RGB"), (128, 64, "RGB")])
    with pytest.raises(ConfigError, match=r"`batch_size` 2 .* one size.*32x32 \(1 file\(s\)\), 64x64 \(1"):
        resolve_config({**TINY, "data": str(data), "preprocess": "none"})


@pytest.mark.parametrize("flags", [["--crop-size", "16", "--load-size", "18"], ["--patch", "286"]])
def test_the_cli_refuses_a_crop_too_small_in_one_line_before_writing_the_run(facades, tmp_path, flags):
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "pix2pix", "train", "--out", str(run),
                             *tiny_flags(facades), *flags], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "--crop-size" in result.stderr and "--patch" in result.stderr
    assert not run.exists()


@pytest.fixture
def saved_run(facades, tmp_path):
    """A run folder as training leaves it before the first checkpoint: its resolved settings in config.json."""
    run = tmp_path / "saved"
    RunDir(run).path.mkdir()
    RunDir(run).save_config(resolve_config({**TINY, "data": str(facades)}))
    return run


def test_a_resume_refuses_another_crop_naming_each_setting_with_both_values(saved_run):
    with pytest.raises(ConfigError) as refused:
        resolve_config({"crop_size": 64, "load_size": 72, "max_steps": 210}, resume=saved_run)
    message = str(refused.value)
    assert message.startswith(f"{saved_run}: a resumed run keeps `load_size` 36 (given: 72), `crop_size` 32 "
                              "(given: 64); ")
    assert "`max_steps`" not in message and "`force`" not in message and "\n" not in message


@pytest.mark.parametrize("setting, value", [
    ("direction", "BtoA"), ("flip", False), ("preprocess", "resize"), ("layout", "aligned"), ("lr", 1e-3),
    ("beta1", 0.9), ("gan_mode", "lsgan"), ("lambda_l1", 10.0), ("conditional", False), ("ngf", 16),
    ("num_downs", 3)])
def test_a_resume_refuses_what_the_checkpoint_was_trained_with(saved_run, setting, value):
    saved = RunDir(saved_run).load_config().to_dict()
    before = next(section[setting] for section in saved.values() if setting in section)
    with pytest.raises(ConfigError, match=f"keeps `{setting}` {before} \\(given: {value}\\)"):
        resolve_config({setting: value}, resume=saved_run, force=True)


def test_a_resume_may_change_how_long_and_how_it_reports_and_the_machine(saved_run):
    changes = {"max_steps": 7, "n_epochs": 5, "n_epochs_decay": 4, "save_every": 3, "keep_checkpoints": 1,
               "log_every": 2, "num_samples": 1, "val_images": 2, "on_bad_file": "skip", "precision": "bf16",
               "batch_size": 4, "device": "cpu", "num_workers": 1, "memory_format": "contiguous",
               "dist_timeout": 60.0}
    resumed = resolve_config(changes, resume=saved_run).to_dict()
    assert {name: value for section in resumed.values() for name, value in section.items()
            if name in changes} == changes


def test_a_resume_takes_another_seed_or_dataset_only_when_forced(saved_run, facades, tmp_path):
    copy = generate_facades(tmp_path / "copy", train=2, val=0, test=0, size=32, seed=1)
    with pytest.raises(ConfigError, match=r"keeps `data` .* \(given: .*\), `seed` 0 \(given: 1\); `force` "):
        resolve_config({"seed": 1, "data": str(copy)}, resume=saved_run)
    forced = resolve_config({"seed": 1, "data": str(copy)}, resume=saved_run, force=True)
    assert (forced.train.seed, forced.data.data) == (1, str(copy))
    assert resolve_config({"data": f"{facades}/../{facades.name}"}, resume=saved_run).data.data != str(facades)


def test_a_forced_resume_refuses_a_dataset_of_other_channels(saved_run, gray_to_rgb):
    with pytest.raises(ConfigError, match=f"{saved_run}: its networks take 3 and give 3 channels; `data` "
                                          f"{gray_to_rgb} holds 1 and 3"):
        resolve_config({"data": str(gray_to_rgb)}, resume=saved_run, force=True)


def test_the_resume_policy_names_real_settings_and_every_machine_one():
    assert set(RESUME_MAY_CHANGE) <= set(FIELDS)
    assert {spec.name for spec in dataclasses.fields(MachineConfig)} <= set(RESUME_MAY_CHANGE)
    assert not any(SECTION_OF[name] == "model" for name in RESUME_MAY_CHANGE)
