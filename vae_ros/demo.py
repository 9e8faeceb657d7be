"""`vae-ros demo`: the whole perception loop over real ROS 2 with the packaged models.

Starts sim_node, an image encoder (with anomaly score), a LaserScan encoder and a decoder as separate
processes, drives the simulated robot in closed loop from its LiDAR (the exploration policy), listens to
every output topic, then reports what arrived and how good it is, and writes PNG plots.

The latent-servoing and world-model nodes will take over the driving once they exist; until then this is
the most complete end-to-end run the package has.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError, ModelFileError

SCAN_LATENT_TOPIC = "vae/scan_latent"


@dataclass
class DemoConfig:
    duration: float = 30.0
    out: Path = Path("demo_out")
    seed: int = 0
    rate: float = 10.0
    backend: str = "auto"
    startup_timeout: float = 90.0
    progress: bool = True


@dataclass
class _Recording:
    """Everything the demo node hears, guarded by one lock (callbacks run on the executor thread)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    camera_count: int = 0
    camera_arrival: float | None = None
    # Latent arrival minus the arrival of the newest camera frame, both seen by the demo process: the
    # encoder's end-to-end latency on one clock (the sim stamps images with sim time).
    camera_to_latent_s: list[float] = field(default_factory=list)
    latest_camera: np.ndarray | None = None
    frames: list[tuple[float, np.ndarray, tuple[float, float, float]]] = field(default_factory=list)
    latents: list[tuple[float, np.ndarray]] = field(default_factory=list)
    scan_latents: list[tuple[float, np.ndarray]] = field(default_factory=list)
    recon_pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    recon_count: int = 0
    anomaly: list[tuple[float, float]] = field(default_factory=list)
    poses: list[tuple[float, float, float, float]] = field(default_factory=list)
    diagnostics: dict[str, dict[str, str]] = field(default_factory=dict)
    commands: int = 0
    frame_latents: np.ndarray | None = None  # (N, D) offline latents of `frames`, set by the analysis


