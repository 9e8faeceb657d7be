"""Trajectories for the latent world model from rosbag2 recordings (ROS-free: rosbags, never rclpy).

A `Trajectory` is what one bag holds for dynamics learning: latents z_t at their sensor stamps, the
velocity command in force over each interval [t_i, t_{i+1}) and, where the bag has odometry, the pose at
each latent. Two sources:

- a bag of stamped latents (`vae/latent_stamped`, sensor_msgs/Image 32FC1, as encoder_node publishes and
  `ros2 bag record` / `vae-ros record` capture) and `cmd_vel`;
- a raw sensor bag plus a VAE model directory: the frames are encoded here, through the package's
  preprocessing (vae_ros.conversions.msg_to_model_input) and an inference backend.

Command alignment: geometry_msgs/Twist has no header, so a command is known only by its bag receive time.
It holds from that time until the next command (or until `cmd_timeout` without one, when the robot base
stops, as sim_node does). The action of interval i is the time-average of that piecewise-constant signal
over [t_i, t_{i+1}). When the bag's receive clock and the latents' header clock differ (a simulator's
/clock in the headers, wall time in the recorder), command times are moved onto the header clock by the
median offset between the latents' receive times and their stamps.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import DataError, InputError
from vae_ros.core.files import check_bag_path

LOG = logging.getLogger(__name__)

LATENT_MSGTYPE = "sensor_msgs/msg/Image"
TWIST_MSGTYPES = ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped")
ODOM_MSGTYPE = "nav_msgs/msg/Odometry"
CLOCK_OFFSET_LIMIT_S = 1.0  # receive-minus-header offsets beyond this mean the two clocks differ
DEFAULT_CMD_TIMEOUT_S = 0.5  # sim_node's cmd_timeout: the base stops this long after the last command
ENCODE_BATCH = 256
# Far beyond any ground robot's velocity (m/s, rad/s) or any VAE's latent mean: values past these are garbage in
# the recording, and a single 1e30 once swamped the normalisation and broke the linear fit (LinAlgError).
MAX_COMMAND = 100.0
MAX_LATENT = 1e3


@dataclass
class Trajectory:
    """One recording: N latents (sensor stamps, seconds), the N-1 interval actions, poses where known."""

    name: str
    t: np.ndarray  # (N,) float64 seconds on the sensor (header) clock, strictly increasing
    z: np.ndarray  # (N, D) float32 latent means
    actions: np.ndarray  # (N-1, 2) float32 (v m/s, w rad/s) in force over [t_i, t_{i+1})
    poses: np.ndarray | None = None  # (N, 3) float64 (x, y, yaw) from odometry at t_i

    def __len__(self) -> int:
        return int(self.t.size)

    @property
    def latent_dim(self) -> int:
        return int(self.z.shape[1])

    def median_dt(self) -> float:
        return float(np.median(np.diff(self.t))) if self.t.size > 1 else math.nan


def _stamp_s(header: Any) -> float:
    return int(header.stamp.sec) + int(header.stamp.nanosec) * 1e-9


@dataclass
class _Topics:
    latent: str | None
    cmd: str | None
    odom: str | None


def _resolve(topics: dict[str, str | None], name: str | None, msgtypes: tuple[str, ...], what: str, path: Path,
             required: bool) -> str | None:
    """The bag's topic for `name` (with or without the leading slash), checked against `msgtypes`."""
    if not name:
        return None
    wanted = name if name.startswith("/") else "/" + name
    matches = [t for t in topics if t in (name, wanted)]
    if not matches:
        if not required:
            return None
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
        raise DataError(f"bag {path} has no {what} topic {name!r}; its topics are: {listing}")
    topic = matches[0]
    if topics[topic] is None or topics[topic] not in msgtypes:
        raise DataError(f"topic {topic} in {path} holds {topics[topic]}, expected {' or '.join(msgtypes)} "
                        f"for the {what}")
    return topic


@dataclass
class _Raw:
    """Messages of one bag, read in one pass: (receive s, message) per topic."""

    latent: list[tuple[float, Any]]
    cmd: list[tuple[float, Any]]
    odom: list[tuple[float, Any]]
    latent_topic: str = ""
    cmd_topic: str = ""


