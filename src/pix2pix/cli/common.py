"""What every command group of the CLI shares: the help format, range-checked argparse types, and the library's
setting names shown as flags."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from pix2pix.config import AT_LEAST_ONE, Range


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
