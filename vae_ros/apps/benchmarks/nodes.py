"""Node benchmark (`vae-ros bench nodes`): encoder_node against a naive node over real ROS 2 processes.

Over 500 lines: the benchmark's helper processes (--role naive / echo / publisher) live here so one module is
the whole runnable benchmark.

640x480 bgr8 images are published from another process at 30 Hz and then flat out; for each node the
benchmark reports the fraction of frames that produce a latent, the end-to-end latency (the image's
header stamp -> the latent received here, p50/p99) and the maximum sustained rate (latents per second
while the publisher runs flat out). Beside them:
- naive: a node written the way the common snippet does it: default QoS (reliable, depth 10), the image
  converted through Python lists, resized and encoded with eager PyTorch, per frame, in the callback;
- echo: a node that does no work (it decodes the image and answers with its header): the cost of the
  ROS plumbing alone (transport both ways, deserialisation, executor dispatch);
- floor: the sum of encoder_node's in-process stage costs (CDR decode + conversion, resize, inference,
  publish), each the median of repeated runs in this process.

How latency is measured: a latent has no header, so frames are told apart by content. The publisher
cycles through `frames` distinct pictures; this process computes each picture's latent offline with the
node's own code path, matches every received latent to its nearest picture, and takes the most recent
send of that picture before the latent arrived. That is exact while a picture's repeat period is longer
than the latency; rows where it is not (the naive node flat out) say so instead of printing a number.
All processes use the Fast DDS large-data profile (config/fastdds_large_data.xml), a private domain and
localhost-only discovery.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vae_ros.apps.benchmarks import save_report_json
from vae_ros.core.conversions.common import stamp_ns
from vae_ros.core.errors import ConfigError, ModelFileError, NodeExitedError, RosTimeoutError
from vae_ros.ros.interface import CAMERA_TOPIC, LATENT_TOPIC

MODULE = "vae_ros.apps.benchmarks.nodes"
ECHO_TOPIC = "bench/echo"
FLOOR_TOPIC = "bench/floor_latent"


# -- frames -----------------------------------------------------------------------------------------------------
def make_frames(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """`count` distinct smooth bgr8 pictures (H, W, 3) uint8, the same in every process for the same seed."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        frames.append(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC))  # (H, W, 3)
    return frames


def image_msg(frame: np.ndarray) -> Any:
    """A bgr8 sensor_msgs/Image of a frame (no padding)."""
    from sensor_msgs.msg import Image

    height, width = frame.shape[:2]
    msg = Image(height=height, width=width, encoding="bgr8", step=width * 3)
    msg.data = frame.tobytes()
    return msg


# -- the naive node's pipeline ----------------------------------------------------------------------------------
def naive_input(pixels: Sequence[int] | np.ndarray, height: int, width: int, size: tuple[int, int]) -> Any:
    """(H*W*3,) bgr8 bytes -> (1, 3, h, w) float tensor: full-size float conversion, BGR->RGB, bilinear
    resize, all in eager PyTorch (what the common snippet does after its Python-list conversion)."""
    import torch
    import torch.nn.functional as F

    image = torch.as_tensor(pixels, dtype=torch.float32).view(height, width, 3)  # (H, W, 3) BGR
    image = image[:, :, [2, 1, 0]].permute(2, 0, 1).unsqueeze(0) / 255.0  # (1, 3, H, W) RGB
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)  # (1, 3, h, w)


def _naive_main(model_dir: str) -> int:
    """The naive node: default QoS, Python-list conversion, eager torch per frame in the callback."""
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32MultiArray

    from vae_ros.core.model_dir import load_model_dir

    rclpy.init()
    node = rclpy.create_node("naive_encoder")
    config, model = load_model_dir(model_dir)
    size = (config.image_spec.height, config.image_spec.width)
    publisher = node.create_publisher(Float32MultiArray, LATENT_TOPIC, 10)

    def on_image(msg: Image) -> None:
        pixels = list(msg.data)  # the snippet's per-pixel Python conversion
        x = naive_input(pixels, msg.height, msg.width, size)
        mean, _ = model.encode(x)
        publisher.publish(Float32MultiArray(data=mean[0].tolist()))

    node.create_subscription(Image, CAMERA_TOPIC, on_image, 10)
    return _spin_until_shutdown(node)