def _read_bag(path: Path, latent_topic: str, latent_types: tuple[str, ...], cmd_topic: str,
              odom_topic: str | None) -> _Raw:
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.rosbag2 import ReaderError
    from rosbags.typesys import Stores, get_typestore

    if not path.exists():
        raise DataError(f"bag {path} does not exist")
    check_bag_path(path)
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.LATEST))
        reader.open()
    except (AnyReaderError, ReaderError, OSError, ValueError, KeyError) as err:
        raise DataError(f"cannot read bag {path}: {err}") from err
    raw = _Raw([], [], [])
    try:
        topics = {name: info.msgtype for name, info in reader.topics.items()}
        found = _Topics(
            latent=_resolve(topics, latent_topic, latent_types, "latent/sensor", path, True),
            cmd=_resolve(topics, cmd_topic, TWIST_MSGTYPES, "command", path, True),
            odom=_resolve(topics, odom_topic, (ODOM_MSGTYPE,), "odometry", path, False),
        )
        raw.latent_topic, raw.cmd_topic = str(found.latent), str(found.cmd)
        wanted = {found.latent: raw.latent, found.cmd: raw.cmd}
        if found.odom:
            wanted[found.odom] = raw.odom
        connections = [c for c in reader.connections if c.topic in wanted]
        skipped = 0
        for connection, stamp_ns, data in reader.messages(connections=connections):
            try:
                msg = reader.deserialize(data, connection.msgtype)
            except AnyReaderError:
                skipped += 1
                continue
            wanted[connection.topic].append((stamp_ns * 1e-9, msg))
        if skipped:
            LOG.warning("%s: skipped %d messages with corrupt CDR", path, skipped)
    finally:
        reader.close()
    if len(raw.latent) < 2:
        raise DataError(f"bag {path} holds {len(raw.latent)} readable messages on {latent_topic}; need at least 2")
    if not raw.cmd:
        raise DataError(f"bag {path} holds no readable command on {cmd_topic}")
    return raw


def command_signal(receive_t: np.ndarray, commands: np.ndarray,
                   timeout: float = DEFAULT_CMD_TIMEOUT_S) -> tuple[np.ndarray, np.ndarray]:
    """Commands as a piecewise-constant signal: (K,) change times and (K, 2) values from each time on.

    Zero before the first command and `timeout` seconds after any command not followed by another.
    """
    order = np.argsort(receive_t, kind="stable")
    times = np.asarray(receive_t, dtype=np.float64)[order]
    values = np.asarray(commands, dtype=np.float64)[order]
    out_t: list[float] = []
    out_v: list[np.ndarray] = []
    for i, (time_i, value) in enumerate(zip(times, values, strict=True)):
        out_t.append(float(time_i))
        out_v.append(value)
        next_t = times[i + 1] if i + 1 < len(times) else math.inf
        if timeout > 0 and next_t - time_i > timeout:
            out_t.append(float(time_i + timeout))
            out_v.append(np.zeros(2))
    return np.asarray(out_t), np.asarray(out_v).reshape(-1, 2)


