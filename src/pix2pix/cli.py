"""The `pix2pix` command: train, translate and demo. Parses flags into typed configs and calls the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from pix2pix.cli_data import add_data_commands, non_negative_int, positive_float, positive_int
from pix2pix.config import (
    FIELDS,
    OBJECTIVES,
    PRECISIONS,
    SECTIONS,
    ConfigError,
    RunConfig,
    field_type,
    flatten_settings,
    read_settings_file,
)
from pix2pix.data.dataset import detect_channels, find_pairs, split_folder
from pix2pix.data.images import DataError
from pix2pix.devices import DEVICE_HELP, DeviceError
from pix2pix.export import ExportError
from pix2pix.inference import CompileError
from pix2pix.runs import RunDir, RunError
from pix2pix.training.launch import launch_here
from pix2pix.training.processes import LostPeerError, PeerError
from pix2pix.training.processes import Processes as Ranks

USER_ERRORS = (ConfigError, DataError, RunError, DeviceError, ExportError, CompileError)
PYTHON_FORMATWARNING = warnings.formatwarning


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default, keeps the description's line breaks."""


def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field; unset flags stay absent so a config file's value is not overridden."""
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} settings")
        for spec in dataclasses.fields(cls):
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


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}


def with_objective(settings: dict[str, Any], source: str) -> dict[str, Any]:
    """Expands an `objective` preset into its settings; explicit settings beside it win."""
    settings = dict(settings)
    name = settings.pop("objective", None)
    if name is None:
        return settings
    if name not in OBJECTIVES:
        raise ConfigError(f"{source}: unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return {**OBJECTIVES[name], **settings}


def train_config(args: argparse.Namespace) -> RunConfig:
    """Defaults (or the run's saved config when resuming) <- config file <- flags."""
    base = RunDir(args.out).load_config() if args.resume else RunConfig()
    file_settings: dict[str, Any] = {}
    if args.config:
        file_settings = with_objective(flatten_settings(read_settings_file(args.config)), str(args.config))
    flag_settings = settings_from(args)
    if "objective" in args:
        flag_settings = with_objective({"objective": args.objective, **flag_settings}, "--objective")
    config = base.updated({**file_settings, **flag_settings}, "command line")
    if args.resume and config.model != base.model:
        raise ConfigError(f"{args.out}: --resume cannot change the model settings; "
                          "start a new run with another --out instead")
    if not config.data.data:
        raise ConfigError("no dataset: pass --data DIR (or set data in --config)")
    return config


def _launched(processes: int) -> bool:
    """Whether this is one of the processes of a distributed run (started by --processes or torchrun)."""
    per_machine = os.environ.get("LOCAL_WORLD_SIZE")
    if per_machine is not None and processes not in (1, int(per_machine)):
        raise ConfigError(f"--processes {processes} under torchrun, which started {per_machine} processes per "
                          "machine; leave --processes out (torchrun's --nproc_per_node sets it)")
    return Ranks.from_environment().distributed


def with_channels_of_the_data(config: RunConfig, explicit: dict[str, Any]) -> RunConfig:
    """A new run takes input_nc and output_nc from its first pair unless they were set (grayscale, RGBA, bands)."""
    if "input_nc" in explicit or "output_nc" in explicit:
        return config
    pairs = find_pairs(split_folder(Path(config.data.data), "train"), config.data.layout)
    input_nc, output_nc = detect_channels(pairs, config.data.direction)
    return config.updated({"input_nc": input_nc, "output_nc": output_nc}, f"channels of {pairs[0].a}")


def cmd_train(args: argparse.Namespace) -> int:
    from pix2pix.training.loop import train

    config = train_config(args)
    if not args.resume:
        explicit = settings_from(args)
        if args.config:
            explicit.update(flatten_settings(read_settings_file(args.config)))
        config = with_channels_of_the_data(config, explicit)
    if args.processes > 1 and not _launched(args.processes):  # settings and data found: start the processes
        return launch_here(args.processes, args.argv)
    result = train(config, args.out, resume=args.resume)
    state = "interrupted at" if result.interrupted else "finished at"
    if Ranks.from_environment().is_main:
        print(f"Training {state} step {result.step}. Run folder: {result.run_dir}\n"
              f"Report: {result.run_dir / 'report.html'}")
    return 130 if result.interrupted else 0


def cmd_translate(args: argparse.Namespace) -> int:
    from pix2pix.evaluation.report import ReportRow, write_translation_report
    from pix2pix.inference import Tiling, Translator, translate_files

    tiling = Tiling(tile=args.tile, overlap=args.overlap, memory_budget_gib=args.memory_budget)
    translator = Translator.load(args.run, mode=args.mode, seed=args.seed, device=args.device, tiling=tiling,
                                 backend=args.backend, precision=args.precision, compiled=args.compile)
    summary = translate_files(translator, args.inputs, args.out, aligned=args.aligned)
    rows = [ReportRow(f.name, f.input, f.output, f.target) for f in summary.done]
    if rows:
        report = write_translation_report(args.out, rows, f"pix2pix translations ({args.mode} mode)", args.run)
        print(f"Translated {len(rows)} image(s) into {args.out}. Report: {report}")
    for failure in summary.failed:
        print(f"failed: {failure}", file=sys.stderr)
    if summary.failed or not rows:
        print(f"pix2pix: {len(summary.failed)} of {len(summary.failed) + len(rows)} input(s) failed",
              file=sys.stderr)
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pix2pix.export import export_run
    from pix2pix.inference import Translator

    translator = Translator.load(args.run, device="cpu")
    for mode in args.mode:
        path = export_run(translator.run, translator.generator, mode)
        print(f"Wrote {path} ({mode} mode)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pix2pix.demo import run_demo

    report = run_demo(args.out, size=args.size, steps=args.steps, seed=args.seed)
    metrics = json.loads((report.parent / "metrics.json").read_text())
    print(f"\nDemo done. Held-out L1: {metrics['l1_step0']:.3f} at step 0 -> {metrics['l1_now']:.3f} at step "
          f"{metrics['step']}.\nOpen the report: {report.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pix2pix", formatter_class=HelpFormatter,
                                     description="Image-to-image translation with conditional GANs "
                                                 "(Isola et al., CVPR 2017).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train on paired images (the paper's defaults)",
                                formatter_class=HelpFormatter,
                                description="Train G and D. Settings: defaults <- --config file <- flags.\n"
                                            f"Objectives (the paper's ablations): {', '.join(OBJECTIVES)}.")
    train.add_argument("--out", type=Path, required=True, help="run folder to write (or to resume)")
    train.add_argument("--config", type=Path, help="TOML or JSON settings file (sections model/data/train, or flat)")
    train.add_argument("--objective", choices=list(OBJECTIVES), default=argparse.SUPPRESS,
                       help="loss preset that sets gan_mode, lambda_l1 and conditional (default: l1+cgan)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    train.add_argument("--processes", type=positive_int, default=1,
                       help="training processes on this machine, one per GPU (or on CPU cores): data-parallel, "
                            "as torchrun --standalone starts them (docs/distributed.md)")
    add_setting_flags(train)
    train.set_defaults(handler=cmd_train)

    translate = commands.add_parser("translate", help="translate images of any size with a trained run",
                                    formatter_class=HelpFormatter)
    translate.add_argument("run", type=Path, help="run folder written by `pix2pix train`")
    translate.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="image files or folders")
    translate.add_argument("--out", type=Path, required=True, help="folder for outputs and report.html")
    translate.add_argument("--mode", choices=["paper", "eval"], default="paper",
                           help="paper: dropout on and batch statistics, as in the paper; eval: deterministic")
    translate.add_argument("--seed", type=int, default=None, help="makes paper-mode outputs reproducible")
    translate.add_argument("--aligned", action="store_true",
                           help="inputs are A|B pairs: translate the input half, also write the target")
    translate.add_argument("--device", default="auto", help=DEVICE_HELP)
    translate.add_argument("--tile", type=non_negative_int, default=None,
                           help="translate in N x N tiles (0: never); default: tile only images over the memory "
                                "budget, in as few tiles as fit it")
    translate.add_argument("--overlap", type=non_negative_int, default=64,
                           help="pixels neighbouring tiles share and blend")
    translate.add_argument("--memory-budget", type=positive_float, default=2.0, metavar="GIB",
                           help="largest estimated generator memory for translating an image whole")
    translate.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                           help="onnx: ONNX Runtime on the CPU, exported into the run folder at first use "
                                '(pip install "pix2pix[onnx]")')
    translate.add_argument("--precision", choices=PRECISIONS, default="fp32",
                           help="the generator's number type (torch backend): bf16 on GPUs and CPUs with native bf16 "
                                "(AVX-512 bf16, AMX), fp16 on GPUs; faster there, 8-bit outputs within one level of "
                                "fp32's")
    translate.add_argument("--compile", action="store_true",
                           help="compile the generator with TorchInductor (torch backend), its weights frozen in: "
                                "seconds to a minute at the first image of each padded size, then faster per "
                                "image (docs/performance.md); pays off for many images of one size")
    translate.set_defaults(handler=cmd_translate)

    export = commands.add_parser("export", help="write a run's generator as ONNX, for ONNX Runtime and others",
                                 formatter_class=HelpFormatter,
                                 description="Writes RUN/generator-MODE.onnx (dynamic batch, height and width). "
                                             "Paper mode takes its dropout masks as inputs mask_0, mask_1, ...; "
                                             "see pix2pix/export.py. Needs pip install \"pix2pix[onnx]\".")
    export.add_argument("run", type=Path, help="run folder written by `pix2pix train`")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="file format")
    export.add_argument("--mode", choices=["eval", "paper"], nargs="+", default=["eval", "paper"],
                        help="test-time modes to export, one file each")
    export.set_defaults(handler=cmd_export)

    demo = commands.add_parser("demo", help="make the embedded facades data, train on it, translate, report",
                               formatter_class=HelpFormatter)
    demo.add_argument("--out", type=Path, default=Path("demo"), help="folder for data, run and results")
    demo.add_argument("--size", type=int, default=128, help="image size of the embedded data")
    demo.add_argument("--steps", type=int, default=1500, help="training iterations")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and training")
    demo.set_defaults(handler=cmd_demo)

    add_data_commands(commands)
    return parser


