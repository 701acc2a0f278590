"""`pix2pix train` and `pix2pix demo`: settings from file and flags, end to end runs, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pix2pix.cli import build_parser, main
from pix2pix.cli.train import given_settings
from pix2pix.config import ConfigError, RunConfig
from pix2pix.runs import RunDir
from pix2pix.training.settings import resolve_config
from tests.conftest import tiny_flags


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], capture_output=True, text=True)


def train_config(argv: list[str]):
    """The settings `pix2pix train ARGV` trains with."""
    args = build_parser().parse_args(["train", *argv])
    return resolve_config(given_settings(args), args.config, args.out if args.resume else None, "command line",
                          force=args.force)


def test_flags_override_the_config_file_which_overrides_defaults(facades, tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text('objective = "l1+gan"\n[model]\nngf = 16\nnorm = "instance"\n[train]\nlr = 0.001\n')
    config = train_config(["--out", str(tmp_path / "run"), "--config", str(settings), "--data", str(facades),
                           "--lr", "0.0005", "--patch", "16"])
    assert (config.model.ngf, config.model.norm, config.model.patch) == (16, "instance", 16)
    assert config.train.lr == 0.0005 and config.train.beta1 == 0.5
    assert config.objective == "l1+gan" and not config.model.conditional


def test_objective_flag_sets_the_preset_and_explicit_flags_still_win(facades, tmp_path):
    config = train_config(["--out", str(tmp_path), "--data", str(facades), "--objective", "l1", "--lambda-l1", "10"])
    assert config.train.gan_mode == "none" and config.train.lambda_l1 == 10.0


def test_resume_may_not_change_the_model(facades, tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "--out", str(run), *tiny_flags(facades), "--max-steps", "1").returncode == 0
    with pytest.raises(ConfigError, match="keeps `ngf` 8 \\(given: 16\\)"):
        train_config(["--out", str(run), "--resume", "--ngf", "16"])
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["ngf"] == 8


@pytest.mark.parametrize("flags, message", [
    (["--data", "/no/such/folder"], "/no/such/folder: dataset folder not found"),
    (["--data", ".", "--crop-size", "100"], "--crop-size 100 must be a power of two"),
    (["--data", ".", "--lr", "-1"], "command line: --lr must be > 0, got -1.0"),
    ([], "no dataset: set --data"),
    (["--config", "/no/such.toml", "--data", "."], "/no/such.toml: cannot read config file"),
])
def test_bad_settings_give_one_clear_line_and_no_traceback(tmp_path, flags, message):
    result = run_cli("train", "--out", str(tmp_path / "run"), *flags)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_train_then_translate_end_to_end_from_the_command_line(facades, tmp_path):
    run, out = tmp_path / "run", tmp_path / "out"
    trained = run_cli("train", "--out", str(run), *tiny_flags(facades), "--max-steps", "3")
    assert trained.returncode == 0, trained.stderr
    assert "report.html" in trained.stdout
    translated = run_cli("translate", str(run), str(facades / "test" / "0000.png"), "--out", str(out),
                         "--aligned", "--mode", "eval")
    assert translated.returncode == 0, translated.stderr
    assert {p.name for p in out.iterdir()} >= {"0000.png", "0000_input.png", "0000_target.png", "report.html"}


def test_a_new_run_takes_its_channels_from_the_data(tmp_path):
    from PIL import Image

    for side, mode in (("A", "L"), ("B", "RGB")):
        (tmp_path / "data" / side).mkdir(parents=True)
        for i in range(2):
            Image.new(mode, (32, 32), 100 + i).save(tmp_path / "data" / side / f"{i}.png")
    run = tmp_path / "run"
    result = run_cli("train", "--out", str(run), *tiny_flags(tmp_path / "data"), "--max-steps", "1")
    assert result.returncode == 0, result.stderr
    model = json.loads((run / "config.json").read_text())["model"]
    assert (model["input_nc"], model["output_nc"]) == (1, 3)


def test_demo_makes_data_trains_translates_and_points_at_the_report(tmp_path):
    result = run_cli("demo", "--out", str(tmp_path / "demo"), "--size", "32", "--steps", "3")
    assert result.returncode == 0, result.stderr
    assert "Held-out L1" in result.stdout and str(tmp_path / "demo" / "run" / "report.html") in result.stdout
    assert result.stdout.rstrip().endswith(f"pix2pix serve {tmp_path / 'demo' / 'run'}")
    report = (tmp_path / "demo" / "run" / "report.html").read_text()
    assert "losses.png" in report and "0000_target.png" in report
    assert len(list((tmp_path / "demo" / "test").glob("*_target.png"))) == 12


@pytest.mark.parametrize("command", [["data", "synth", "{out}", "--size", "32", "--train", "2"],
                                     ["demo", "--out", "{out}", "--steps", "1", "--size", "32"]])
def test_an_output_path_inside_a_file_is_one_line_naming_the_path(tmp_path, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_cli(*[part.format(out=blocker) for part in command])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"pix2pix: error: {blocker}/")
    assert result.stderr.splitlines()[-1].endswith(": Not a directory")
    assert blocker.read_text() == "not a folder"


def test_processes_start_on_the_settings_resolved_once_here(facades, tmp_path, monkeypatch):
    started = {}

    def launch(processes: int, argv: list[str]) -> int:
        file = Path(argv[argv.index("--config") + 1])
        started.update(processes=processes, argv=argv, file=file, config=RunConfig.load(file))
        return 0

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr("pix2pix.cli.train.launch_here", launch)
    flags = ["--out", str(tmp_path / "run"), *tiny_flags(facades), "--lr", "0.001"]
    assert main(["train", "--processes", "2", *flags]) == 0
    assert started["processes"] == 2
    assert started["argv"] == ["train", "--config", str(started["file"]), "--out", str(tmp_path / "run")]
    assert started["config"] == train_config(flags) and started["config"].channels == (3, 3)
    assert not started["file"].exists()


def test_a_refused_resume_writes_nothing_and_the_run_goes_on_after_it(facades, tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "--out", str(run), *tiny_flags(facades), "--max-steps", "2").returncode == 0
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    crop = run_cli("train", "--out", str(run), "--resume", "--crop-size", "64", "--load-size", "72",
                   "--max-steps", "3")
    assert crop.returncode == 2 and "Traceback" not in crop.stderr
    assert crop.stderr.strip() == (f"pix2pix: error: {run}: a resumed run keeps --load-size 36 (given: 72), "
                                   "--crop-size 32 (given: 64); start a new run with another --out instead")
    seed = run_cli("train", "--out", str(run), "--resume", "--seed", "1", "--max-steps", "3")
    assert seed.returncode == 2 and "--seed 0 (given: 1); --force lets" in seed.stderr
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before
    assert run_cli("train", "--out", str(run), "--resume", "--max-steps", "3").returncode == 0
    assert train_config(["--out", str(run), "--resume", "--seed", "1", "--force"]).train.seed == 1


def test_a_forced_resume_on_several_processes_forces_it_in_each(facades, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    RunDir(run).save_config(train_config(["--out", str(run), *tiny_flags(facades)]))
    started = {}
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr("pix2pix.cli.train.launch_here", lambda processes, argv: started.update(argv=argv) or 0)
    assert main(["train", "--processes", "2", "--out", str(run), "--resume", "--seed", "1", "--force"]) == 0
    assert started["argv"][-2:] == ["--resume", "--force"]
    assert "--force" in build_parser()._subparsers._group_actions[0].choices["train"].format_help()
