"""vae_ros.ros.kit.run without running nodes: Fast DDS profile choice, anomaly scores, the latest-wins
worker, raw CDR decoding, and how run_node's process ends when a signal cuts start-up short."""

from __future__ import annotations

import pathlib
import threading
import time

import numpy as np
import pytest
import torch
from rclpy.serialization import serialize_message

from vae_ros.core.anomaly import anomaly_score
from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig, ScanSpec
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.core.losses import vae_loss
from vae_ros.core.models import build_model
from vae_ros.resources import config_dir
from vae_ros.ros.kit.guard import CdrDecoder, LatestWorker, MessageGuard
from vae_ros.ros.kit.run import use_large_data_profile


def test_profile_is_set_only_when_the_user_has_none() -> None:
    env: dict[str, str] = {}
    profile = use_large_data_profile(env)
    assert profile == config_dir() / "fastdds_large_data.xml" and profile.is_file()
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}
    assert "<segment_size>16777216</segment_size>" in profile.read_text()

    jazzy = {"ROS_DISTRO": "jazzy"}
    use_large_data_profile(jazzy)  # Fast DDS 2.x reads the older variable
    assert jazzy["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(profile)

    for user in ({"FASTDDS_DEFAULT_PROFILES_FILE": "/my/profile.xml"}, {"FASTDDS_DEFAULT_PROFILES_FILE": ""},
                 {"FASTRTPS_DEFAULT_PROFILES_FILE": "/old.xml"}, {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}):
        before = dict(user)
        assert use_large_data_profile(user) is None and user == before


@pytest.mark.parametrize("modality, likelihood", [("image", "gaussian"), ("image", "bernoulli"), ("scan", "gaussian")])
def test_neg_elbo_score_equals_the_core_loss(modality: str, likelihood: str) -> None:
    arch = ArchSpec(latent_dim=4, channels=[8, 16], likelihood=likelihood)
    if modality == "image":
        config = ModelConfig("image", arch=arch, image=ImageSpec(height=16, width=16, channels=3))
    else:
        config = ModelConfig("scan", arch=arch, scan=ScanSpec(beams=32))
    torch.manual_seed(0)
    model = build_model(config).eval()
    rng = np.random.default_rng(0)
    x = rng.random((1, *config.input_shape)).astype(np.float32)
    if modality == "scan":
        x[:, 1] = rng.random((1, 32)) > 0.3  # validity mask
    with torch.no_grad():
        mu, logvar = model.encode(torch.from_numpy(x))
        logits = model.decode_logits(mu)
        terms = vae_loss(logits, torch.from_numpy(x), mu, logvar, config)
        x_hat = torch.sigmoid(logits).numpy()
    score = anomaly_score(x, x_hat, mu.numpy(), logvar.numpy(), config, "neg_elbo")
    assert score == pytest.approx(-float(terms.elbo_per_sample[0]), rel=1e-4)

    mse = anomaly_score(x, x_hat, mu.numpy(), logvar.numpy(), config, "reconstruction")
    if modality == "image":
        assert mse == pytest.approx(float(((x_hat - x) ** 2).mean()), rel=1e-6)
    else:
        mask = x[:, 1:2]
        assert mse == pytest.approx(float((((x_hat - x[:, :1]) ** 2) * mask).sum() / mask.sum()), rel=1e-6)
    with pytest.raises(ConfigError, match="anomaly_metric"):
        anomaly_score(x, x_hat, mu.numpy(), logvar.numpy(), config, "vibes")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the bug, on purpose
def test_latest_worker_drops_superseded_items_and_surfaces_bugs() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[int] = []
    dropped: list[int] = []
    failures: list[bool] = []

    def process(item: int) -> None:
        if item == 0:
            started.set()
            release.wait(5.0)
        if item == 99:
            raise RuntimeError("a bug")
        done.append(item)

    worker = LatestWorker(process, dropped.append, lambda: failures.append(True))
    worker.submit(0)
    assert started.wait(5.0)
    for item in (1, 2, 3):  # arrive while 0 is being processed: only the newest survives
        worker.submit(item)
    release.set()
    deadline = time.monotonic() + 5.0
    while done != [0, 3] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done == [0, 3] and sum(dropped) == 2

    worker.submit(99)  # a programming error is not swallowed: the worker stops and reports it
    deadline = time.monotonic() + 5.0
    while not failures and time.monotonic() < deadline:
        time.sleep(0.01)
    assert failures == [True] and worker.failed
    worker.close()


def test_cdr_decoder_reads_rclpy_bytes_and_rejects_garbage() -> None:
    from sensor_msgs.msg import Image

    msg = Image(height=2, width=3, encoding="mono8", step=3)
    msg.data = bytes(range(6))
    decoded = CdrDecoder("sensor_msgs/msg/Image").decode(serialize_message(msg))
    assert (decoded.height, decoded.width, decoded.encoding) == (2, 3, "mono8")
    assert np.array_equal(np.asarray(decoded.data), np.arange(6))
    with pytest.raises(InputError, match="could not be deserialised"):
        CdrDecoder("sensor_msgs/msg/Image").decode(serialize_message(msg)[:30])
    with pytest.raises(ConfigError):
        CdrDecoder("sensor_msgs/msg/NoSuchThing")


class _ClockNode:
    """The two things stamp_age uses of a node: a clock reading and a logger."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns
        self.warnings: list[str] = []

    def get_clock(self):  # noqa: ANN201
        return type("Clock", (), {"now": lambda _self: type("T", (), {"nanoseconds": self.now_ns})()})()

    def get_logger(self):  # noqa: ANN201
        node = self

        class _Logger:
            def warning(self, text: str, **_kwargs: object) -> None:
                node.warnings.append(text)

        return _Logger()


def test_stamp_age_measures_latency_and_refuses_stamps_from_another_clock() -> None:
    from builtin_interfaces.msg import Time

    from vae_ros.ros.kit.guard import stamp_age

    wall = _ClockNode(now_ns=1_700_000_000_250_000_000)
    assert stamp_age(wall, Time(sec=1_700_000_000, nanosec=0)) == pytest.approx(0.25)
    assert stamp_age(wall, Time(sec=0, nanosec=0)) is None  # unset stamp
    assert wall.warnings == []
    # A simulator's stamp (sim time from 0) seen by a wall-clock node: no latency, and a hint why.
    assert stamp_age(wall, Time(sec=12, nanosec=0)) is None
    assert "use_sim_time" in wall.warnings[0]


class _Logger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, float]] = []

    def warning(self, text: str, throttle_duration_sec: float = 0.0) -> None:
        self.lines.append(("warning", text, throttle_duration_sec))

    def error(self, text: str, throttle_duration_sec: float = 0.0) -> None:
        self.lines.append(("error", text, throttle_duration_sec))


class _Node:
    def __init__(self) -> None:
        self.logger = _Logger()

    def get_logger(self) -> _Logger:
        return self.logger


def test_message_guard_rejects_domain_errors_and_survives_everything_else() -> None:
    from vae_ros.core.diagnostics import ERROR, NodeStats

    node, stats = _Node(), NodeStats()
    guard = MessageGuard.for_stats(node, stats)
    done: list[int] = []
    assert guard.run("a message", done.append, 1) and done == [1]

    def bad_input(_: object) -> None:
        raise InputError("scan has no ranges")

    def bug(_: object) -> None:
        raise MemoryError("Unable to allocate 3.6 GiB for an array")

    callback = guard.wrap("a scan message", bug)
    callback(object())  # does not raise: the node keeps running
    assert not guard.run("a scan message", bad_input, object())
    assert stats.rejected == 1 and stats.errors == 1
    (level_e, text_e, throttle_e), (level_w, text_w, throttle_w) = node.logger.lines
    assert level_e == "error" and "Traceback" in text_e and "MemoryError" in text_e and throttle_e > 0
    assert level_w == "warning" and text_w == "rejected a scan message: scan has no ranges" and throttle_w > 0
    assert stats.snapshot().level == ERROR

    def interrupted(_: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is not a message's fault: it still stops the node
        guard.run("a message", interrupted, None)


def test_params_files_as_launch_ros_writes_them_are_accepted(tmp_path: pathlib.Path) -> None:
    # launch_ros writes list parameters (sim_node's initial_pose:=[...] from servo.launch.py) as tuples,
    # tagged !!python/tuple; rcl reads them as arrays, so the start-up check must too, and still nothing else.
    import yaml

    from vae_ros.ros.kit.declare import check_params_files

    written = tmp_path / "launch_params.yaml"
    written.write_text(yaml.dump({"/**": {"ros__parameters": {"initial_pose": (0.5, -0.3, 0.4)}}}))
    assert "!!python/tuple" in written.read_text()
    check_params_files(["--params-file", str(written)])
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text('/**: {ros__parameters: {x: !!python/object/apply:os.system ["true"]}}\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        check_params_files(["--params-file", str(hostile)])


# A process that handles SIGTERM during start-up the way run_node does; {case} picks what start-up was doing.
_SIGNAL_CHILD = """
import ctypes, os, signal, sys, time
from vae_ros.core.errors import BackendUnavailableError
from vae_ros.ros.kit.run import run_node

def starting():
    try:
        if "{case}" == "pyrun_string":  # code run by an extension module (PyRun_String) gets the signal
            run = ctypes.pythonapi.PyRun_String
            run.restype = ctypes.py_object
            run.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
            run(b"import os, signal, time\\nos.kill(os.getpid(), signal.SIGTERM)\\ntime.sleep(5)", 257, {{}}, {{}})
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except KeyboardInterrupt:
        if "{case}" == "import":  # an import that turned the interrupt into an ImportError
            raise BackendUnavailableError("onnxruntime is not installed") from None
        raise

sys.exit(run_node(starting, "child", ["child", "--ros-args"]))
"""


@pytest.mark.parametrize("case", ["pyrun_string", "import"])
def test_sigterm_during_start_up_exits_zero_without_an_error_line(case: str, tmp_path: pathlib.Path) -> None:
    """pyrun_string: CPython 3.11 would otherwise end the process with SIGINT (-2) although run_node
    handled the interrupt. import: the interrupt surfaced as a VaeRosError, which is no error to report.
    Run with `python -m`, as the nodes are: that is the way of exiting that honours CPython's flag."""
    import os
    import subprocess
    import sys

    (tmp_path / "signal_child.py").write_text(_SIGNAL_CHILD.format(case=case))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.run([sys.executable, "-m", "signal_child"], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert "error" not in proc.stderr, proc.stderr


# A node process whose stop signal lands while rclpy builds its executor (CI saw it once, right after a node's
# start-up line): the signal is sent from inside Executor.__init__, before the attribute its __del__ reads.
_EXECUTOR_CHILD = """
import gc, os, signal, sys
import rclpy.executors
from rclpy.node import Node
from vae_ros.ros.kit.run import run_node

real = rclpy.executors.SignalHandlerGuardCondition

def cut_short(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)

rclpy.executors.SignalHandlerGuardCondition = cut_short
code = run_node(lambda: Node("child"), "child", ["child", "--ros-args"])
gc.collect()
print("stopped", code, flush=True)
sys.exit(code)
"""


def test_a_stop_while_the_executor_is_built_ends_cleanly(tmp_path: pathlib.Path) -> None:
    """Exit 0, and no 'Exception ignored in Executor.__del__' traceback from the half-built executor."""
    import os
    import subprocess
    import sys

    from ros_env import ros_env

    (tmp_path / "executor_child.py").write_text(_EXECUTOR_CHILD)
    env = {**ros_env(), "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.run([sys.executable, "-m", "executor_child"], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "stopped 0" in proc.stdout, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
