"""The one place for what the tests under test/ share (issue 17): wait on a condition (`wait_for`), send until a
condition holds (`send_until`), stop a process (`stop_processes`, `stop_process`), build a stamped std_msgs
Header (`header`), read a node's status from recorded /diagnostics (`Diagnostic`, `Probe.diagnostic`), run the
`vae-ros` CLI in a process (`run_cli`, `NEEDS_PACKAGED_DYNAMICS`), and `Probe`, a test-side rclpy node that records
what arrives. test/nodes/node_helpers.py adds what only node tests
need (model directories, starting a node) and re-exports these."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python -m vae_ros.apps.cli ARGS` in its own process, DDS isolated (test/ros_env.py), output captured."""
    import ros_env

    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ros_env.ros_env())


def _needs_packaged_dynamics() -> Any:
    import pytest

    from vae_ros.resources import default_model_dir

    return pytest.mark.skipif(not (default_model_dir("control") / "dynamics" / "dynamics.json").is_file(),
                              reason="packaged control model or its dynamics not built "
                                     "(scripts/make_control_model.sh, scripts/make_dynamics_model.sh)")


NEEDS_PACKAGED_DYNAMICS = _needs_packaged_dynamics()  # skip marker: the packaged world model is not built here


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, poll: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed; returns its last value as a bool.

    Use as `assert wait_for(...), why`: a test waits on the condition it checks, never on a fixed time.
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


def stop_processes(procs: Iterable[subprocess.Popen[Any]], sig: int = signal.SIGINT, timeout: float = 10.0) -> None:
    """Send `sig` to each process still running, then wait for each up to `timeout` s, SIGKILL one that is not
    done by then. All are signalled before any is waited for, so they stop together. Reads no output."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_process(proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 10.0) -> str:
    """stop_processes for one process whose stdout is a pipe nobody else reads; returns its output."""
    stop_processes([proc], sig, timeout)
    return proc.stdout.read() if proc.stdout else ""


def _fail_if_exited(alive: Mapping[str, subprocess.Popen[str]]) -> None:
    for name, proc in alive.items():
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited {proc.returncode}:\n{stop_process(proc)}")


def send_until(send: Callable[[], object], done: Callable[[], T], what: str | Callable[[], str], timeout: float = 30.0,
               period: float = 0.5, alive: Mapping[str, subprocess.Popen[str]] | None = None) -> T:
    """Call `send()` every `period` s until `done()` returns something true, and return that (e.g. the message
    that matched); fail, naming `what` was awaited (a callable: asked then), after `timeout` s. A sample can be lost (best effort, a
    subscription not yet matched), hence the repeats. The processes in `alive` must stay up meanwhile: one that
    exits fails the test with its output."""
    deadline, last_sent = time.monotonic() + timeout, -float("inf")
    while time.monotonic() < deadline:
        _fail_if_exited(alive or {})
        if time.monotonic() - last_sent >= period:
            send()
            last_sent = time.monotonic()
        result = done()
        if result:
            return result
        time.sleep(min(0.02, period))
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")


def header(frame_id: str = "", stamp_ns: int | None = None) -> Any:
    """A std_msgs Header in `frame_id`, stamped `stamp_ns` (nanoseconds; None: a zero stamp)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    sec, nanosec = divmod(stamp_ns or 0, 1_000_000_000)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def stamp_ns(msg_or_header: Any) -> int:
    """A message's (or a Header's) stamp in nanoseconds."""
    stamp = getattr(msg_or_header, "header", msg_or_header).stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass(frozen=True)
class Diagnostic:
    """One DiagnosticStatus as a test reads it: the array's stamp, level as an int, message, key/values."""

    stamp_ns: int
    name: str
    level: int
    message: str
    values: dict[str, str]

    @classmethod
    def of(cls, status: Any, stamp: int = 0) -> Diagnostic:
        level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
        return cls(stamp, status.name, level, status.message, {kv.key: kv.value for kv in status.values})

    def count(self, key: str) -> int:
        """An integer value (a counter such as `rejected`); -1 when absent or not a count."""
        value = self.values.get(key, "")
        return int(value) if value.isdigit() else -1