def user_message(err: Exception) -> str:
    """The error's own message; for one re-raised from a data-loader worker, without the worker's traceback."""
    text = str(err)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def filesystem_message(err: OSError) -> str:
    """'PATH: Not a directory' (with both paths of a failed rename or copy)."""
    paths = [str(name) for name in (err.filename, err.filename2) if name is not None]
    reason = err.strerror or str(err)
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def rank_prefix() -> str:
    """Which process speaks, in a distributed run."""
    ranks = Ranks.from_environment()
    return f"rank {ranks.rank}: " if ranks.distributed else ""


def show_own_warnings_in_one_line() -> None:
    """The package's warnings (a checkpoint skipped, an export not saved) as `pix2pix: warning: ...`, without
    Python's file, line and source; other libraries' warnings keep their usual form."""
    package = str(Path(__file__).parent)

    def one_line(message, category, filename, lineno, line=None) -> str:
        if str(filename).startswith(package):
            return f"pix2pix: warning: {rank_prefix()}{message}\n"
        return PYTHON_FORMATWARNING(message, category, filename, lineno, line)

    warnings.formatwarning = one_line


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    show_own_warnings_in_one_line()
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.handler(args)
    except USER_ERRORS as err:
        print(f"pix2pix: error: {rank_prefix()}{user_message(err)}", file=sys.stderr)
        return 2
    except PeerError as err:
        print(f"pix2pix: {rank_prefix()}stopped because {err} (see its message)", file=sys.stderr)
        return 2
    except LostPeerError as err:
        print(f"pix2pix: error: {rank_prefix()}{err}", file=sys.stderr)
        return 1
    except OSError as err:  # a path the command cannot write or read where the command did not expect it
        print(f"pix2pix: error: {rank_prefix()}{filesystem_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pix2pix: interrupted", file=sys.stderr)
        return 130
