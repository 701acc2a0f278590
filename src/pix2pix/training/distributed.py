"""Training in several processes: starting them, who this process is, and the few collective steps the loop needs.

Started by `torchrun` or by `pix2pix train --processes N` (`launch_here`), every process trains one replica
(DistributedDataParallel on both nets) on its share of each global batch; rank 0 alone writes the run folder.
Started plainly, `Ranks()` is a single process and every function here returns at once without communicating.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import signal
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from pix2pix.devices import DeviceError, resolve_device

T = TypeVar("T")


class PeerError(RuntimeError):
    """Another process failed (and reported why itself); this one stops too, without repeating the message."""


class LostPeerError(RuntimeError):
    """A collective step failed or timed out: another process died, hangs or cannot be reached."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (from torchrun's environment)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls) -> Ranks:
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


SINGLE_PROCESS = Ranks()


def launch_here(processes: int, argv: list[str]) -> int:
    """Runs `python -m pix2pix ARGV` in `processes` processes on this machine, as `torchrun --standalone` does,
    and returns the exit status. The processes print their own errors; a failure adds one line saying which
    ended how, where torchrun would add a traceback and a report of its own."""
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


def process_device(name: str, ranks: Ranks) -> torch.device:
    """The device of this process: with several processes, `auto` and `cuda` mean the GPU of the local rank."""
    device = resolve_device(name)
    if not ranks.distributed:
        return device
    if device.type == "mps":
        raise DeviceError("MPS trains in one process only; run without --processes or torchrun, or use --device cpu")
    if device.type == "cuda":
        if name not in ("auto", "cuda"):
            raise DeviceError(f"--device {name} names one GPU, but each of the {ranks.world_size} processes "
                              "takes the GPU of its local rank; pass --device cuda (and choose GPUs with "
                              "CUDA_VISIBLE_DEVICES)")
        if ranks.local_rank >= torch.cuda.device_count():
            raise DeviceError(f"local rank {ranks.local_rank} has no GPU: this node has "
                              f"{torch.cuda.device_count()}; start at most that many processes per node")
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    return device


def backend() -> str:
    """gloo for CPU tensors, and nccl for CUDA ones where there are GPUs (chosen per tensor by PyTorch)."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def start(ranks: Ranks, timeout_s: float) -> None:
    """Joins the process group; `timeout_s` bounds every later wait for the others, so a dead or hung peer
    ends the run with an error instead of a silent hang."""
    if ranks.distributed and not dist.is_initialized():
        _collective(lambda: dist.init_process_group(backend(), timeout=timedelta(seconds=timeout_s)))


def stop(ranks: Ranks, finished: bool) -> None:
    """Leaves the process group. After a finished run all processes first wait for each other, so that none
    tears down its connections while rank 0 still writes (gloo can abort a process that does)."""
    if ranks.distributed and dist.is_initialized():
        if finished:
            _collective(dist.barrier)
        dist.destroy_process_group()


PEER_FAILURE_SIGNS = ("gloo", "nccl", "NCCL", "Connection closed", "Connection reset", "timed out", "Timed out",
                      "Socket Timeout")
"""Words of the RuntimeErrors that gloo and NCCL raise inside backward when a peer is gone (they are not
DistErrors there)."""


def is_peer_failure(err: Exception) -> bool:
    return isinstance(err, dist.DistError) or any(sign in str(err) for sign in PEER_FAILURE_SIGNS)


def lost_peer(err: Exception) -> LostPeerError:
    """A failed collective step as one clear message (torch's own runs to dozens of lines)."""
    text = str(err).strip()
    first_line = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0]) if text else type(err).__name__
    return LostPeerError(f"lost contact with the other training processes ({first_line}); one of them died or "
                         "hangs, and its own output says why. Continue the run with --resume")


def _collective(action: Callable[[], T]) -> T:
    """Runs a collective step, turning a dead, hung or unreachable peer into one clear error."""
    try:
        return action()
    except RuntimeError as err:  # DistError is one
        raise lost_peer(err) from err


def share_from_main(ranks: Ranks, work: Callable[[], T]) -> T:
    """Rank 0 does `work` (reading or checking something once for all); the others receive its result, or
    stop with a PeerError if it failed."""
    if not ranks.distributed:
        return work()
    outcome: list[Any] = [None]
    if ranks.is_main:
        try:
            outcome[0] = ("ok", work())
        except Exception as err:  # noqa: BLE001 - shared with the others, then raised here as it was
            outcome[0] = ("error", err)
            _collective(lambda: dist.broadcast_object_list(outcome, src=0))
            raise
    _collective(lambda: dist.broadcast_object_list(outcome, src=0))
    kind, value = outcome[0]
    if kind == "error":
        raise PeerError("rank 0 failed")
    return value


def agree(ranks: Ranks, error: Exception | None) -> None:
    """A checkpoint of the set-up: every process says whether it got ready, and all stop if one did not."""
    if not ranks.distributed:
        if error is not None:
            raise error
        return
    failures: list[bool] = [False] * ranks.world_size
    _collective(lambda: dist.all_gather_object(failures, error is not None))
    if error is not None:
        raise error
    failed = [rank for rank, failure in enumerate(failures) if failure]
    if failed:
        raise PeerError(f"rank {failed[0]} failed")


def any_rank(ranks: Ranks, flag: bool, device: torch.device) -> bool:
    """True on every process when it is true on one (a stop request must stop all at the same step)."""
    if not ranks.distributed:
        return flag
    value = torch.tensor([float(flag)], device=device)
    _collective(lambda: dist.all_reduce(value, op=dist.ReduceOp.MAX))
    return bool(value.item())


def mean_over_ranks(ranks: Ranks, values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Averages logged numbers over the processes, so the loss log describes the whole global batch."""
    if not ranks.distributed or not values:
        return values
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    _collective(lambda: dist.all_reduce(stacked, op=dist.ReduceOp.SUM))
    return dict(zip(values, (stacked / ranks.world_size).tolist()))


def gather_to_main(ranks: Ranks, value: T) -> list[T] | None:
    """Every process's `value`, in rank order, on rank 0 (None elsewhere)."""
    if not ranks.distributed:
        return [value]
    gathered: list[Any] = [None] * ranks.world_size if ranks.is_main else None
    _collective(lambda: dist.gather_object(value, gathered, dst=0))
    return gathered


def replicate(module: nn.Module, ranks: Ranks, device: torch.device, sync_batch_norm: bool) -> nn.Module:
    """Wraps a network for data-parallel training: gradients are averaged over the processes in backward.
    Batch-norm running statistics are not broadcast at every forward: they only serve eval mode, and rank 0
    saves its own."""
    if not ranks.distributed:
        return module
    if sync_batch_norm:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    device_ids = [device.index] if device.type == "cuda" else None
    return _collective(lambda: nn.parallel.DistributedDataParallel(module, device_ids=device_ids,
                                                                   **_no_buffer_sync()))


def _no_buffer_sync() -> dict[str, bool]:
    """`forward_sync_buffers=False` where this torch has it (2.13+), else the older spelling."""
    parameters = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in parameters else {"broadcast_buffers": False}
