"""What a teach run recorded: stamped latents and odometry read from a rosbag2 bag (rosbags, never rclpy).

`vae-ros teach` turns this into a route (vae_ros.control.runtime.route.teach_route). Stamps are the messages'
header stamps (the sensor's clock), not the bag's receive times: latents and odometry are paired in time, and
a recorder's receive time adds the transport's jitter to both. Topics may live in a namespace: when the exact
name is absent, exactly one topic ending in it is taken (`/robot1/vae/latent_stamped` for `vae/latent_stamped`).

Rows a robot could not use are dropped and counted (NaN or infinite latents or poses, malformed or undecodable
messages); latents of two widths on one topic (two models) are refused, as is a bag without latents or odometry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import DataError, InputError
from vae_ros.ros.interface import LATENT_STAMPED_TOPIC, ODOM_TOPIC

LOG = logging.getLogger(__name__)

LATENT_MSGTYPE = "sensor_msgs/msg/Image"
ODOM_MSGTYPE = "nav_msgs/msg/Odometry"
PROGRESS_PERIOD_S = 5.0  # a progress line this often while reading a large bag


@dataclass
class Recording:
    """One bag of a teach run: N latents and M odometry poses on the sensors' clock (header stamps)."""

    path: Path
    latent_topic: str
    odom_topic: str
    stamps_ns: np.ndarray  # (N,) int64
    latents: np.ndarray  # (N, D) float32 means
    logvars: np.ndarray | None  # (N, D) float32, when every message carried them
    odom_stamps_ns: np.ndarray  # (M,) int64
    odom_poses: np.ndarray  # (M, 3) float64 (x, y, yaw)
    nan_latents: int = 0  # latent rows with NaN or inf, dropped
    nan_poses: int = 0  # odometry poses with NaN or inf, dropped
    malformed: int = 0  # messages that are not a stamped latent / odometry, or do not decode

    @property
    def latent_dim(self) -> int:
        return int(self.latents.shape[1])


