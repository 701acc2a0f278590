"""`pix2pix serve`: its defaults, the flags it shares with translate, and one-line errors before serving."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pix2pix.cli import build_parser, main
from pix2pix.models import build_generator
from pix2pix.runs import RunDir

TRANSLATOR_FLAGS = ("--device", "--tile", "--overlap", "--memory-budget", "--backend", "--precision", "--compile")


@pytest.fixture
def served_run(tmp_path, tiny_config) -> Path:
    """A run folder with untrained weights: enough for what is checked before serving."""
    run = RunDir(tmp_path / "run")
    run.save_config(tiny_config)
    run.save_generator(build_generator(tiny_config).state_dict(), step=0)
    return run.path


def options(command: str) -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {flag for action in subparsers.choices[command]._actions for flag in action.option_strings}


def test_serve_binds_to_loopback_by_default_and_shares_translates_backend_flags():
    args = build_parser().parse_args(["serve", "run"])
    assert (args.host, args.port, args.mode, args.queue, args.max_upload_mb) == ("127.0.0.1", 8000, "paper", 8, 10.0)
    assert set(TRANSLATOR_FLAGS) <= options("serve") & options("translate")
    args = build_parser().parse_args(["serve", "run", "--backend", "onnx", "--precision", "bf16", "--compile"])
    assert (args.backend, args.precision, args.compiled) == ("onnx", "bf16", True)


def test_serve_errors_are_one_line_before_anything_listens(tmp_path, capsys, served_run):
    assert main(["serve", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip().endswith("not a pix2pix run folder (no config.json); train one with "
                                                    "`pix2pix train --data DIR --out RUN`")
    (tmp_path / "palette.json").write_text("{}")
    assert main(["serve", str(served_run), "--palette", str(tmp_path / "palette.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "palette.json: not a palette" in err
    assert main(["serve", str(served_run), "--backend", "onnx", "--compile"]) == 2
    assert "--compile compiles the torch backend" in capsys.readouterr().err


def test_serve_without_its_extra_says_how_to_install_it(monkeypatch, capsys, served_run):
    monkeypatch.setitem(sys.modules, "pix2pix.serve.app", None)
    assert main(["serve", str(served_run)]) == 2
    assert 'pip install "pix2pix[serve]"' in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--port", "70000"], ["--queue", "-1"], ["--max-upload-mb", "0"]])
def test_serve_refuses_limits_out_of_range(flag, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "run", *flag])
    assert flag[0] in capsys.readouterr().err