def _yaw(q: Any) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def _start(name: str, module: str, args: list[str], log_dir: Path) -> subprocess.Popen[bytes]:
    log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process in _stop
    proc = subprocess.Popen([sys.executable, "-m", module, "--ros-args", "-r", f"__node:={name}", *args],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    proc._vae_ros_log = log  # type: ignore[attr-defined]
    return proc


def _stop(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
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
        proc._vae_ros_log.close()  # type: ignore[attr-defined]


def _check_models() -> dict[str, Path]:
    from vae_ros.core.model_dir import resolve_model_dir

    models = {}
    for modality in ("image", "scan"):
        try:
            models[modality] = resolve_model_dir("", modality)
        except ModelFileError as err:
            raise ModelFileError(f"{err} (rebuild the packaged models with `make models`)") from err
    return models


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run the loop, analyse, plot; returns the summary (also written to OUT/summary.json)."""
    if config.duration <= 0 or config.rate <= 0:
        raise ConfigError("--duration and --rate must be positive")
    models = _check_models()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    log_dir = out / "logs"
    log_dir.mkdir(exist_ok=True)

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from vae_ros.node_utils import use_large_data_profile

    use_large_data_profile()

    # The encoders and the decoder follow the simulator's /clock, as perception.launch.py runs them.
    backend = ["-p", f"backend:={config.backend}", "-p", "use_sim_time:=true"]
    procs = [
        _start("sim_node", "vae_ros.sim_node",
               ["-p", f"rate:={float(config.rate)}", "-p", f"seed:={config.seed}", "-p", "lidar:=scan"], log_dir),
        _start("encoder_node", "vae_ros.encoder_node",
               ["-p", "modality:=image", "-p", "publish_anomaly_score:=true", *backend], log_dir),
        _start("scan_encoder_node", "vae_ros.encoder_node",
               ["-p", "modality:=scan", "-r", f"vae/latent:={SCAN_LATENT_TOPIC}",
                "-r", f"vae/latent_stamped:={SCAN_LATENT_TOPIC}_stamped", *backend], log_dir),
        _start("decoder_node", "vae_ros.decoder_node", ["-p", "modality:=image", *backend], log_dir),
    ]
    try:
        rec, wall = _listen(config, procs)
    finally:
        _stop(procs)
    summary = _analyse(config, models, rec, wall)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _plot(out, rec, summary)
    return summary


def _listen(config: DemoConfig, procs: list[subprocess.Popen[bytes]]) -> tuple[_Recording, float]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, LaserScan
    from std_msgs.msg import Float32, Float32MultiArray

    from vae_ros.conversions import image_msg_to_array, msg_to_latent
    from vae_ros.qos import LATENT_QOS, SENSOR_QOS
    from vae_ros.sim.policy import ExplorationPolicy

    rec = _Recording()
    policy = ExplorationPolicy(seed=config.seed)
    state = {"policy": policy.initial_state(), "pose": (0.0, 0.0, 0.0), "active": False}
    frame_every = max(1, int(round(config.rate / 2)))  # keep ~2 frames per second for the analysis

    rclpy.init()
    node = rclpy.create_node("vae_ros_demo")
    cmd_pub = node.create_publisher(Twist, "cmd_vel", LATENT_QOS)

    def on_scan(msg: LaserScan) -> None:
        if not state["active"]:
            return
        ranges = np.asarray(msg.ranges, dtype=np.float64)
        angles = msg.angle_min + msg.angle_increment * np.arange(ranges.size)
        state["policy"], (linear, angular) = policy.step(state["policy"], ranges, angles, 1.0 / config.rate)
        twist = Twist()
        twist.linear.x, twist.angular.z = float(linear), float(angular)
        cmd_pub.publish(twist)
        rec.commands += 1

    def on_odom(msg: Odometry) -> None:
        p = msg.pose.pose
        state["pose"] = (p.position.x, p.position.y, _yaw(p.orientation))
        if state["active"]:
            with rec.lock:
                rec.poses.append((time.monotonic(), *state["pose"]))

    def on_camera(msg: Image) -> None:
        frame = image_msg_to_array(msg)
        with rec.lock:
            rec.latest_camera = frame
            rec.camera_arrival = time.monotonic()
            if not state["active"]:
                return
            rec.camera_count += 1
            if rec.camera_count % frame_every == 0:
                rec.frames.append((time.monotonic(), frame, state["pose"]))

    def on_latent(msg: Float32MultiArray) -> None:
        mean, _ = msg_to_latent(msg)
        with rec.lock:
            now = time.monotonic()
            if state["active"]:
                rec.latents.append((now, mean))
                if rec.camera_arrival is not None:
                    rec.camera_to_latent_s.append(now - rec.camera_arrival)
            else:
                state["first_latent"] = True

    def on_scan_latent(msg: Float32MultiArray) -> None:
        mean, _ = msg_to_latent(msg)
        with rec.lock:
            if state["active"]:
                rec.scan_latents.append((time.monotonic(), mean))
            else:
                state["first_scan_latent"] = True

    def on_reconstruction(msg: Image) -> None:
        recon = image_msg_to_array(msg)
        with rec.lock:
            if not state["active"]:
                state["first_recon"] = True
                return
            rec.recon_count += 1
            if rec.latest_camera is not None and rec.recon_count % (5 * frame_every) == 0:
                rec.recon_pairs.append((rec.latest_camera, recon))

    def on_anomaly(msg: Float32) -> None:
        if state["active"]:
            with rec.lock:
                rec.anomaly.append((time.monotonic(), float(msg.data)))

    def on_diagnostics(msg: DiagnosticArray) -> None:
        with rec.lock:
            for status in msg.status:
                rec.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    node.create_subscription(LaserScan, "scan", on_scan, SENSOR_QOS)
    node.create_subscription(Odometry, "odom", on_odom, 10)
    node.create_subscription(Image, "camera/image_raw", on_camera, SENSOR_QOS)
    node.create_subscription(Float32MultiArray, "vae/latent", on_latent, LATENT_QOS)
    node.create_subscription(Float32MultiArray, SCAN_LATENT_TOPIC, on_scan_latent, LATENT_QOS)
    node.create_subscription(Image, "vae/reconstruction", on_reconstruction, LATENT_QOS)
    node.create_subscription(Float32, "vae/anomaly_score", on_anomaly, LATENT_QOS)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    try:
        deadline = time.monotonic() + config.startup_timeout
        ready = ("first_latent", "first_scan_latent", "first_recon")
        print("demo: starting sim_node, encoder_node (image), scan_encoder_node, decoder_node ...", flush=True)
        while not all(k in state for k in ready):
            executor.spin_once(timeout_sec=0.1)
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                raise ConfigError(f"a node exited during start-up (exit {dead[0].returncode}); see the logs "
                                  f"in {Path(config.out) / 'logs'}")
            if time.monotonic() > deadline:
                missing = [k.removeprefix("first_") for k in ready if k not in state]
                raise ConfigError(f"no {', '.join(missing)} after {config.startup_timeout:.0f} s; see the logs "
                                  f"in {Path(config.out) / 'logs'}")
        state["active"] = True
        start = time.monotonic()
        end = start + config.duration
        from tqdm import tqdm

        with tqdm(total=round(config.duration), unit="s", desc="demo", disable=not config.progress) as bar:
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
                elapsed = min(int(time.monotonic() - start), bar.total)
                if elapsed > bar.n:  # one refresh a second, not one per message
                    bar.set_postfix(latents=len(rec.latents), refresh=False)
                    bar.update(elapsed - bar.n)
        wall = time.monotonic() - start
        state["active"] = False
        for _ in range(3):  # fail safe: leave the robot stopped
            cmd_pub.publish(Twist())
            executor.spin_once(timeout_sec=0.05)
        # The last /diagnostics report of every node, then done.
        settle = time.monotonic() + 1.2
        while time.monotonic() < settle:
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return rec, wall


def _diag_value(diag: dict[str, dict[str, str]], node: str, key: str) -> float | None:
    for name, values in diag.items():
        if name.split(":")[0].strip().rsplit("/", 1)[-1] == node and key in values:
            try:
                return float(values[key])
            except ValueError:
                return None
    return None


def _analyse(config: DemoConfig, models: dict[str, Path], rec: _Recording, wall: float) -> dict[str, Any]:
    from vae_ros.core.backends import create_backend
    from vae_ros.core.metrics import psnr
    from vae_ros.core.preprocess import preprocess_image

    summary: dict[str, Any] = {
        "duration_s": round(wall, 2),
        "camera_frames": rec.camera_count,
        "image_latents": len(rec.latents),
        "scan_latents": len(rec.scan_latents),
        "reconstructions": rec.recon_count,
        "commands": rec.commands,
        "latent_fraction": round(len(rec.latents) / rec.camera_count, 3) if rec.camera_count else 0.0,
        "latent_rate_hz": round(len(rec.latents) / wall, 2) if wall > 0 else 0.0,
        "models": {k: str(v) for k, v in models.items()},
    }
    if rec.poses:
        xy = np.array([p[1:3] for p in rec.poses])
        summary["distance_m"] = round(float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum()), 2)
    if rec.anomaly:
        scores = np.array([a for _, a in rec.anomaly])
        summary["anomaly_score_median"] = round(float(np.median(scores)), 5)
        summary["anomaly_score_p95"] = round(float(np.percentile(scores, 95)), 5)
    if rec.camera_to_latent_s:
        latency_ms = 1e3 * np.array(rec.camera_to_latent_s)
        summary["camera_to_latent_p50_ms"] = round(float(np.median(latency_ms)), 2)
        summary["camera_to_latent_p99_ms"] = round(float(np.percentile(latency_ms, 99)), 2)
    value = _diag_value(rec.diagnostics, "encoder_node", "processing_time_p50_ms")
    if value is not None:
        summary["encoder_processing_p50_ms"] = value
    summary["diagnostics"] = rec.diagnostics

    if rec.frames:
        backend = create_backend(models["image"], config.backend)
        spec = backend.config.image_spec
        batch = np.stack([preprocess_image(frame, spec) for _, frame, _ in rec.frames])
        mean, _ = backend.encode(batch)
        recon = backend.decode(mean)
        summary["backend"] = backend.name
        summary["reconstruction_psnr_db"] = round(float(psnr(recon, batch)), 2)
        poses = np.array([pose for _, _, pose in rec.frames])
        if len(poses) >= 4:
            summary["latent_pose_correlation"] = round(_latent_pose_correlation(mean, poses), 3)
        rec.frame_latents = mean
    return summary


def _latent_pose_correlation(latents: np.ndarray, poses: np.ndarray) -> float:
    """Spearman correlation between pairwise latent distances and pose distances (metres + 0.5 m/rad).

    Positive and large means nearby poses have nearby latents: what latent servoing relies on.
    """
    i, j = np.triu_indices(len(latents), k=1)
    d_latent = np.linalg.norm(latents[i] - latents[j], axis=1)
    dyaw = np.abs((poses[i, 2] - poses[j, 2] + np.pi) % (2 * np.pi) - np.pi)
    d_pose = np.linalg.norm(poses[i, :2] - poses[j, :2], axis=1) + 0.5 * dyaw
    rank_a = np.argsort(np.argsort(d_latent)).astype(np.float64)
    rank_b = np.argsort(np.argsort(d_pose)).astype(np.float64)
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def _plot(out: Path, rec: _Recording, summary: dict[str, Any]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Trajectory coloured by the first principal component of the latents seen on the way.
    fig = Figure(figsize=(11, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    if rec.poses:
        xy = np.array([p[1:3] for p in rec.poses])
        ax.plot(xy[:, 0], xy[:, 1], color="0.7", lw=1)
    latents = rec.frame_latents
    if latents is not None and len(latents) > 1:
        centred = latents - latents.mean(axis=0)
        pc1 = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
        poses = np.array([pose for _, _, pose in rec.frames])
        sc = ax.scatter(poses[:, 0], poses[:, 1], c=pc1, cmap="viridis", s=18, zorder=3)
        fig.colorbar(sc, ax=ax, label="latent PC1")
    ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xlabel="x [m]", ylabel="y [m]",
           title=f"robot path ({summary.get('distance_m', 0)} m)")
    ax2 = fig.add_subplot(1, 2, 2)
    if rec.latents:
        t0 = rec.latents[0][0]
        t = np.array([ts - t0 for ts, _ in rec.latents])
        z = np.stack([m for _, m in rec.latents])
        for k in range(min(6, z.shape[1])):
            ax2.plot(t, z[:, k], lw=1, label=f"z{k}")
        ax2.legend(loc="upper right", fontsize=7, ncol=3)
    if rec.anomaly:
        ax3 = ax2.twinx()
        t0 = rec.latents[0][0] if rec.latents else rec.anomaly[0][0]
        ax3.plot([ts - t0 for ts, _ in rec.anomaly], [a for _, a in rec.anomaly], color="k", lw=0.8, alpha=0.5)
        ax3.set_ylabel("anomaly score")
    ax2.set(xlabel="time [s]", ylabel="latent mean", title="image latents on vae/latent")
    fig.tight_layout()
    fig.savefig(out / "demo_trajectory.png", dpi=110)

    if rec.recon_pairs:
        pairs = rec.recon_pairs[:8]
        fig = Figure(figsize=(2 * len(pairs), 4.2))
        FigureCanvasAgg(fig)
        for k, (camera, recon) in enumerate(pairs):
            for row, (img, title) in enumerate(((camera, "camera"), (recon, "vae/reconstruction"))):
                ax = fig.add_subplot(2, len(pairs), row * len(pairs) + k + 1)
                ax.imshow(img if img.ndim == 3 else img, cmap=None if img.ndim == 3 else "gray")
                ax.set_axis_off()
                if k == 0:
                    ax.set_title(title, fontsize=8, loc="left")
        fig.tight_layout()
        fig.savefig(out / "demo_reconstructions.png", dpi=110)


def format_summary(summary: dict[str, Any]) -> str:
    rows = [
        ("run time", f"{summary['duration_s']} s"),
        ("camera frames received", summary["camera_frames"]),
        ("image latents (fraction of frames)", f"{summary['image_latents']} ({summary['latent_fraction']:.1%})"),
        ("image latent rate", f"{summary['latent_rate_hz']} Hz"),
        ("scan latents", summary["scan_latents"]),
        ("reconstructions", summary["reconstructions"]),
        ("velocity commands (closed loop on /scan)", summary["commands"]),
        ("distance driven", f"{summary.get('distance_m', 0)} m"),
    ]
    for key, label, unit in (
        ("camera_to_latent_p50_ms", "camera frame -> latent latency p50", " ms"),
        ("camera_to_latent_p99_ms", "camera frame -> latent latency p99", " ms"),
        ("encoder_processing_p50_ms", "encoder processing p50", " ms"),
        ("reconstruction_psnr_db", "reconstruction PSNR (held frames)", " dB"),
        ("latent_pose_correlation", "latent vs pose distance (Spearman)", ""),
        ("anomaly_score_median", "anomaly score median", ""),
        ("backend", "inference backend", ""),
    ):
        if key in summary:
            rows.append((label, f"{summary[key]}{unit}"))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)
