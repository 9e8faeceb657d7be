"""Training on several processes under torchrun (PyTorch DDP): who this process is, and the few collectives
the training loops need.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR / MASTER_PORT) for every process it starts;
`from_env` reads them. Without them this is one process (`SINGLE`), every collective here is the identity,
and training behaves exactly as it always has. Processes on CPU talk over gloo, processes on CUDA over NCCL,
each taking the GPU of its LOCAL_RANK. Rank 0 alone writes files, logs progress and validates.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vae_ros.core.errors import ConfigError

if TYPE_CHECKING:  # torch loads only when training does (the world-model node imports dynamics without it)
    import torch

# Set once this process has joined a process group: it then leaves through `exit_process` (see there).
_joined_group = False

# Rank 0 validates and writes the model directory while the others wait in their next collective; a large
# validation split on a slow disk must not trip the default timeout (10 min for NCCL).
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device_name(self, device: str) -> str:
        """The device this process trains on: under torchrun 'cuda' means the GPU of this LOCAL_RANK."""
        if not self.enabled or not device.startswith("cuda"):
            return device
        if device != "cuda":
            raise ConfigError(f"under torchrun give --device cuda, not {device!r}: each process takes the GPU "
                              "of its LOCAL_RANK")
        return f"cuda:{self.local_rank}"

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module as DistributedDataParallel (gradients averaged over processes), or as it is."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Element-wise sum over processes (float64)."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch

        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return [float(v) for v in tensor.cpu()]

    def all_true(self, flag: bool, device: torch.device) -> bool:
        """True when flag is true in every process (keeps the processes' steps in lockstep)."""
        if not self.enabled:
            return flag
        import torch

        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MIN)
        return bool(tensor.item())

    def min_int(self, value: int, device: torch.device) -> int:
        """The smallest of the processes' values (one collective and one host read)."""
        if not self.enabled:
            return value
        import torch

        tensor = torch.tensor([value], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MIN)
        return int(tensor.item())

    def barrier(self, device: torch.device) -> None:
        """Wait for every process (as an all-reduce, which needs no device guess under NCCL)."""
        self.all_true(True, device)


SINGLE = Distributed()


def _int_var(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = env.get(name)
    if text is None:
        if default is None:
            raise ConfigError(f"WORLD_SIZE is set but {name} is not: start several processes with torchrun")
        return default
    try:
        return int(text)
    except ValueError as err:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from err


def from_env(env: Mapping[str, str] | None = None) -> Distributed:
    """The process's place from torchrun's RANK, WORLD_SIZE and LOCAL_RANK; SINGLE when WORLD_SIZE is unset."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return SINGLE
    world = _int_var(env, "WORLD_SIZE")
    rank = _int_var(env, "RANK")
    local = _int_var(env, "LOCAL_RANK", default=rank)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return Distributed(rank=rank, world_size=world, local_rank=local)


@contextmanager
def process_group(dist: Distributed, device: str) -> Iterator[None]:
    """Join the other processes (gloo on CPU, NCCL on CUDA; MASTER_ADDR/PORT from torchrun) for the block."""
    if not dist.enabled:
        yield
        return
    import torch

    global _joined_group
    cuda = device.startswith("cuda") and torch.cuda.is_available()  # else training says CUDA is absent
    if cuda:
        torch.cuda.set_device(dist.local_rank)
    _joined_group = True
    torch.distributed.init_process_group("nccl" if cuda else "gloo", rank=dist.rank, world_size=dist.world_size,
                                         timeout=COLLECTIVE_TIMEOUT)
    try:
        yield
        # Leave together: a gloo process that tears down while a peer is still finishing (rank 0 writes the
        # model directory) can abort in the peer's connection threads ("terminate called without an
        # active exception", seen once in a loaded test run).
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def joined_group() -> bool:
    """Whether this process has joined a process group (`process_group` with more than one process)."""
    return _joined_group


def exit_process(code: int) -> None:
    """End a process that trained in a process group with `code`, skipping the interpreter's teardown.

    DistributedDataParallel keeps references to the process group that outlive it (measured on torch 2.13: the
    group's reference count rises by 11 when a module is wrapped and falls by 1 when the wrapper is deleted), so
    the gloo group is not freed by `destroy_process_group` but at interpreter exit, where its threads can abort
    the process ("terminate called without an active exception", seen twice in loaded test runs) after the work
    is done and written. Everything this process has to say is flushed first; then it leaves at once.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