def resolve_topic(topics: dict[str, str], name: str, msgtype: str, what: str, path: Path) -> str:
    """The bag's topic for `name`: the exact name (with or without the leading slash), else the one topic that
    ends in it; checked against `msgtype`. DataError names the candidates when there are none or several."""
    bare = name.strip().strip("/")
    if not bare:
        raise DataError(f"the {what} topic name must not be empty")
    exact = [t for t in topics if t.strip("/") == bare]
    matches = exact or [t for t in topics if t.endswith("/" + bare)]
    if not matches:
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
        raise DataError(f"bag {path} has no {what} topic {name!r} (nor one ending in /{bare}); its topics are: "
                        f"{listing}")
    if len(matches) > 1:
        raise DataError(f"bag {path} has several {what} topics ending in /{bare}: {', '.join(sorted(matches))}; "
                        f"name one with --{what}-topic")
    topic = matches[0]
    if topics[topic] != msgtype:
        raise DataError(f"topic {topic} in {path} holds {topics[topic]}, expected {msgtype} for the {what}")
    return topic


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class _Rows:
    """What one pass over the bag collected, before the checks."""

    def __init__(self) -> None:
        self.latents: dict[int, list[tuple[int, np.ndarray, np.ndarray | None]]] = {}  # by width
        self.odom: list[tuple[int, tuple[float, float, float]]] = []
        self.malformed = 0

    def add_latent(self, msg: Any) -> None:
        from vae_ros.core.conversions.latent import stamped_msg_to_latent

        try:
            mean, logvar, header = stamped_msg_to_latent(msg, finite=False)
        except InputError:
            self.malformed += 1
            return
        self.latents.setdefault(int(mean.size), []).append((_stamp_ns(header), mean, logvar))

    def add_odom(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import planar_pose

        self.odom.append((_stamp_ns(msg.header), planar_pose(msg.pose.pose)))


def _each_message(reader: Any, connections: list[Any], path: Path,
                  progress: Callable[[int, int], None] | None) -> Any:
    """(topic, message) of the chosen connections; undecodable ones come as (topic, None). Calls
    progress(done, total) at most every PROGRESS_PERIOD_S."""
    total = sum(int(c.msgcount) for c in connections)
    last = time.monotonic()
    for done, (connection, _, data) in enumerate(reader.messages(connections=connections), start=1):
        try:
            msg = reader.deserialize(data, connection.msgtype)
        except Exception:  # noqa: BLE001 - a corrupt CDR blob: counted as malformed, the rest is still read
            msg = None
        yield connection.topic, msg
        if progress is not None and time.monotonic() - last >= PROGRESS_PERIOD_S:
            last = time.monotonic()
            progress(done, total)


def _log_progress(path: Path) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        LOG.info("%s: read %d of %d messages (%.0f%%)", path, done, total, 100.0 * done / max(1, total))

    return report


def read_recording(path: str | Path, latent_topic: str = LATENT_STAMPED_TOPIC, odom_topic: str = ODOM_TOPIC,
                   progress: Callable[[int, int], None] | None = None) -> Recording:
    """Latents and odometry of one bag (folder or .mcap/.db3 file); see the module docstring."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.rosbag2 import ReaderError

    from vae_ros.core.files import check_bag_path
    from vae_ros.ros.route_file import ros2_typestore

    path = Path(path)
    if not path.exists():
        raise DataError(f"bag {path} does not exist")
    check_bag_path(path)
    rows = _Rows()
    try:
        with AnyReader([path], default_typestore=ros2_typestore()) as reader:
            topics = {name: info.msgtype or "" for name, info in reader.topics.items()}
            latent = resolve_topic(topics, latent_topic, LATENT_MSGTYPE, "latent", path)
            odom = resolve_topic(topics, odom_topic, ODOM_MSGTYPE, "odom", path)
            connections = [c for c in reader.connections if c.topic in (latent, odom)]
            for topic, msg in _each_message(reader, connections, path, progress or _log_progress(path)):
                if msg is None:
                    rows.malformed += 1
                elif topic == latent:
                    rows.add_latent(msg)
                else:
                    rows.add_odom(msg)
    except (AnyReaderError, ReaderError, OSError, KeyError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot read bag {path}: {err}") from err
    return _recording(path, latent, odom, rows)


def _recording(path: Path, latent_topic: str, odom_topic: str, rows: _Rows) -> Recording:
    if len(rows.latents) > 1:
        widths = sorted(rows.latents)
        names = ", ".join(f"{w}-D" for w in widths[:-1]) + f" and {widths[-1]}-D"
        raise DataError(f"bag {path} holds latents of {'two' if len(widths) == 2 else 'several'} models on "
                        f"{latent_topic}: {names}; teach from one model's latents")
    latents = next(iter(rows.latents.values()), [])
    if not latents:
        raise DataError(f"bag {path} holds no usable latent on {latent_topic} "
                        f"({rows.malformed} malformed or undecodable messages)")
    if not rows.odom:
        raise DataError(f"bag {path} holds no odometry message on {odom_topic}")
    stamps = np.array([s for s, _, _ in latents], dtype=np.int64)
    means = np.stack([m for _, m, _ in latents]).astype(np.float32)  # (N, D)
    logvar_rows = [lv for _, _, lv in latents if lv is not None]
    logvars = np.stack(logvar_rows).astype(np.float32) if len(logvar_rows) == len(latents) else None  # (N, D)
    finite = np.isfinite(means).all(axis=1) & (np.isfinite(logvars).all(axis=1) if logvars is not None else True)
    odom_t = np.array([s for s, _ in rows.odom], dtype=np.int64)
    poses = np.array([p for _, p in rows.odom], dtype=np.float64).reshape(-1, 3)  # (M, 3)
    pose_ok = np.isfinite(poses).all(axis=1)
    if not finite.any():
        raise DataError(f"bag {path}: every latent on {latent_topic} holds NaN or inf ({finite.size})")
    if not pose_ok.any():
        raise DataError(f"bag {path}: every odometry pose on {odom_topic} holds NaN or inf ({pose_ok.size})")
    return Recording(path, latent_topic, odom_topic, stamps[finite], means[finite],
                     logvars[finite] if logvars is not None else None, odom_t[pose_ok], poses[pose_ok],
                     nan_latents=int((~finite).sum()), nan_poses=int((~pose_ok).sum()), malformed=rows.malformed)