def _echo_main() -> int:
    """A node that does no work: raw image in (publisher-matching QoS, as encoder_node), header out."""
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from vae_ros.ros.kit.guard import CdrDecoder
    from vae_ros.ros.qos import LATENT_QOS, PublisherMatchingSubscription

    rclpy.init()
    node = rclpy.create_node("echo_node")
    decoder = CdrDecoder("sensor_msgs/msg/Image")
    publisher = node.create_publisher(Header, ECHO_TOPIC, LATENT_QOS)

    def on_image(raw: bytes) -> None:
        msg = decoder.decode(raw)
        publisher.publish(Header(stamp=_time_msg(msg.header.stamp)))

    PublisherMatchingSubscription(node, Image, CAMERA_TOPIC, on_image, raw=True)
    return _spin_until_shutdown(node)


def _spin_until_shutdown(node: Any) -> int:
    """Spin a helper process's node until Ctrl-C or shutdown, then clean up; exit status 0."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _time_msg(stamp: Any) -> Any:
    from builtin_interfaces.msg import Time

    return Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec))


# -- the publisher ----------------------------------------------------------------------------------------------
class Send(NamedTuple):
    """One image the publisher sent."""

    phase: str  # "rate" or "flat"
    seq: int  # order of sending, over both phases
    picture: int  # which of the frames
    stamp_ns: int  # header stamp = wall time at sending


@dataclass
class PublisherLog:
    """What the publisher process sent, handed to the benchmark (or a test) through a JSON file."""

    sends: list[Send]
    phases: list[tuple[str, int, int]]  # (phase, start ns, end ns)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"sends": self.sends, "phases": self.phases}))

    @classmethod
    def load(cls, path: str | Path) -> PublisherLog:
        data = json.loads(Path(path).read_text())
        return cls([Send(*s) for s in data["sends"]], [(str(p), int(a), int(b)) for p, a, b in data["phases"]])


def _publisher_main(args: argparse.Namespace) -> int:
    """Publish the frames at `rate` for `duration`, then flat out for `duration`; log every send as JSON."""
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    frames = make_frames(args.frames, args.width, args.height, args.seed)
    msgs = [image_msg(frame) for frame in frames]
    del frames
    rclpy.init()
    node = rclpy.create_node("bench_image_publisher", namespace=args.namespace)
    reliability = ReliabilityPolicy.RELIABLE if args.publisher_qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10 if args.publisher_qos == "reliable" else 1,
                     reliability=reliability)
    publisher = node.create_publisher(Image, CAMERA_TOPIC, qos)
    deadline = time.monotonic() + 30.0
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # let the node settle its QoS match (it re-checks its publishers every second)

    sends: list[Send] = []
    counter = 0

    def send(phase: str) -> None:
        nonlocal counter
        picture = counter % len(msgs)
        msg = msgs[picture]
        stamp = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        publisher.publish(msg)
        sends.append(Send(phase, counter, picture, stamp))
        counter += 1

    phases: list[tuple[str, int, int]] = []  # (phase, start ns, end ns)
    modes = {"both": [("rate", args.rate), ("flat", 0.0)], "rate": [("rate", args.rate)],
             "flat": [("flat", 0.0)]}[args.modes]
    for phase, rate in modes:
        start = time.perf_counter()
        start_ns = time.time_ns()
        n = 0
        while time.perf_counter() - start < args.duration:
            if rate > 0:
                target = start + n / rate
                while (wait := target - time.perf_counter()) > 0:
                    time.sleep(min(wait, 0.002))
            send(phase)
            n += 1
        phases.append((phase, start_ns, time.time_ns()))
        time.sleep(1.0)  # drain
    PublisherLog(sends, phases).save(args.log)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# -- figures ----------------------------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    """One node under one publishing mode."""

    node: str
    mode: str  # "30 Hz" or "flat out"
    sent: int
    publish_rate_hz: float
    produced: int
    fraction: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    output_rate_hz: float
    note: str = ""


@dataclass
class NodesReport:
    model: str
    backend: str
    width: int
    height: int
    duration_s: float
    publisher_qos: str
    floor_ms: dict[str, float] = field(default_factory=dict)
    phases: list[PhaseResult] = field(default_factory=list)
    targets: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def match_latents(
    received: list[tuple[int, np.ndarray]],
    expected: np.ndarray,
    sends: list[Send],
    tolerance: float,
) -> dict[int, int]:
    """Received (time ns, latent) -> {send index: receive time ns}. Each latent goes to its nearest picture
    (within `tolerance`, max-abs) and then to that picture's latest send before it arrived."""
    by_picture: dict[int, list[tuple[int, int]]] = {}
    for send in sends:
        by_picture.setdefault(send.picture, []).append((send.stamp_ns, send.seq))
    matched: dict[int, int] = {}
    for recv_ns, latent in received:
        diffs = np.abs(expected - latent[None, :]).max(axis=1)  # (K,)
        picture = int(np.argmin(diffs))
        if diffs[picture] > tolerance:
            continue
        candidates = [(stamp, index) for stamp, index in by_picture.get(picture, []) if stamp <= recv_ns]
        if not candidates:
            continue
        stamp, index = max(candidates)
        matched.setdefault(index, recv_ns)
    return matched


