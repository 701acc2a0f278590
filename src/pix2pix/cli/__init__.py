"""The `pix2pix` command: parses flags, calls the library, and turns its errors into one line naming the flags.

One module per command group (`train`, `translate`, `data`, `evaluate`, `experiments`, `serve`, `study`,
`import`); this one builds the parser and reports errors.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings
from pathlib import Path

from pix2pix.cli import data, evaluate, experiments, imports, serve, study, train, translate
from pix2pix.cli.common import HelpFormatter, as_flags, flags_of
from pix2pix.config import ConfigError
from pix2pix.data.images import DataError
from pix2pix.devices import DeviceError
from pix2pix.evaluation.metrics import MissingDependency
from pix2pix.export import ExportError
from pix2pix.inference import CompileError
from pix2pix.runs import RunError
from pix2pix.study.settings import StudyError
from pix2pix.training.processes import LostPeerError, PeerError, Processes
from pix2pix.training.step import Diverged

USER_ERRORS = (ConfigError, DataError, RunError, DeviceError, ExportError, CompileError, MissingDependency,
               StudyError)
PYTHON_FORMATWARNING = warnings.formatwarning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pix2pix", formatter_class=HelpFormatter,
                                     description="Image-to-image translation with conditional GANs "
                                                 "(Isola et al., CVPR 2017).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (train, translate, data, evaluate, experiments, serve, study, imports):
        group.add_commands(commands)
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
    processes = Processes.from_environment()
    return f"rank {processes.rank}: " if processes.distributed else ""


def show_own_warnings_in_one_line(flags: dict[str, str]) -> None:
    """The package's warnings (a checkpoint skipped, an export not saved) as `pix2pix: warning: ...`, without
    Python's file, line and source; other libraries' warnings keep their usual form."""
    package = str(Path(__file__).parents[1])

    def one_line(message, category, filename, lineno, line=None) -> str:
        if str(filename).startswith(package):
            return f"pix2pix: warning: {rank_prefix()}{as_flags(str(message), flags)}\n"
        return PYTHON_FORMATWARNING(message, category, filename, lineno, line)

    warnings.formatwarning = one_line


class Terminated(BaseException):
    """SIGTERM outside training's loop (which saves a checkpoint first): like Ctrl-C, not an error to catch."""


def _terminate(signum, frame) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_exception():
    """SIGTERM ends the command with a message and the shell's 143, not silently."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = flags_of(parser)
    show_own_warnings_in_one_line(flags)
    try:
        with sigterm_as_exception():
            return args.handler(args)
    except USER_ERRORS as err:
        print(f"pix2pix: error: {rank_prefix()}{as_flags(user_message(err), flags)}", file=sys.stderr)
        return 2
    except PeerError as err:
        print(f"pix2pix: {rank_prefix()}stopped because {err} (see its message)", file=sys.stderr)
        return 2
    except (Diverged, LostPeerError) as err:  # the run failed, not its settings
        print(f"pix2pix: error: {rank_prefix()}{as_flags(str(err), flags)}", file=sys.stderr)
        return 1
    except OSError as err:  # a path the command cannot write or read where the command did not expect it
        print(f"pix2pix: error: {rank_prefix()}{filesystem_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pix2pix: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("pix2pix: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
