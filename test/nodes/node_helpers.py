"""Shared helpers of the node tests: small seeded model directories, node processes. What every ROS test shares
(Probe, send_until, header, stop_processes, the diagnostics reader) lives in test/probe.py, re-exported here."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ros_env
import torch
from probe import (  # noqa: F401 - the node tests take them from here
    Diagnostic,
    Probe,
    header,
    recording_probe,
    send_until,
    split_peak_rss,
    stamp_ns,
    stop_process,
    stop_processes,
    wait_for,
    with_peak_rss,
)

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig, PointCloudSpec, ScanSpec
from vae_ros.core.model_dir import save_model_dir
from vae_ros.core.models import build_model

SMALL = [8, 16]


def make_model_dir(path: Path, modality: str = "image", latent_dim: int = 8, seed: int = 0, **spec: Any) -> Path:
    """An untrained, seeded model directory (fine for plumbing: the tests compare against the core)."""
    arch = ArchSpec(latent_dim=latent_dim, channels=list(SMALL))
    if modality == "image":
        config = ModelConfig("image", arch=arch, image=ImageSpec(**{"height": 32, "width": 32, **spec}))
    elif modality == "scan":
        config = ModelConfig("scan", arch=arch, scan=ScanSpec(**{"beams": 64, **spec}))
    else:
        config = ModelConfig("pointcloud", arch=arch, pointcloud=PointCloudSpec(**{"rows": 8, "cols": 64, **spec}))
    torch.manual_seed(seed)
    model = build_model(config)
    return save_model_dir(path, config, model)


def random_dynamics(path: Path, latent_dim: int, seed: int = 0, hidden: Sequence[int] = (16,), dt: float = 0.1) -> Any:
    """A seeded, untrained two-member dynamics ensemble whose predictions depend on the command (fine for
    plumbing), saved as a dynamics directory at `path`; returns the LatentDynamics. Wide `hidden` layers make
    planning slow on purpose."""
    from vae_ros.control.runtime.dynamics import DynamicsConfig, LatentDynamics, save_dynamics_dir

    rng = np.random.default_rng(seed)
    d, members = latent_dim, 2
    config = DynamicsConfig(latent_dim=d, members=members, hidden=list(hidden), dt=dt, z_mean=[0.0] * d,
                            z_std=[1.0] * d, a_scale=[0.3, 0.8], dz_mean=[0.0] * d, dz_std=[0.05] * d)
    sizes = [d + 2, *hidden, 2 * d]
    weights = {"max_logvar": np.zeros(d, np.float32), "min_logvar": np.full(d, -8.0, np.float32)}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weights[f"layers.{i}.weight"] = rng.normal(0, 0.5 if i == 0 else 0.5 / np.sqrt(n_in / 16),
                                                   (members, n_in, n_out)).astype(np.float32)
        weights[f"layers.{i}.bias"] = np.zeros((members, n_out), np.float32)
    save_dynamics_dir(path, config, weights)
    return LatentDynamics(config, weights)


PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def node_env(**extra: str) -> dict[str, str]:
    """ros_env() without a Fast DDS profile variable (unless given): the nodes load their own."""
    env = {k: v for k, v in ros_env.ros_env().items() if k not in PROFILE_VARIABLES}
    env.update(extra)
    return env


def start_node(module: str, *ros_args: str, peak_rss: bool = False, **env: str) -> subprocess.Popen[str]:
    """`python -m vae_ros.ros.nodes.<module> --ros-args ...` in its own process, isolated DDS (test/ros_env.py).
    peak_rss: through test/peak_rss.py, whose last output line is the node's own peak memory (split_peak_rss)."""
    cmd = [sys.executable, "-m", f"vae_ros.ros.nodes.{module}", "--ros-args", *ros_args]
    if peak_rss:
        cmd = with_peak_rss(cmd)
    return subprocess.Popen(cmd, env=node_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_node(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """SIGINT the node, wait (SIGKILL after `timeout` s), return its output."""
    return stop_process(proc, timeout=timeout)


def param_args(**params: Any) -> list[str]:
    out = []
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out += ["-p", f"{key}:={text}"]
    return out


def image_sender(probe: Probe, topic: str, msg: Any) -> Callable[[], None]:
    """A send() for send_until: publishes the Image `msg` on `topic` from the probe's node, stamped now each time."""
    from sensor_msgs.msg import Image

    publisher = probe.node.create_publisher(Image, topic, 10)

    def send() -> None:
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        publisher.publish(msg)

    return send


def closest_latent(probe: Probe, topic: str, expected: np.ndarray) -> float:
    """The smallest largest difference between the mean `expected` (D,) and the means of the latents
    (Float32MultiArray) recorded on `topic`; inf before any."""
    from vae_ros.core.conversions.latent import msg_to_latent

    return min((float(np.abs(msg_to_latent(latent)[0] - expected).max()) for latent in probe.messages(topic)),
               default=np.inf)


def send_each_until_counted(probe: Probe, publisher: Any, messages: list[Any], count: Callable[[], int],
                            attempts: int = 1, timeout: float = 10.0) -> int:
    """Publish `messages` one at a time, each until `count()` (e.g. a node's `rejected` in /diagnostics) goes up.

    One at a time, because a node that keeps only the newest message would drop (supersede) a pending one;
    a best-effort sample can also be lost on a busy machine, so one not counted is sent again, up to
    `attempts` times in all. Returns how many were re-sent (a re-sent one may have been counted twice).
    """
    resent = 0
    for index, msg in enumerate(messages):
        for _attempt in range(attempts):
            before = count()
            publisher.publish(msg)
            if probe.wait_for(lambda before=before: count() > before, timeout):
                break
            resent += 1
        else:
            raise AssertionError(f"message {index} of {len(messages)} was never counted (count {count()})")
    return resent


def scan_msg(scan_header: Any, wall_ahead: float | None = None, beams: int = 360) -> Any:
    """A LaserScan over a full turn (beam i at -pi + (i + 0.5) 2 pi / beams, as the simulator's): free (every
    beam +inf, no return), or a straight wall across the robot's way `wall_ahead` m in front of it."""
    import math

    import numpy as np
    from sensor_msgs.msg import LaserScan

    increment = 2.0 * math.pi / beams
    angles = -math.pi + increment * (np.arange(beams) + 0.5)
    ranges = np.full(beams, np.inf, np.float32)
    if wall_ahead is not None:
        ahead = np.abs(angles) < 1.3
        ranges[ahead] = wall_ahead / np.cos(angles[ahead])
    return LaserScan(header=scan_header, angle_min=float(angles[0]), angle_max=float(angles[-1]),
                     angle_increment=increment, range_min=0.05, range_max=10.0, ranges=ranges.tolist())


def fused_model_dir(root: Path) -> Path:
    """The packaged fused model (models/fused_default) when it is there; otherwise a stand-in under `root`: the
    packaged image model as the camera's expert and the control model as the LiDAR's (both 16-D; the camera's
    latent space is not the control one, which plumbing tests do not mind)."""
    import shutil

    from vae_ros.core.fused import FusedConfig, is_fused_model
    from vae_ros.resources import models_dir

    packaged = models_dir() / "fused_default"
    if is_fused_model(packaged):
        return packaged
    fused = root / "fused_standin"
    if not is_fused_model(fused):
        fused.mkdir(parents=True, exist_ok=True)
        shutil.copytree(models_dir() / "image_default", fused / "camera", dirs_exist_ok=True)
        shutil.copytree(models_dir() / "control_default", fused / "scan", dirs_exist_ok=True)
        shutil.copy2(models_dir() / "control_default" / "servo_head.safetensors", fused / "servo_head.safetensors")
        FusedConfig(("camera", "scan"), 16).save(fused)
    return fused
