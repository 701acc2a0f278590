"""Settings: the paper's defaults, files in and out, validation that names the setting, and the lr schedule."""

from __future__ import annotations

import json

import pytest
import torch

from pix2pix.config import ConfigError, RunConfig, read_settings_file
from pix2pix.training.step import Networks, lr_factor


def test_defaults_reproduce_the_paper():
    config = RunConfig()
    m, d, t = config.model, config.data, config.train
    assert (t.lr, t.beta1, t.beta2) == (2e-4, 0.5, 0.999)
    assert t.lambda_l1 == 100.0
    assert t.batch_size == 1
    assert (d.load_size, d.crop_size) == (286, 256)
    assert d.preprocess == "resize_and_crop" and d.flip is True and d.direction == "AtoB"
    assert (m.ngf, m.ndf) == (64, 64)
    assert m.patch == 70
    assert m.norm == "batch"
    assert t.gan_mode == "vanilla"
    assert m.dropout == 0.5
    assert (t.n_epochs, t.n_epochs_decay) == (100, 100)
    assert m.conditional is True and m.skip_connections is True
    assert m.init_gain == 0.02
    assert (m.input_nc, m.output_nc) == (None, None)  # from the training data
    assert config.channels == (3, 3)  # a network built without data is RGB
    assert config.generator_depth == 8
    assert config.objective == "l1+cgan"


def test_defaults_are_valid():
    RunConfig().validate()


def test_updated_returns_a_checked_copy():
    base = RunConfig()
    changed = base.updated({"lr": 1e-3, "crop_size": 64, "norm": "instance"})
    assert (changed.train.lr, changed.data.crop_size, changed.model.norm) == (1e-3, 64, "instance")
    assert (base.train.lr, base.data.crop_size, base.model.norm) == (2e-4, 256, "batch")
    assert changed != base


def test_json_round_trip(tmp_path):
    config = RunConfig().updated({"data": "/some/where", "crop_size": 64, "load_size": 72, "num_downs": 5,
                                  "lambda_l1": 10.0, "conditional": False, "max_steps": 12, "seed": 7,
                                  "direction": "BtoA", "patch": 16})
    path = tmp_path / "config.json"
    config.save(path)
    on_disk = json.loads(path.read_text())
    assert set(on_disk) == {"model", "data", "train", "machine"}
    assert on_disk["train"]["lambda_l1"] == 10.0
    loaded = RunConfig.load(path)
    assert loaded == config
    assert loaded.to_dict() == config.to_dict()


def test_toml_with_sections_loads(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nngf = 32\nnorm = "instance"\n\n[data]\ncrop_size = 128\nload_size = 142\n\n'
                    '[train]\nlr = 1e-4\nn_epochs = 5\n')
    config = RunConfig.from_dict(read_settings_file(path), str(path))
    assert (config.model.ngf, config.model.norm) == (32, "instance")
    assert (config.data.crop_size, config.data.load_size) == (128, 142)
    assert (config.train.lr, config.train.n_epochs) == (1e-4, 5)
    assert config.train.beta1 == 0.5  # untouched settings keep their defaults
    assert RunConfig.load(path) == config


def test_flat_json_loads(tmp_path):
    path = tmp_path / "flat.json"
    path.write_text(json.dumps({"ngf": 16, "crop_size": 32, "load_size": 36, "gan_mode": "lsgan", "flip": False}))
    config = RunConfig.from_dict(read_settings_file(path))
    assert config.model.ngf == 16
    assert (config.data.crop_size, config.data.load_size, config.data.flip) == (32, 36, False)
    assert config.train.gan_mode == "lsgan"


def test_flat_file_can_name_the_dataset(tmp_path):
    path = tmp_path / "flat.json"
    path.write_text(json.dumps({"data": "datasets/facades", "ngf": 16}))
    config = RunConfig.from_dict(read_settings_file(path))
    assert config.data.data == "datasets/facades"


def test_flat_and_sectioned_mix():
    config = RunConfig.from_dict({"model": {"ngf": 8}, "lr": 0.001})
    assert (config.model.ngf, config.train.lr) == (8, 0.001)


@pytest.mark.parametrize(("text", "suffix"), [("[model\nngf = 1", ".toml"), ("{not json", ".json")])
def test_malformed_file_raises_config_error_naming_it(tmp_path, text, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match="bad"):
        read_settings_file(path)


def test_missing_file_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nothere"):
        read_settings_file(tmp_path / "nothere.toml")


