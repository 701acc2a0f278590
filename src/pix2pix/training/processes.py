"""The training processes of one run and what they agree on: rank 0 decides, the others follow, all stop together.

Started by `torchrun` or `pix2pix train --processes N` (see `launch.py`), every process trains one replica
(DistributedDataParallel on both nets) on its share of each global batch; rank 0 alone writes the run folder.
Started plainly, `Processes()` is a single process and no method here communicates.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
from collections.abc import Callable, Iterator
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
class Processes:
    """This process's place among the training processes (from torchrun's environment), and the few collective
    steps the loop takes with the others."""

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
    def from_environment(cls) -> Processes:
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    @contextlib.contextmanager
    def joined(self, timeout_s: float) -> Iterator[None]:
        """Inside, this process belongs to the process group. `timeout_s` bounds every wait for the others, so a
        dead or hung peer ends the run with a LostPeerError instead of a silent hang. After a finished run all
        first wait for each other, so that none tears down its connections while rank 0 still writes (gloo can
        abort a process that does)."""
        if not self.distributed:
            yield
            return
        if not dist.is_initialized():
            _collective(lambda: dist.init_process_group(backend(), timeout=timedelta(seconds=timeout_s)))
        try:
            yield
            _collective(dist.barrier)
        except (PeerError, LostPeerError):
            raise
        except RuntimeError as err:  # gloo and NCCL raise plain RuntimeErrors inside backward
            if is_peer_failure(err):
                raise lost_peer(err) from err
            raise
        finally:
            dist.destroy_process_group()

    def device(self, name: str) -> torch.device:
        """This process's device: with several processes, `auto` and `cuda` mean the GPU of the local rank."""
        device = resolve_device(name)
        if not self.distributed:
            return device
        if device.type == "mps":
            raise DeviceError("MPS trains in one process only; train in one process, or use `device` cpu")
        if device.type == "cuda":
            if name not in ("auto", "cuda"):
                raise DeviceError(f"`device` {name} names one GPU, but each of the {self.world_size} processes "
                                  "takes the GPU of its local rank; use `device` cuda (and choose GPUs with "
                                  "CUDA_VISIBLE_DEVICES)")
            if self.local_rank >= torch.cuda.device_count():
                raise DeviceError(f"local rank {self.local_rank} has no GPU: this node has "
                                  f"{torch.cuda.device_count()}; start at most that many processes per node")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    def all_ready(self, work: Callable[[], T]) -> T:
        """Every process does its `work` (a step of the set-up) and returns its result; if one failed, all stop:
        it with its error, the others with a PeerError."""
        error = result = None
        try:
            result = work()
        except Exception as err:  # noqa: BLE001 - told to the others, then raised here as it was
            if not self.distributed:
                raise
            error = err
        if self.distributed:
            failures: list[bool] = [False] * self.world_size
            _collective(lambda: dist.all_gather_object(failures, error is not None))
            if error is not None:
                raise error
            failed = [rank for rank, failure in enumerate(failures) if failure]
            if failed:
                raise PeerError(f"rank {failed[0]} failed")
        return result

    def main_does(self, work: Callable[[], T]) -> T | None:
        """Rank 0 does `work` and gets its result, the others None; all stop if it failed."""
        return self.all_ready(work if self.is_main else lambda: None)

    def main_tells(self, value: T) -> T:
        """Rank 0's `value`, on every process."""
        if not self.distributed:
            return value
        shared = [value]
        _collective(lambda: dist.broadcast_object_list(shared, src=0))
        return shared[0]

    def main_decides(self, work: Callable[[], T]) -> T:
        """Rank 0 does `work` (reading or checking something once for all) and every process gets its result;
        all stop if it failed."""
        return self.main_tells(self.main_does(work))

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when it is true on one (a stop request must stop all at the same step)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=device)
        _collective(lambda: dist.all_reduce(value, op=dist.ReduceOp.MAX))
        return bool(value.item())

    def mean(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """Averages logged numbers over the processes, so the loss log describes the whole global batch."""
        if not self.distributed or not values:
            return values
        stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
        _collective(lambda: dist.all_reduce(stacked, op=dist.ReduceOp.SUM))
        return dict(zip(values, (stacked / self.world_size).tolist()))

    def gather(self, value: T) -> list[T] | None:
        """Every process's `value`, in rank order, on rank 0 (None elsewhere)."""
        if not self.distributed:
            return [value]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        _collective(lambda: dist.gather_object(value, gathered, dst=0))
        return gathered

    def replicate(self, module: nn.Module, device: torch.device, sync_batch_norm: bool) -> nn.Module:
        """A network's data-parallel replica: gradients are averaged over the processes in backward. Batch-norm
        running statistics are not broadcast at every forward: they only serve eval mode, and rank 0 saves its
        own. In one process, the network itself."""
        if not self.distributed:
            return module
        if sync_batch_norm:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        device_ids = [device.index] if device.type == "cuda" else None
        return _collective(lambda: nn.parallel.DistributedDataParallel(module, device_ids=device_ids,
                                                                       **_no_buffer_sync()))


ONE_PROCESS = Processes()


def backend() -> str:
    """gloo for CPU tensors, and nccl for CUDA ones where there are GPUs (chosen per tensor by PyTorch)."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


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
                         "hangs, and its own output says why; continue the run with `resume`")


def _collective(action: Callable[[], T]) -> T:
    """Runs a collective step, turning a dead, hung or unreachable peer into one clear error."""
    try:
        return action()
    except RuntimeError as err:  # DistError is one
        raise lost_peer(err) from err


def _no_buffer_sync() -> dict[str, bool]:
    """`forward_sync_buffers=False` where this torch has it (2.13+), else the older spelling."""
    parameters = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in parameters else {"broadcast_buffers": False}
