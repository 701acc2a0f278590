"""`pix2pix train --processes N`: starting the training processes on this machine, as `torchrun --standalone` does."""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid


def launch_here(processes: int, argv: list[str]) -> int:
    """Runs `python -m pix2pix ARGV` in `processes` processes on this machine and returns the exit status. The
    processes print their own errors; a failure adds one line saying which ended how, where torchrun would add a
    traceback and a report of its own."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _quiet_launcher_logs()
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    try:
        elastic_launch(config, sys.executable)("-m", "pix2pix", *argv)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        others = " (the launcher then stopped the others)" if len(err.failures) > 1 else ""
        print(f"pix2pix: training stopped: rank {rank} {_ending(failure.exitcode)}{others}", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    except SignalException as err:
        return 130 if err.sigval == signal.SIGINT else 128 + int(err.sigval)
    return 0


def _ending(exitcode: int) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it, e.g. the OOM killer's)."""
    if exitcode >= 0:
        return f"exited with status {exitcode}"
    try:
        return f"was killed by {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"was killed by signal {-exitcode}"


def _quiet_launcher_logs() -> None:
    """The launcher's own log lines repeat what the processes say, with a traceback of the launcher."""
    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
