"""`pix2pix experiments` from the shell: settings the suites vary and variants that cannot train are refused in one
line before anything is written."""

from __future__ import annotations

import pytest

from pix2pix.cli import main
from tests.conftest import tiny_flags


def test_a_flag_the_suites_set_is_not_a_flag_here(facades, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["experiments", "--out", str(tmp_path / "out"), "--data", str(facades), "--patch", "16"])
    assert stop.value.code == 2 and "unrecognized arguments: --patch 16" in capsys.readouterr().err


def test_a_settings_file_that_sets_what_a_suite_varies_is_refused_in_one_line(facades, tmp_path, capsys):
    file = tmp_path / "settings.toml"
    file.write_text('[train]\ngan_mode = "lsgan"\n')
    assert main(["experiments", "--out", str(tmp_path / "out"), "--config", str(file), "--data", str(facades)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the suites set --gan-mode themselves" in err
    assert not (tmp_path / "out").exists()


def test_a_variant_that_cannot_train_stops_the_suite_before_the_first_trains(facades, tmp_path, capsys):
    flags = tiny_flags(facades, n_epochs=None, n_epochs_decay=None, batch_size=None)
    assert main(["experiments", "--suite", "patches", "--steps", "2", "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--patch 286 needs --crop-size >= 128" in err
    assert not (tmp_path / "out" / "runs").exists()