def summarise(node: str, log: PublisherLog, matched: dict[int, int], frames: int) -> list[PhaseResult]:
    """Per phase: fraction of sends that produced a latent, latency percentiles, output rate."""
    results = []
    for phase, start_ns, end_ns in log.phases:
        phase_sends = [s for s in log.sends if s.phase == phase]
        if not phase_sends:
            continue
        seconds = (end_ns - start_ns) * 1e-9
        latencies = [(matched[s.seq] - s.stamp_ns) * 1e-6 for s in phase_sends if s.seq in matched]
        produced = len(latencies)
        rate = len(phase_sends) / seconds
        repeat_ms = frames / rate * 1e3  # how soon the same picture comes again
        note = ""
        p50 = p99 = None
        if latencies:
            p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
            if p99 > repeat_ms / 2:
                note = f"latency not identifiable: pictures repeat every {repeat_ms:.0f} ms"
                p50 = p99 = None
        results.append(PhaseResult(
            node=node, mode="30 Hz" if phase == "rate" else "flat out", sent=len(phase_sends),
            publish_rate_hz=rate, produced=produced, fraction=produced / len(phase_sends),
            latency_p50_ms=p50, latency_p99_ms=p99, output_rate_hz=produced / seconds, note=note,
        ))
    return results


# -- orchestration ----------------------------------------------------------------------------------------------
def _env(domain: int) -> dict[str, str]:
    from vae_ros.ros.kit.run import use_large_data_profile

    env = dict(os.environ)
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)
    use_large_data_profile(env)
    env.update({"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "ROS_LOCALHOST_ONLY": "1", "PYTHONUNBUFFERED": "1"})
    prefix = sys.prefix
    if prefix not in env.get("AMENT_PREFIX_PATH", "").split(":"):
        env["AMENT_PREFIX_PATH"] = prefix + (":" + env["AMENT_PREFIX_PATH"] if env.get("AMENT_PREFIX_PATH") else "")
    return env


def _prepare_model(model: str, workdir: Path, backend: str) -> Path:
    """A private copy of the model directory with encoder.onnx (exported when missing, for `auto`)."""
    from vae_ros.core.model_dir import CONFIG_FILE, ENCODER_ONNX, resolve_model_dir, save_model_dir

    target = workdir / "model"
    try:
        source = resolve_model_dir(model, "image")
    except ModelFileError:
        if model:
            raise
        source = None
    if source is not None:
        if not (source / CONFIG_FILE).is_file():
            raise ModelFileError(f"{source} has no {CONFIG_FILE}")
        shutil.copytree(source, target)
    else:  # no packaged default yet: the default architecture, untrained (timings do not depend on weights)
        import torch

        from vae_ros.core.config import ModelConfig
        from vae_ros.core.models import build_model

        torch.manual_seed(0)
        config = ModelConfig("image")
        save_model_dir(target, config, build_model(config))
    if backend in ("auto", "onnxruntime") and not (target / ENCODER_ONNX).is_file():
        from vae_ros.core.export import export_onnx

        export_onnx(target)
    return target


class SpinningNode:
    """A bench's own rclpy node, spun on a background thread until close() (rclpy started if needed)."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(name)
        self.lock = threading.Lock()
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._running = False
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def start(self) -> None:
        """Spin from now on (after the subclass has made its subscriptions)."""
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._running = False
        self._thread.join(2.0)
        self._executor.shutdown()
        self.node.destroy_node()


class _Receiver(SpinningNode):
    """The benchmark's own node: receives latents (and echoes) with their arrival times."""

    def __init__(self) -> None:
        from std_msgs.msg import Float32MultiArray, Header

        from vae_ros.ros.qos import LATENT_QOS

        super().__init__("bench_receiver")
        self.latents: list[tuple[int, np.ndarray]] = []
        self.echoes: list[tuple[int, int]] = []
        self.node.create_subscription(Float32MultiArray, LATENT_TOPIC, self._on_latent, LATENT_QOS)
        self.node.create_subscription(Header, ECHO_TOPIC, self._on_echo, LATENT_QOS)
        self.start()

    def _on_latent(self, msg: Any) -> None:
        now = time.time_ns()
        with self.lock:
            self.latents.append((now, np.asarray(msg.data, dtype=np.float32)))

    def _on_echo(self, msg: Any) -> None:
        now = time.time_ns()
        with self.lock:
            self.echoes.append((now, stamp_ns(msg.stamp)))

    def reset(self) -> None:
        with self.lock:
            self.latents.clear()
            self.echoes.clear()


def measure_floor(model_dir: Path, backend_name: str, frames: list[np.ndarray], receiver: _Receiver,
                  repeats: int = 200, threads: int | None = None) -> tuple[dict[str, float], np.ndarray]:
    """Median in-process cost (ms) of each encoder_node stage on these frames, and each frame's latent (K, D)
    through exactly the node's path (CDR bytes -> rosbags message -> conversion -> backend)."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Float32MultiArray

    from vae_ros.core.backends import create_backend
    from vae_ros.core.conversions.image import image_msg_to_array
    from vae_ros.core.conversions.latent import latent_to_msg
    from vae_ros.core.preprocess import preprocess_image
    from vae_ros.ros.kit.guard import CdrDecoder
    from vae_ros.ros.qos import LATENT_QOS

    backend = create_backend(model_dir, backend_name, threads=threads)
    decoder = CdrDecoder("sensor_msgs/msg/Image")
    raws = [serialize_message(image_msg(frame)) for frame in frames]
    expected = []
    for raw in raws:
        x = preprocess_image(image_msg_to_array(decoder.decode(raw)), backend.config.image_spec)[None]
        expected.append(backend.encode(x)[0][0])
    publisher = receiver.node.create_publisher(Float32MultiArray, FLOOR_TOPIC, LATENT_QOS)
    receiver.node.create_subscription(Float32MultiArray, FLOOR_TOPIC, lambda m: None, LATENT_QOS)
    time.sleep(0.5)
    stages: dict[str, list[float]] = {"conversion": [], "resize": [], "inference": [], "publish": []}
    for i in range(repeats):
        raw = raws[i % len(raws)]
        t0 = time.perf_counter()
        image = image_msg_to_array(decoder.decode(raw))  # (H, W, 3) RGB
        t1 = time.perf_counter()
        x = preprocess_image(image, backend.config.image_spec)[None]  # (1, 3, h, w)
        t2 = time.perf_counter()
        mean, _ = backend.encode(x)
        t3 = time.perf_counter()
        publisher.publish(latent_to_msg(mean[0]))
        t4 = time.perf_counter()
        for name, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[name].append(value * 1e3)
    floor = {name: float(np.median(values)) for name, values in stages.items()}
    floor["total"] = sum(floor.values())
    receiver.node.destroy_publisher(publisher)
    return floor, np.stack(expected)


def _naive_expected(model_dir: Path, frames: list[np.ndarray]) -> np.ndarray:
    import torch

    from vae_ros.core.model_dir import load_model_dir

    config, model = load_model_dir(model_dir)
    size = (config.image_spec.height, config.image_spec.width)
    out = []
    with torch.no_grad():
        for frame in frames:
            x = naive_input(frame.reshape(-1), frame.shape[0], frame.shape[1], size)
            out.append(model.encode(x)[0][0].numpy())
    return np.stack(out)


def _wait_for_publisher(receiver: _Receiver, topic: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while receiver.node.count_publishers(topic) == 0:
        if proc.poll() is not None:
            raise NodeExitedError(f"the node under test exited with status {proc.returncode} before publishing "
                                  f"{topic}")
        if time.monotonic() > deadline:
            raise RosTimeoutError(f"the node under test did not start publishing {topic} within {timeout:.0f} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

_PROCESS_KEYS = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY", "FASTDDS_DEFAULT_PROFILES_FILE",
                 "FASTRTPS_DEFAULT_PROFILES_FILE", "AMENT_PREFIX_PATH")


@contextmanager
def bench_domain() -> Iterator[dict[str, str]]:
    """The environment of the bench's node processes, with this process in the same private ROS domain for
    the block: the one rclpy already runs in here (a test's, an earlier bench's), else a fresh one.
    Afterwards the variables are put back and an rclpy started here is shut down, so a caller in the same
    process (a test run) is not left in the bench's domain."""
    import rclpy

    if rclpy.ok():
        domain = rclpy.get_default_context().get_domain_id()
    else:
        domain = int(os.environ.get("VAE_ROS_BENCH_DOMAIN", random.Random(os.getpid()).randrange(102, 200) % 101 + 1))
    env = _env(domain)
    saved = {key: os.environ.get(key) for key in _PROCESS_KEYS}
    started = not rclpy.ok()
    for key in _PROCESS_KEYS:
        if key in env:
            os.environ[key] = env[key]
    try:
        yield env
    finally:
        if started:
            rclpy.try_shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_nodes_bench(
    model: str = "",
    backend: str = "auto",
    duration: float = 5.0,
    rate: float = 30.0,
    width: int = 640,
    height: int = 480,
    frames: int = 150,
    publisher_qos: str = "reliable",
    nodes: Sequence[str] = ("encoder_node", "naive", "echo"),
    seed: int = 0,
    threads: int | None = None,
    progress: Any = None,
) -> NodesReport:
    """Run the benchmark; returns the report (see the module docstring for what is measured and how)."""
    if duration <= 0 or rate <= 0 or frames < 2 or width < 16 or height < 16:
        raise ConfigError("duration and rate must be > 0, frames >= 2, width and height >= 16")
    if publisher_qos not in ("reliable", "best_effort"):
        raise ConfigError(f"publisher QoS must be reliable or best_effort, got {publisher_qos!r}")
    unknown = set(nodes) - {"encoder_node", "naive", "echo"}
    if unknown:
        raise ConfigError(f"unknown node(s) {sorted(unknown)}; choose from encoder_node, naive, echo")
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    with bench_domain() as env:
        return _run_nodes_bench(model, backend, duration, rate, width, height, frames, publisher_qos, nodes, seed,
                                threads, say, env)


def _run_nodes_bench(model: str, backend: str, duration: float, rate: float, width: int, height: int, frames: int,
                     publisher_qos: str, nodes: Sequence[str], seed: int, threads: int | None, say: Any,
                     env: dict[str, str]) -> NodesReport:
    workdir = Path(tempfile.mkdtemp(prefix="vae_ros_bench_nodes_"))
    receiver = None
    try:
        say("preparing the model ...")
        model_dir = _prepare_model(model, workdir, backend)
        from vae_ros.core.backends import create_backend

        backend_name = create_backend(model_dir, backend, threads=threads).name
        pictures = make_frames(frames, width, height, seed)
        receiver = _Receiver()
        say(f"measuring the in-process floor ({backend_name}) ...")
        floor, expected = measure_floor(model_dir, backend, pictures, receiver, threads=threads)
        report = NodesReport(model=str(model_dir), backend=backend_name, width=width, height=height,
                             duration_s=duration, publisher_qos=publisher_qos, floor_ms=floor)
        expected_naive = _naive_expected(model_dir, pictures) if "naive" in nodes else None
        del pictures
        for name in nodes:
            receiver.reset()
            if name == "encoder_node":
                cmd = [sys.executable, "-m", "vae_ros.ros.nodes.encoder_node", "--ros-args", "-p", f"model:={model_dir}",
                       "-p", f"backend:={backend}", "-p", f"threads:={threads or 0}"]
                topic = LATENT_TOPIC
            elif name == "naive":
                cmd = [sys.executable, "-m", MODULE, "--role", "naive", "--model", str(model_dir)]
                topic = LATENT_TOPIC
            else:
                cmd = [sys.executable, "-m", MODULE, "--role", "echo"]
                topic = ECHO_TOPIC
            say(f"{name}: starting ...")
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                _wait_for_publisher(receiver, topic, proc)
                log_path = workdir / f"{name}_sends.json"
                pub_cmd = [sys.executable, "-m", MODULE, "--role", "publisher", "--log", str(log_path),
                           "--duration", str(duration), "--rate", str(rate), "--width", str(width),
                           "--height", str(height), "--frames", str(frames), "--seed", str(seed),
                           "--publisher-qos", publisher_qos]
                say(f"{name}: publishing {width}x{height} bgr8 at {rate:g} Hz, then flat out, {duration:g} s each ...")
                publisher = subprocess.run(pub_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                           timeout=4 * duration + 120, check=False)
                if publisher.returncode != 0:
                    raise NodeExitedError(f"the image publisher failed: {publisher.stderr.decode()[-500:]}")
                time.sleep(0.5)
            finally:
                _stop(proc)
            log = PublisherLog.load(log_path)
            with receiver.lock:
                latents, echoes = list(receiver.latents), list(receiver.echoes)
            if name == "echo":
                by_stamp = {s.stamp_ns: s.seq for s in log.sends}
                matched: dict[int, int] = {}
                for recv_ns, stamp in echoes:
                    if stamp in by_stamp:
                        matched.setdefault(by_stamp[stamp], recv_ns)
            else:
                table = expected if name == "encoder_node" or expected_naive is None else expected_naive
                matched = match_latents(latents, table, log.sends, tolerance=1e-4)
            report.phases.extend(summarise(name, log, matched, frames))
        report.targets = _targets(report)
        return report
    finally:
        if receiver is not None:
            receiver.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _targets(report: NodesReport) -> dict[str, Any]:
    """The issue's targets: >= 99 % of frames at 30 Hz, p50 <= 1.5x floor, max rate >= 10x naive."""
    def phase(node: str, mode: str) -> PhaseResult | None:
        return next((p for p in report.phases if p.node == node and p.mode == mode), None)

    ours_rate, ours_flat, naive_flat = phase("encoder_node", "30 Hz"), phase("encoder_node", "flat out"), phase(
        "naive", "flat out")
    targets: dict[str, Any] = {}
    if ours_rate is not None:
        targets["fraction_at_30hz"] = {"value": ours_rate.fraction, "target": 0.99,
                                       "met": ours_rate.fraction >= 0.99}
        if ours_rate.latency_p50_ms is not None:
            ratio = ours_rate.latency_p50_ms / report.floor_ms["total"]
            targets["p50_over_floor"] = {"value": ratio, "target": 1.5, "met": ratio <= 1.5}
    if ours_flat is not None and naive_flat is not None and naive_flat.output_rate_hz > 0:
        ratio = ours_flat.output_rate_hz / naive_flat.output_rate_hz
        targets["max_rate_over_naive"] = {"value": ratio, "target": 10.0, "met": ratio >= 10.0}
    return targets


def format_table(report: NodesReport) -> str:
    """The report as a plain-text table."""
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    lines = [
        f"node benchmark: {report.width}x{report.height} bgr8, publisher {report.publisher_qos}, "
        f"{report.duration_s:g} s per mode, backend {report.backend}",
        "",
        f"{'node':<13} {'mode':<9} {'sent':>6} {'pub Hz':>7} {'latents':>7} {'fraction':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'out Hz':>7}  note",
    ]
    for p in report.phases:
        lines.append(
            f"{p.node:<13} {p.mode:<9} {p.sent:>6} {p.publish_rate_hz:>7.1f} {p.produced:>7} {p.fraction:>8.1%} "
            f"{ms(p.latency_p50_ms):>7} {ms(p.latency_p99_ms):>7} {p.output_rate_hz:>7.1f}  {p.note}"
        )
    floor = report.floor_ms
    lines += ["", "floor (encoder_node's in-process stages, median ms): " + ", ".join(
        f"{name} {value:.3f}" for name, value in floor.items() if name != "total") + f"; total {floor['total']:.3f}"]
    if report.targets:
        lines.append("targets: " + "; ".join(
            f"{name} {t['value']:.3g} (target {'>=' if name != 'p50_over_floor' else '<='} {t['target']:g}: "
            f"{'met' if t['met'] else 'NOT met'})" for name, t in report.targets.items()))
    lines.append("latency = header stamp (set when published) -> latent received by this process; "
                 "the echo row is the same path with no work done")
    return "\n".join(lines)


# -- entry points -----------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Options of the node benchmark (`--model` and `--json` are shared with `vae-ros bench models`)."""
    parser.add_argument("--duration", type=float, default=5.0, metavar="S",
                        help="node benchmark: seconds per publishing mode (default 5)")
    parser.add_argument("--rate", type=float, default=30.0, metavar="HZ",
                        help="node benchmark: the paced publishing rate (default 30)")
    parser.add_argument("--node-backend", default="auto", metavar="NAME",
                        help="node benchmark: encoder_node's backend (default auto: ONNX Runtime, exported if needed)")
    parser.add_argument("--publisher-qos", default="reliable", choices=("reliable", "best_effort"),
                        help="node benchmark: the image publisher's reliability (default reliable, which the "
                        "naive node's default QoS can receive)")
    parser.add_argument("--nodes", default="encoder_node,naive,echo", metavar="A,B",
                        help="node benchmark: which nodes to run (default encoder_node,naive,echo)")


def run_from_args(args: argparse.Namespace) -> int:
    """`vae-ros bench nodes`: run, print the table, optionally save JSON."""
    report = run_nodes_bench(
        model=getattr(args, "model", "") or "",
        backend=getattr(args, "node_backend", "auto"),
        duration=getattr(args, "duration", 5.0),
        rate=getattr(args, "rate", 30.0),
        publisher_qos=getattr(args, "publisher_qos", "reliable"),
        nodes=[n.strip() for n in getattr(args, "nodes", "encoder_node,naive,echo").split(",") if n.strip()],
        threads=getattr(args, "threads", None) or None,
    )
    print(format_table(report))
    if getattr(args, "json", None):
        save_report_json(report, args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m vae_ros.apps.benchmarks.nodes` / bench/nodes.py; `--role` runs one of its helper processes."""
    from vae_ros.core.errors import VaeRosError

    parser = argparse.ArgumentParser(prog="bench/nodes.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", metavar="DIR", help="model directory (default: the packaged image model)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also save the figures as JSON")
    add_arguments(parser)
    parser.add_argument("--role", default="bench", choices=("bench", "publisher", "naive", "echo"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--log", default="", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=640, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, default=480, help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=150, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--modes", default="both", choices=("both", "rate", "flat"), help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.role == "publisher":
            return _publisher_main(args)
        if args.role == "naive":
            return _naive_main(args.model)
        if args.role == "echo":
            return _echo_main()
        return run_from_args(args)
    except VaeRosError as err:
        print(f"bench nodes: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
