"""`pix2pix train` and `pix2pix demo`: flags in, `resolve_config` and `train` of the library called."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pix2pix.cli.common import HelpFormatter, positive_int
from pix2pix.config import FIELDS, OBJECTIVES, SECTIONS, ConfigError, RunConfig, field_type
from pix2pix.training.launch import launch_here
from pix2pix.training.processes import Processes
from pix2pix.training.settings import resolve_config


def add_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train on paired images (the paper's defaults)",
                                formatter_class=HelpFormatter,
                                description="Train G and D. Settings: defaults <- --config file <- flags.\n"
                                            f"Objectives (the paper's ablations): {', '.join(OBJECTIVES)}.")
    train.add_argument("--out", type=Path, required=True, help="run folder to write (or to resume)")
    train.add_argument("--config", type=Path,
                       help="TOML or JSON settings file (sections model/data/train/machine, or flat)")
    train.add_argument("--objective", choices=list(OBJECTIVES), default=argparse.SUPPRESS,
                       help="loss preset that sets gan_mode, lambda_l1 and conditional (default: l1+cgan)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint; "
                       "machine settings (--device, --num-workers, ...) are this machine's, not the run's; it "
                       "may change how long it trains and what it logs and saves, not what it trains (README: "
                       "Resume)")
    train.add_argument("--force", action="store_true",
                       help="with --resume: accept another --seed, or another --data with the same channels")
    train.add_argument("--processes", type=positive_int, default=1,
                       help="training processes on this machine, one per GPU (or on CPU cores): data-parallel, "
                            "as torchrun --standalone starts them (docs/distributed.md)")
    add_setting_flags(train)
    train.set_defaults(handler=cmd_train)

    demo = commands.add_parser("demo", help="make the embedded facades data, train on it, translate, report",
                               formatter_class=HelpFormatter)
    demo.add_argument("--out", type=Path, default=Path("demo"), help="folder for data, run and results")
    demo.add_argument("--size", type=int, default=128, help="image size of the embedded data")
    demo.add_argument("--steps", type=int, default=1500, help="training iterations")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and training")
    demo.set_defaults(handler=cmd_demo)


def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def add_setting_flags(parser: argparse.ArgumentParser, leave_out: Collection[str] = ()) -> None:
    """One flag per config field but those left out; unset flags stay absent so a config file's value is not
    overridden."""
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} settings")
        for spec in dataclasses.fields(cls):
            if spec.name in leave_out:
                continue
            kind, optional = field_type(spec)
            flag = "--" + spec.name.replace("_", "-")
            choices = spec.metadata.get("choices")
            options = f"{'|'.join(map(str, choices))}; " if choices else ""
            help_text = f"{spec.metadata['help']} ({options}default: {spec.default})"
            if kind is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                   help=help_text)
            else:
                parse = _optional_int if optional and kind is int else kind
                group.add_argument(flag, type=parse, choices=choices,
                                   default=argparse.SUPPRESS, help=help_text, metavar=spec.name.upper())


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (the objective preset included), by their library names."""
    return {name: getattr(args, name) for name in (*FIELDS, "objective") if hasattr(args, name)}


def cmd_train(args: argparse.Namespace) -> int:
    from pix2pix.training.loop import train

    config = resolve_config(given_settings(args), args.config, args.out if args.resume else None, "command line",
                            force=args.force)
    if args.processes > 1 and not _launched(args.processes):
        return _launch(args.processes, config, args.out, args.resume, args.force)
    result = train(config, args.out, resume=args.resume)
    state = "interrupted at step {}; continue it with --resume" if result.interrupted else "finished at step {}"
    if Processes.from_environment().is_main:
        print(f"Training {state.format(result.step)}. Run folder: {result.run_dir}\n"
              f"Report: {result.run_dir / 'report.html'}")
    return 128 + result.stop_signal if result.interrupted else 0  # the shell's 130 for Ctrl-C, 143 for SIGTERM


def _launched(processes: int) -> bool:
    """Whether this is one of the processes of a distributed run (started by --processes or torchrun)."""
    per_machine = os.environ.get("LOCAL_WORLD_SIZE")
    if per_machine is not None and processes not in (1, int(per_machine)):
        raise ConfigError(f"--processes {processes} under torchrun, which started {per_machine} processes per "
                          "machine; leave --processes out (torchrun's --nproc_per_node sets it)")
    return Processes.from_environment().distributed


def _launch(processes: int, config: RunConfig, out: Path, resume: bool, force: bool) -> int:
    """Starts the processes on the settings resolved here (data found, channels counted), passed as a file."""
    with tempfile.TemporaryDirectory(prefix="pix2pix-") as folder:
        resolved = Path(folder) / "config.json"
        config.save(resolved)
        return launch_here(processes, ["train", "--config", str(resolved), "--out", str(out)]
                           + (["--resume"] if resume else []) + (["--force"] if force else []))


def cmd_demo(args: argparse.Namespace) -> int:
    from pix2pix.demo import run_demo

    report = run_demo(args.out, size=args.size, steps=args.steps, seed=args.seed)
    metrics = json.loads((report.parent / "metrics.json").read_text())
    print(f"\nDemo done. Held-out L1: {metrics['l1_step0']:.3f} at step 0 -> {metrics['l1_now']:.3f} at step "
          f"{metrics['step']}.\nOpen the report: {report.resolve()}\n"
          f"Draw facades and see them translated in your browser: {command_here()} serve {report.parent}")
    return 0


def command_here() -> str:
    """How to run this installation's `pix2pix`: by name when the PATH finds it, else by its path (in a virtual
    environment that is not activated, as `make demo` runs it), else through this Python."""
    script = Path(sys.executable).parent / "pix2pix"
    found = shutil.which("pix2pix")
    if found and Path(found).resolve() == script.resolve():
        return "pix2pix"
    if not script.is_file():
        return f"{sys.executable} -m pix2pix"
    return os.path.relpath(script) if script.is_relative_to(Path.cwd()) else str(script)