class Probe:
    """An rclpy node spun on a background thread, recording the messages of each topic it subscribes to.

    own_context: a private rclpy context (init here, shut down in close), for tests that must not share the
    process's default context; otherwise the default one, initialised if needed and left running.
    """

    def __init__(self, name: str = "probe", own_context: bool = False) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context() if own_context else None
        if self.context is not None:
            rclpy.init(context=self.context)
        elif not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(name, context=self.context)
        self.lock = threading.Lock()
        self.recorded: dict[str, list[Any]] = {}
        self.publishers: dict[str, Any] = {}  # by topic, for tests that publish
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def record(self, msg_type: Any, topic: str, qos: Any = 10) -> None:
        self.recorded[topic] = []

        def on_message(msg: Any) -> None:
            with self.lock:
                self.recorded[topic].append(msg)

        self.node.create_subscription(msg_type, topic, on_message, qos)

    def messages(self, topic: str) -> list[Any]:
        with self.lock:
            return list(self.recorded[topic])

    def clear(self, topic: str) -> None:
        with self.lock:
            self.recorded[topic].clear()

    def wait_for(self, predicate: Callable[[], object], timeout: float = 20.0, poll: float = 0.05) -> bool:
        return wait_for(predicate, timeout, poll)

    def header(self, frame_id: str = "", offset_ns: int = 0) -> Any:
        """A Header in `frame_id` stamped now (this node's clock) plus `offset_ns`."""
        return header(frame_id, self.node.get_clock().now().nanoseconds + offset_ns)

    def diagnostics(self, name: str, topic: str = "/diagnostics") -> list[Diagnostic]:
        """Every status called `name` recorded on `topic` (a DiagnosticArray topic), in arrival order."""
        return [Diagnostic.of(status, stamp_ns(array))
                for array in self.messages(topic) for status in array.status if status.name == name]

    def diagnostic(self, name: str, topic: str = "/diagnostics") -> Diagnostic | None:
        """The newest status called `name`, None before one has arrived."""
        for array in reversed(self.messages(topic)):
            for status in array.status:
                if status.name == name:
                    return Diagnostic.of(status, stamp_ns(array))
        return None

    def diagnostic_values(self, name: str, topic: str = "/diagnostics") -> dict[str, str]:
        """The key/values of the newest status called `name`; {} before one has arrived."""
        found = self.diagnostic(name, topic)
        return found.values if found else {}

    def close(self) -> None:
        self._running = False
        self._thread.join(2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        if self.context is not None:
            self.context.try_shutdown()


def recording_probe(name: str, *topics: tuple[Any, str]) -> Probe:
    """A Probe recording each (message type, topic) given, and /diagnostics, where every node reports."""
    from diagnostic_msgs.msg import DiagnosticArray

    probe = Probe(name)
    for msg_type, topic in topics:
        probe.record(msg_type, topic)
    probe.record(DiagnosticArray, "/diagnostics")
    return probe


PEAK_RSS_LAUNCHER = str(Path(__file__).resolve().parent / "peak_rss.py")


def with_peak_rss(cmd: list[str]) -> list[str]:
    """`cmd` run by test/peak_rss.py, which prints the command's own peak memory (see there why) on stderr."""
    return [sys.executable, PEAK_RSS_LAUNCHER, *cmd]


def split_peak_rss(output: str) -> tuple[str, float]:
    """(the output without test/peak_rss.py's line, the peak in MB); NaN when the line is missing."""
    kept, peak = [], float("nan")
    for line in output.splitlines(keepends=True):
        if line.startswith("PEAK_RSS_KB "):
            peak = int(line.split()[1]) / 1024
        else:
            kept.append(line)
    return "".join(kept), peak
