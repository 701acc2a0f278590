"""What every command group of the CLI shares: the help format, range-checked argparse types, and the library's
setting names shown as flags."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from pix2pix.config import AT_LEAST_ONE, PRECISIONS, Range
from pix2pix.devices import DEVICE_HELP
from pix2pix.inference import BACKENDS


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default, keeps the description's line breaks."""


def number_in(kind: type, valid: Range) -> Callable[[str], int | float]:
    """An argparse type: a number of `kind` in the range `valid`, named as the config's ranges are."""
    rule, holds = valid

    def parse(text: str) -> int | float:
        value = kind(text)
        if not holds(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid int value: 'x'"
    return parse


positive_int = number_in(int, AT_LEAST_ONE)

SETTING = re.compile(r"`([a-z][a-z0-9_]*)`")


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every option of `parser` and its subcommands, by the library name it sets (`crop_size` -> `--crop-size`)."""
    flags: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                flags.update(flags_of(command))
        elif action.option_strings and action.dest != "help":
            flags.setdefault(action.dest, action.option_strings[0])
    return flags


def as_flags(message: str, flags: dict[str, str]) -> str:
    """A library message with each setting it names in backticks (`crop_size`) shown as the flag (--crop-size)."""
    return SETTING.sub(lambda match: flags.get(match.group(1), match.group(0)), message)


def add_translator_flags(parser: argparse.ArgumentParser) -> None:
    """How a run's generator runs (device, tiles, backend, precision, compile): the same for every command that
    translates."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--tile", type=int, default=None,
                       help="translate in N x N tiles (0: never); default: tile only images over the memory "
                            "budget, in as few tiles as fit it")
    parser.add_argument("--overlap", type=int, default=64,
                       help="pixels neighbouring tiles share and blend")
    parser.add_argument("--memory-budget", type=float, default=2.0, metavar="GIB", dest="memory_budget_gib",
                       help="largest estimated generator memory for translating an image whole")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                       help="onnx: ONNX Runtime on the CPU, exported into the run folder at first use "
                            '(pip install "pix2pix[onnx]")')
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="the generator's number type (torch backend): bf16 on GPUs and CPUs with native bf16 "
                            "(AVX-512 bf16, AMX), fp16 on GPUs; faster there, 8-bit outputs within one level of "
                            "fp32's")
    parser.add_argument("--compile", action="store_true", dest="compiled",
                       help="compile the generator with TorchInductor (torch backend), its weights frozen in: "
                            "seconds to a minute at the first image of each padded size, then faster per "
                            "image (docs/performance.md); pays off for many images of one size")


def translator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of `add_translator_flags` as `Translator.load`'s settings."""
    from pix2pix.inference import Tiling

    tiling = Tiling(tile=args.tile, overlap=args.overlap, memory_budget_gib=args.memory_budget_gib)
    return {"device": args.device, "tiling": tiling, "backend": args.backend, "precision": args.precision,
            "compiled": args.compiled}
