"""What every command shares: help that shows each default, and library setting names shown as flags."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from pix2pix.cli import build_parser
from pix2pix.cli.common import as_flags, flags_of


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (sub)command of the parser that has no subcommands itself, with the words that call it."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, command in group.choices.items():
            yield from commands(command, (*path, name))


ALL_COMMANDS = list(commands(build_parser()))


def test_every_command_is_found():
    names = {" ".join(path) for path, _ in ALL_COMMANDS}
    assert {"train", "translate", "export", "demo", "data validate", "data synth"} <= names


@pytest.mark.parametrize("path, parser", ALL_COMMANDS, ids=[" ".join(path) for path, _ in ALL_COMMANDS])
def test_help_shows_every_default(path, parser):
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and \
                action.dest != "help":
            assert f"default: {action.default}" in text, (path, action.dest)


def test_train_help_lists_the_paper_defaults():
    text = " ".join(subprocess.run([sys.executable, "-m", "pix2pix", "train", "--help"], capture_output=True,
                                   text=True, check=True).stdout.split())
    for expected in ("--lambda-l1 LAMBDA_L1 weight of the L1 term (0 turns it off) (default: 100.0)",
                     "--patch PATCH PatchGAN receptive field in pixels (1|16|70|286; default: 70)",
                     "--no-skip-connections"):
        assert expected in text


def test_setting_names_become_the_flags_that_set_them():
    flags = flags_of(build_parser())
    assert flags["crop_size"] == "--crop-size" and flags["memory_budget_gib"] == "--memory-budget"
    assert flags["compiled"] == "--compile" and flags["skip_connections"] == "--skip-connections"
    message = "`crop_size` 100 must be a power of two; set `lambda_l1` > 0; `unknown_thing` stays; `pix2pix train`"
    assert as_flags(message, flags) == ("--crop-size 100 must be a power of two; set --lambda-l1 > 0; "
                                        "`unknown_thing` stays; `pix2pix train`")