@pytest.mark.parametrize(("settings", "named"), [
    ({"lamda_l1": 10.0}, "lamda_l1"),
    ({"ngf": "64"}, "ngf"),
    ({"ngf": 64.0}, "ngf"),
    ({"ngf": True}, "ngf"),
    ({"flip": "yes"}, "flip"),
    ({"lr": "fast"}, "lr"),
    ({"data": None}, "data"),
    ({"norm": "group"}, "norm"),
    ({"gan_mode": "wgan"}, "gan_mode"),
    ({"patch": 64}, "patch"),
    ({"direction": "AB"}, "direction"),
    ({"crop_size": 100}, "crop_size"),
    ({"crop_size": 4, "load_size": 8}, "crop_size"),
    ({"load_size": 200}, "load_size"),
    ({"crop_size": 32, "load_size": 36, "num_downs": 6}, "num_downs"),
    ({"dropout": 1.0}, "dropout"),
    ({"gan_mode": "none", "lambda_l1": 0.0}, "lambda"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "`lr` must be > 0, got 0.0"),
    ({"lr": -1}, "`lr` must be > 0, got -1.0"),
    ({"ngf": 0}, "`ngf` must be >= 1, got 0"),
    ({"input_nc": 0}, "input_nc"),
    ({"num_workers": -1}, "`num_workers` must be >= 0"),
    ({"keep_checkpoints": 0}, "`keep_checkpoints` must be >= 1"),
    ({"lambda_l1": -5}, "`lambda_l1` must be >= 0"),
    ({"save_every": -1}, "save_every"),
    ({"beta1": 1.0}, r"`beta1` must be in \[0, 1\)"),
    ({"beta2": -0.1}, "beta2"),
    ({"seed": -1}, "seed"),
    ({"val_images": -1}, "val_images"),
    ({"max_steps": -1}, "max_steps"),
    ({"dist_timeout": 0}, "`dist_timeout` must be > 0"),
    ({"n_epochs": -1}, "n_epochs"),
    ({"n_epochs": 0, "n_epochs_decay": 0}, "n_epochs"),
    ({"init_gain": 0}, "init_gain"),
])
def test_bad_settings_raise_config_error_naming_them(settings, named):
    with pytest.raises(ConfigError, match=named):
        RunConfig().updated(settings)
    with pytest.raises(ConfigError, match=named):
        RunConfig.from_dict(settings)


def test_settings_moved_between_sections_load_from_either(tmp_path):
    path = tmp_path / "older.json"
    path.write_text(json.dumps({"train": {"device": "cpu", "dist_timeout": 60}, "data": {"num_workers": 0}}))
    machine = RunConfig.load(path).machine
    assert (machine.device, machine.dist_timeout, machine.num_workers) == ("cpu", 60.0, 0)


def test_section_that_is_not_a_table_is_refused():
    with pytest.raises(ConfigError, match="model"):
        RunConfig.from_dict({"model": 3})


def test_error_names_the_source(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"train": {"learning_rate": 0.1}}))
    with pytest.raises(ConfigError) as info:
        RunConfig.load(path)
    assert "learning_rate" in str(info.value) and "typo.json" in str(info.value)


def test_load_smaller_than_crop_is_fine_without_a_crop():
    config = RunConfig().updated({"preprocess": "resize", "load_size": 64})
    assert config.data.load_size == 64


def test_ints_are_accepted_for_float_fields():
    config = RunConfig().updated({"lr": 1, "lambda_l1": 10, "beta1": 0, "init_gain": 1})
    assert isinstance(config.train.lr, float) and config.train.lr == 1.0
    assert isinstance(config.train.lambda_l1, float) and config.train.lambda_l1 == 10.0
    assert isinstance(config.train.beta1, float)
    assert isinstance(config.model.init_gain, float)


def test_none_only_for_optional_settings():
    config = RunConfig().updated({"num_downs": 5, "max_steps": 3}).updated({"num_downs": None, "max_steps": None})
    assert config.model.num_downs is None and config.train.max_steps is None
    with pytest.raises(ConfigError, match="ngf"):
        RunConfig().updated({"ngf": None})


# --- the learning-rate schedule -------------------------------------------------------------------------------


def test_lr_factor_constant_then_linear_decay():
    factors = [lr_factor(epoch, 100, 100) for epoch in range(200)]
    assert factors[:100] == [1.0] * 100
    decay = factors[100:]
    steps = [a - b for a, b in zip(decay, decay[1:])]
    assert all(s == pytest.approx(1 / 101) for s in steps)
    assert factors[99] - factors[100] == pytest.approx(1 / 101)
    assert 0 < factors[-1] < 0.02  # towards zero, still positive in the last epoch
    assert lr_factor(200, 100, 100) == pytest.approx(0.0, abs=1e-12)


def test_lr_factor_small_schedule():
    assert [lr_factor(e, 2, 3) for e in range(5)] == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25])
    assert [lr_factor(e, 0, 1) for e in range(1)] == pytest.approx([0.5])


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")
def test_trainer_schedules_both_learning_rates():
    config = RunConfig().updated({"crop_size": 32, "load_size": 36, "ngf": 2, "ndf": 2, "n_epochs": 2,
                                  "n_epochs_decay": 3, "lr": 1e-3})
    trainer = Networks(config, torch.device("cpu"))
    seen = []
    for _ in range(5):
        seen.append((trainer.lr, trainer.optimizers["discriminator"].param_groups[0]["lr"]))
        trainer.end_epoch()
    assert [g for g, _ in seen] == pytest.approx([1e-3, 1e-3, 0.75e-3, 0.5e-3, 0.25e-3])
    assert [d for _, d in seen] == pytest.approx([g for g, _ in seen])
    betas = trainer.optimizers["generator"].param_groups[0]["betas"]
    assert betas == (0.5, 0.999)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_float_settings_are_refused(value):
    with pytest.raises(ConfigError, match="`lr` must be finite"):
        RunConfig().updated({"lr": value})


def test_a_config_saved_before_the_canonical_generator_settings_loads_with_the_paper_layout(tmp_path):
    saved = RunConfig().to_dict()
    for name in ("dropout_start", "dropout_blocks", "generator_bias"):
        del saved["model"][name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    m = RunConfig.load(path).model
    assert (m.dropout_start, m.dropout_blocks, m.generator_bias) == (0, 3, None)
