"""Processes an app starts (nodes, a `vae-ros record`), each `python -m MODULE ARGS` logging to LOG_DIR/NAME.log:
started, checked and stopped in one place, so `vae-ros demo` (servo, world model, route) and `eval-control --ros`
end every process they start, also after an error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from vae_ros.core.errors import NodeExitedError


class NodeProcesses:
    """Named processes of this Python (`python -m MODULE`); stop_all() ends every one still running."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}  # running or not yet stopped, by name
        self._logs: dict[str, IO[bytes]] = {}

    def start(self, name: str, module: str, args: list[str]) -> subprocess.Popen[bytes]:
        """`python -m module *args`, stdout and stderr to LOG_DIR/NAME.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop / stop_all
        try:
            proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(os.environ))
        except BaseException:
            log.close()
            raise
        self.procs[name] = proc
        self._logs[name] = log
        return proc

    def start_node(self, name: str, module: str, ros_args: list[str]) -> subprocess.Popen[bytes]:
        """A node, named `name` (`--ros-args -r __node:=NAME ROS_ARGS`)."""
        return self.start(name, module, ["--ros-args", "-r", f"__node:={name}", *ros_args])

    def stop(self, name: str, timeout: float = 10.0) -> int:
        """SIGINT one process and wait for it (SIGKILL after `timeout` s); its exit code. It is then no
        longer checked by check_alive."""
        proc = self.procs.pop(name)
        try:
            _stop([proc], timeout)
        finally:
            self._close_log(name)
        return int(proc.returncode)

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGINT every process still running, then wait for each (SIGKILL after `timeout` s in all)."""
        procs, self.procs = self.procs, {}
        try:
            _stop(list(procs.values()), timeout)
        finally:
            for name in procs:
                self._close_log(name)

    def check_alive(self) -> None:
        """NodeExitedError naming the first process that ended on its own, and its log."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise NodeExitedError(f"{name} exited with code {proc.returncode}; see {self.log_dir}/{name}.log")

    def _close_log(self, name: str) -> None:
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()


def _stop(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
