"""The collectives training relies on, in two real gloo processes on loopback (torch.multiprocessing)."""

from __future__ import annotations

import faulthandler
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from vae_ros.core.distributed import Distributed, exit_process


def _step(rank: int, out: Path) -> None:
    dist, cpu = Distributed(rank=rank, world_size=2), torch.device("cpu")
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    wrapped = dist.wrap(model, cpu)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1)
    x = torch.full((4, 3), float(rank + 1))  # each process its own data
    wrapped(x).sum().backward()
    optimizer.step()
    summed = dist.sum([rank, 1.5], cpu)
    flags = (dist.all_true(rank == 0, cpu), dist.all_true(True, cpu))
    torch.save({"weight": model.weight.detach().clone(), "grad": model.weight.grad.clone(), "summed": summed,
                "flags": flags}, out / f"rank{rank}.pt")


def _worker(rank: int, port: int, out: Path) -> None:
    faulthandler.enable(all_threads=True)  # should a process still abort, its stacks are in the report
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        _step(rank, out)  # the DDP wrapper is gone when it returns, as in training
        torch.distributed.barrier()  # leave together, as vae_ros.core.distributed.process_group does
    finally:
        torch.distributed.destroy_process_group()
    # As `vae-ros train` under torchrun does: the group DDP used is freed only at interpreter exit, where gloo can
    # abort the process ("terminate called without an active exception", twice in loaded CI runs).
    exit_process(0)


def test_gradients_are_averaged_and_sums_and_flags_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_worker, args=(port, tmp_path), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # d(sum of 4 outputs)/dw = 4 x input: 4 on rank 0, 8 on rank 1; DDP averages them to 6 in both.
    for result in results:
        torch.testing.assert_close(result["grad"], torch.full((1, 3), 6.0))
        assert result["summed"] == [1.0, 3.0] and result["flags"] == (False, True)
    torch.testing.assert_close(results[0]["weight"], results[1]["weight"])
