"""Start real torchrun process groups for tests: two CPU processes, gloo, rendezvous on loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# torchrun's --no-python: each process runs this shell line, which gives each rank its own --out ($OUT/rankN),
# so a test can see what each rank writes.
PER_RANK_OUT = ["--no-python", "sh", "-c", 'exec "$0" -m vae_ros.apps.cli "$@" --out "$OUT/rank$RANK"', sys.executable]


def env(**extra: str) -> dict[str, str]:
    """This environment without torchrun's variables, one thread a process, gloo on the loopback interface."""
    out = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    out.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", **extra)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun(command: list[str], *args: str, out: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`torchrun --nproc-per-node 2 COMMAND ARGS` on this machine; out: $OUT for PER_RANK_OUT."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    return subprocess.run([*launcher, *command, *args], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env=env(OUT=str(out or "")))


def vae_ros(*args: str) -> subprocess.CompletedProcess[str]:
    """`vae-ros ARGS` in one process, in the same environment."""
    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=env())