def interval_actions(latent_t: np.ndarray, change_t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(N-1, 2) time-average of the command signal over each [t_i, t_{i+1}) (exact, vectorised)."""
    latent_t = np.asarray(latent_t, dtype=np.float64)
    # Integral F(t) of the step signal: zero before change_t[0], values[k] on [change_t[k], change_t[k+1]).
    seg = np.diff(change_t)  # (K-1,)
    cum = np.concatenate([np.zeros((1, 2)), np.cumsum(values[:-1] * seg[:, None], axis=0)])  # (K, 2) F(change_t)

    def integral(t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(change_t, t, side="right") - 1  # last change at or before t
        out = np.zeros((t.size, 2))
        inside = k >= 0
        kk = k[inside]
        out[inside] = cum[kk] + values[kk] * (t[inside] - change_t[kk])[:, None]
        return out

    f = integral(latent_t)  # (N, 2)
    dt = np.diff(latent_t)[:, None]
    return ((f[1:] - f[:-1]) / np.maximum(dt, 1e-9)).astype(np.float32)


def _twist_values(msgs: list[tuple[float, Any]]) -> tuple[np.ndarray, np.ndarray]:
    times = np.array([t for t, _ in msgs], dtype=np.float64)
    twists = [getattr(m, "twist", m) for _, m in msgs]  # TwistStamped carries .twist
    values = np.array([[float(tw.linear.x), float(tw.angular.z)] for tw in twists], dtype=np.float64)
    return times, values


def _poses_at(odom: list[tuple[float, Any]], t: np.ndarray) -> np.ndarray | None:
    """(N, 3) odometry pose at each time: nearest odometry stamp within 0.06 s, else None for the bag."""
    if not odom:
        return None
    stamps = np.array([_stamp_s(m.header) for _, m in odom])
    order = np.argsort(stamps)
    stamps = stamps[order]
    from vae_ros.core.conversions.common import planar_pose

    poses = np.array([planar_pose(m.pose.pose) for _, m in (odom[i] for i in order)])  # (N, 3)
    idx = np.clip(np.searchsorted(stamps, t), 1, len(stamps) - 1) if len(stamps) > 1 else np.zeros(t.size, int)
    if len(stamps) > 1:
        left = idx - 1
        idx = np.where(np.abs(stamps[left] - t) <= np.abs(stamps[idx] - t), left, idx)
    if np.max(np.abs(stamps[idx] - t)) > 0.06:
        LOG.warning("odometry stamps do not match the latents' (up to %.2f s apart): no pose evaluation",
                    float(np.max(np.abs(stamps[idx] - t))))
        return None
    return poses[idx]


def _usable_commands(name: str, raw: _Raw) -> tuple[np.ndarray, np.ndarray]:
    """(receive times, (v, w)) of the commands a robot could have executed: NaN or infinite ones (a base
    ignores them, as sim_node does) and absurd ones (beyond MAX_COMMAND) are dropped, counted and said."""
    cmd_t, cmd_v = _twist_values(raw.cmd)
    non_finite = ~np.isfinite(cmd_v).all(axis=1)
    absurd = ~non_finite & (np.abs(np.nan_to_num(cmd_v)) > MAX_COMMAND).any(axis=1)
    bad = non_finite | absurd
    if bad.any():
        what = f"{int(non_finite.sum())} NaN or infinite, {int(absurd.sum())} beyond +-{MAX_COMMAND:g} m/s or rad/s"
        if bad.all():
            raise DataError(f"{name}: none of the {bad.size} commands on {raw.cmd_topic} is usable ({what})")
        LOG.warning("%s: dropped %d of %d commands on %s (%s)", name, int(bad.sum()), bad.size, raw.cmd_topic, what)
    return cmd_t[~bad], cmd_v[~bad]


def _build(name: str, stamps: np.ndarray, receive: np.ndarray, z: np.ndarray, raw: _Raw,
           cmd_timeout: float) -> Trajectory:
    absurd = ~(np.abs(z) <= MAX_LATENT).all(axis=1)  # NaN too
    if absurd.any():
        LOG.warning("%s: dropped %d of %d latents from %s with values beyond +-%g (no VAE produces them)", name,
                    int(absurd.sum()), absurd.size, raw.latent_topic, MAX_LATENT)
        stamps, receive, z = stamps[~absurd], receive[~absurd], z[~absurd]
    order = np.argsort(stamps, kind="stable")
    stamps, receive, z = stamps[order], receive[order], z[order]
    keep = np.concatenate([[True], np.diff(stamps) > 1e-6])  # drop duplicate stamps
    stamps, receive, z = stamps[keep], receive[keep], z[keep]
    if stamps.size < 2:
        raise DataError(f"{name}: fewer than two latents with distinct stamps")
    cmd_t, cmd_v = _usable_commands(name, raw)
    offset = float(np.median(receive - stamps))
    if abs(offset) > CLOCK_OFFSET_LIMIT_S:
        LOG.info("%s: header stamps and receive times differ by %.1f s (sim time vs wall time): command times "
                 "moved onto the header clock", name, offset)
        cmd_t = cmd_t - offset
    change_t, values = command_signal(cmd_t, cmd_v, cmd_timeout)
    actions = interval_actions(stamps, change_t, values)
    return Trajectory(name=name, t=stamps, z=z.astype(np.float32), actions=actions,
                      poses=_poses_at(raw.odom, stamps))


def read_latent_bag(path: str | Path, latent_topic: str = "vae/latent_stamped", cmd_topic: str = "cmd_vel",
                    odom_topic: str | None = "odom", expected_dim: int | None = None,
                    cmd_timeout: float = DEFAULT_CMD_TIMEOUT_S) -> Trajectory:
    """A Trajectory from a bag of stamped latents and commands (odometry optional)."""
    from vae_ros.core.conversions.latent import stamped_msg_to_latent

    path = Path(path)
    raw = _read_bag(path, latent_topic, (LATENT_MSGTYPE,), cmd_topic, odom_topic)
    stamps, receive, rows = [], [], []
    rejected = 0
    first_error = ""
    for receive_t, msg in raw.latent:
        try:
            mean, _, header = stamped_msg_to_latent(msg, expected_dim=expected_dim)
        except InputError as err:
            rejected += 1
            first_error = first_error or str(err)
            continue
        stamps.append(_stamp_s(header))
        receive.append(receive_t)
        rows.append(mean)
    if rejected:
        LOG.warning("%s: skipped %d latents that do not fit (first: %s)", path, rejected, first_error)
    if len(rows) < 2:
        raise DataError(f"bag {path}: fewer than two usable latents on {latent_topic}"
                        + (f" ({first_error})" if first_error else ""))
    dims = {r.size for r in rows}
    if len(dims) != 1:
        raise DataError(f"bag {path}: latents on {latent_topic} have different sizes {sorted(dims)}")
    return _build(str(path), np.array(stamps), np.array(receive), np.stack(rows), raw, cmd_timeout)


def read_sensor_bag(path: str | Path, sensor_topic: str, encode: Callable[[np.ndarray], np.ndarray],
                    model_config: Any, cmd_topic: str = "cmd_vel", odom_topic: str | None = "odom",
                    cmd_timeout: float = DEFAULT_CMD_TIMEOUT_S,
                    progress: Callable[[int], None] | None = None) -> Trajectory:
    """A Trajectory from a raw sensor bag: each frame preprocessed like live input and encoded.

    encode: (B, *input_shape) float32 -> (B, D) latent means (e.g. an InferenceBackend's encode()[0]).
    """
    from vae_ros.core.conversions.model_input import msg_to_model_input
    from vae_ros.core.data import MSGTYPE_MODALITY

    path = Path(path)
    types = tuple(t for t, m in MSGTYPE_MODALITY.items() if m == model_config.modality)
    raw = _read_bag(path, sensor_topic, types, cmd_topic, odom_topic)
    stamps, receive, means = [], [], []
    batch: list[np.ndarray] = []
    skipped = 0

    def flush() -> None:
        if batch:
            means.append(np.asarray(encode(np.stack(batch)), dtype=np.float32))  # (B, D)
            if progress is not None:
                progress(len(batch))
            batch.clear()

    for receive_t, msg in raw.latent:
        try:
            sample = msg_to_model_input(msg, model_config)
        except InputError:
            skipped += 1
            continue
        stamps.append(_stamp_s(msg.header))
        receive.append(receive_t)
        batch.append(sample)
        if len(batch) >= ENCODE_BATCH:
            flush()
    flush()
    if skipped:
        LOG.warning("%s: skipped %d frames that do not decode", path, skipped)
    if len(stamps) < 2:
        raise DataError(f"bag {path}: fewer than two frames on {sensor_topic} decode for this model")
    return _build(str(path), np.array(stamps), np.array(receive), np.concatenate(means), raw, cmd_timeout)


def bag_message_count(path: str | Path, topic: str) -> int:
    """Messages on `topic` in a bag (0 when it is not there), for progress bars."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    wanted = topic if topic.startswith("/") else "/" + topic
    try:
        with AnyReader([Path(path)], default_typestore=get_typestore(Stores.LATEST)) as reader:
            return sum(c.msgcount for c in reader.connections if c.topic in (topic, wanted))
    except Exception:  # noqa: BLE001 - only a progress-bar total; the real read reports errors
        return 0


def windows(traj: Trajectory, horizon: int) -> Iterator[int]:
    """Start indices i where steps i..i+horizon exist (for multi-step evaluation)."""
    yield from range(max(0, len(traj) - horizon))
