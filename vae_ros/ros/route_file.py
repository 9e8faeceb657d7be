"""A route on disk: a folder that rosbag tools read, with the route's metadata and a plot beside the bag.

A taught route is shared between robots and kept for months, so its file must be readable without this
package (`ros2 bag info ROUTE`, `ros2 bag play ROUTE`, Foxglove) and must say when it was damaged. The folder
IS a rosbag2 MCAP bag (metadata.yaml + one .mcap, written by BagWriter) of two topics, one message per keyframe,
each stamped with the keyframe's stamp (bag time = header stamp):

- `/route/latent_stamped`: sensor_msgs/msg/Image in the contract's `vae/latent_stamped` layout (32FC1, width D,
  height 1, or 2 with the log-variances, step 4·D, little-endian);
- `/route/pose`: geometry_msgs/msg/PoseStamped in frame `odom`, the keyframe's odometry pose (yaw about z).

Beside the bag, `route.json` holds the metadata (format version, the model's weights digest, latent size,
keyframes, length, spacing, source topics and bags, when it was taught) and the .mcap file's size and SHA-256,
and `route.png` plots the path. Saving writes into a hidden folder beside the target and renames it, so a
crash never leaves half a route. Loading checks sizes before reading, the digest before parsing, and every
message against route.json; each refusal is one DataError line. Nothing is ever unpickled. No rclpy here:
messages are built and read with rosbags' typestore.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.runtime.route import MAX_KEYFRAMES, ROUTE_FORMAT_VERSION, Route
from vae_ros.core.errors import DataError, InputError, VaeRosError

ROUTE_JSON = "route.json"
ROUTE_PNG = "route.png"
ROUTE_LATENT_TOPIC = "/route/latent_stamped"
ROUTE_POSE_TOPIC = "/route/pose"
LATENT_MSGTYPE = "sensor_msgs/msg/Image"
POSE_MSGTYPE = "geometry_msgs/msg/PoseStamped"
POSE_FRAME = "odom"  # the teach run's odometry frame (REP-105), as sim_node's odometry
MAX_ROUTE_JSON_BYTES = 1 << 20
MAX_ROUTE_MCAP_BYTES = 512 << 20  # 100 000 keyframes of 256-D latents with variances fit in about 250 MB
# What route.json must hold; everything else in it is kept in Route.meta as it is.
REQUIRED_KEYS = ("format", "model_sha256", "latent_dim", "keyframes", "length_m", "spacing_m", "spacing_deg",
                 "latent_topic", "odom_topic", "sources", "taught_at", "mcap_sha256", "mcap_bytes")


# -- saving -----------------------------------------------------------------------------------------------------
def save_route(route: Route, folder: str | Path, force: bool = False, plot: bool = True) -> Path:
    """Write `route` as a route folder (see the module docstring); returns the folder. An existing non-empty
    folder is refused unless `force`, and even then only when it is a route (it has a route.json)."""
    folder = Path(folder)
    check_route_target(folder, force)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        bag = staging / folder.name  # rosbags names the .mcap after its folder: the final name, not the staging one
        mcap = _write_bag(route, bag)
        _write_json(bag / ROUTE_JSON, route_json(route, mcap))
        if plot:
            from vae_ros.control.evaluation.plots import plot_route

            plot_route(route, bag / ROUTE_PNG, title=f"{folder.name}: taught route")
        if folder.exists():
            os.replace(folder, staging / ".replaced")
        os.replace(bag, folder)
    except OSError as err:
        raise DataError(f"cannot write the route {folder}: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def check_route_target(folder: Path, force: bool) -> None:
    """DataError unless a route may be written at `folder`: nothing there, an empty folder, or (with `force`)
    a route; never another file or folder (a mistyped --out must not delete someone's data)."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir():
        raise DataError(f"{folder} exists and is not a folder; choose another --out")
    if not any(folder.iterdir()):
        return
    if not force:
        raise DataError(f"{folder} exists and is not empty; choose another --out or pass --force to replace it")
    if not (folder / ROUTE_JSON).is_file():
        raise DataError(f"{folder} is not a route (it has no {ROUTE_JSON}); --force replaces only a route, "
                        "choose another --out")


def ros2_typestore() -> Any:
    """rosbags' ROS 2 type store (Kilted where this rosbags knows it), as BagWriter uses."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST)


def _header(store: Any, stamp_ns: int, frame_id: str) -> Any:
    time_type = store.types["builtin_interfaces/msg/Time"]
    header_type = store.types["std_msgs/msg/Header"]
    return header_type(stamp=time_type(sec=int(stamp_ns) // 1_000_000_000, nanosec=int(stamp_ns) % 1_000_000_000),
                       frame_id=frame_id)


def latent_message(store: Any, stamp_ns: int, mean: np.ndarray, logvar: np.ndarray | None) -> Any:
    """A rosbags sensor_msgs/Image in the stamped-latent layout: rows of means [and log-variances]."""
    rows = np.stack([mean] if logvar is None else [mean, logvar]).astype("<f4")  # (1 or 2, D)
    return store.types[LATENT_MSGTYPE](
        header=_header(store, stamp_ns, ""), height=rows.shape[0], width=rows.shape[1], encoding="32FC1",
        is_bigendian=0, step=4 * rows.shape[1], data=np.frombuffer(rows.tobytes(), dtype=np.uint8))


def pose_message(store: Any, stamp_ns: int, pose: np.ndarray) -> Any:
    """A rosbags geometry_msgs/PoseStamped of (x, y, yaw) in the odometry frame."""
    types = store.types
    x, y, yaw = (float(v) for v in pose)
    geometry = types["geometry_msgs/msg/Pose"](
        position=types["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
        orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(0.5 * yaw), w=math.cos(0.5 * yaw)))
    return types[POSE_MSGTYPE](header=_header(store, stamp_ns, POSE_FRAME), pose=geometry)


def _write_bag(route: Route, bag: Path) -> Path:
    """The keyframes as a new MCAP bag at `bag`; returns its .mcap file."""
    from vae_ros.ros.bagio import BagWriter, reliable_qos

    store = ros2_typestore()
    with BagWriter(bag, storage="mcap") as writer:
        writer.add_topic(ROUTE_LATENT_TOPIC, LATENT_MSGTYPE, reliable_qos())
        writer.add_topic(ROUTE_POSE_TOPIC, POSE_MSGTYPE, reliable_qos())
        writer.set_custom_data("vae_ros.route_format", str(ROUTE_FORMAT_VERSION))
        for k in range(len(route)):
            stamp = int(route.stamps_ns[k])
            logvar = route.logvars[k] if route.logvars is not None else None
            writer.write(ROUTE_LATENT_TOPIC, stamp, store.serialize_cdr(
                latent_message(store, stamp, route.latents[k], logvar), LATENT_MSGTYPE))
            writer.write(ROUTE_POSE_TOPIC, stamp, store.serialize_cdr(
                pose_message(store, stamp, route.poses[k]), POSE_MSGTYPE))
    return _mcap_file(bag)


def route_json(route: Route, mcap: Path) -> dict[str, Any]:
    """route.json's content: the route's metadata, completed, and the digest of the bag's .mcap."""
    from vae_ros.core.files import sha256_file

    meta = dict(route.meta)
    meta.update({
        "format": ROUTE_FORMAT_VERSION, "model_sha256": meta.get("model_sha256"), "latent_dim": route.latent_dim,
        "keyframes": len(route), "length_m": route.length, "spacing_m": meta.get("spacing_m"),
        "spacing_deg": meta.get("spacing_deg"), "latent_topic": meta.get("latent_topic"),
        "odom_topic": meta.get("odom_topic"), "sources": list(meta.get("sources") or []),
        "taught_at": meta.get("taught_at") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "logvars": route.logvars is not None, "mcap_bytes": mcap.stat().st_size,
        "mcap_sha256": sha256_file(mcap, MAX_ROUTE_MCAP_BYTES),
    })
    return meta


def _write_json(path: Path, content: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf8") as handle:
        json.dump(content, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


# -- loading ----------------------------------------------------------------------------------------------------
def load_route(folder: str | Path) -> Route:
    """The route saved in `folder` by save_route (`vae-ros teach`), checked; DataError says what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"route {folder} does not exist or is not a folder")
    meta = read_route_json(folder)
    mcap = _mcap_file(folder)
    _check_digest(mcap, meta)
    latents, logvars, poses, stamps = _read_keyframes(folder, meta)
    try:
        return Route(poses, latents, stamps, logvars, meta)
    except DataError as err:
        raise DataError(f"route {folder}: {err}") from err


def read_route_json(folder: Path) -> dict[str, Any]:
    """route.json of a route folder, size-limited and checked for the keys and format this reader knows."""
    from vae_ros.core.files import check_regular_file

    path = folder / ROUTE_JSON
    if not path.exists():
        raise DataError(f"{folder} is not a route: it has no {ROUTE_JSON} (write one with `vae-ros teach`)")
    try:
        check_regular_file(path, MAX_ROUTE_JSON_BYTES)
        meta = json.loads(path.read_text(encoding="utf8"))
    except VaeRosError as err:
        raise DataError(f"route {folder}: {err}") from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path} is not JSON ({err}); the route is damaged") from err
    if not isinstance(meta, dict):
        raise DataError(f"{path} must hold a JSON object, not {type(meta).__name__}")
    if meta.get("format") != ROUTE_FORMAT_VERSION:
        raise DataError(f"{path} has route format {meta.get('format')!r}; this vae_ros reads format "
                        f"{ROUTE_FORMAT_VERSION} (teach the route again with this version)")
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; the route is damaged or not written by `vae-ros teach`")
    for key, low, high in (("keyframes", 2, MAX_KEYFRAMES), ("latent_dim", 1, 1 << 16),
                           ("mcap_bytes", 1, MAX_ROUTE_MCAP_BYTES)):
        value = meta[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise DataError(f"{path}: {key} must be an integer in {low}..{high}, got {value!r}")
    return meta


def _mcap_file(folder: Path) -> Path:
    files = sorted(folder.glob("*.mcap"))
    if len(files) != 1:
        raise DataError(f"route {folder} must hold exactly one .mcap file, it holds {len(files)}; the route is "
                        "damaged")
    return files[0]


def _check_digest(mcap: Path, meta: dict[str, Any]) -> None:
    """The .mcap is the file teach wrote: its size (truncated?) and SHA-256 (tampered with?) as in route.json."""
    from vae_ros.core.files import check_regular_file, sha256_file

    try:
        size = check_regular_file(mcap, MAX_ROUTE_MCAP_BYTES)
        if size < meta["mcap_bytes"]:
            raise DataError(f"{mcap} is truncated: {size} of {meta['mcap_bytes']} bytes; the route is damaged, "
                            "copy it again or teach it again")
        digest = sha256_file(mcap, MAX_ROUTE_MCAP_BYTES)
    except DataError:
        raise
    except VaeRosError as err:
        raise DataError(f"route {mcap.parent}: {err}") from err
    if size != meta["mcap_bytes"] or digest != meta["mcap_sha256"]:
        raise DataError(f"{mcap} was tampered with or damaged: its SHA-256 differs from the one in {ROUTE_JSON}; "
                        "copy the route again or teach it again")


def _read_keyframes(folder: Path, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray,
                                                                   np.ndarray]:
    """(latents (K, D), log-variances (K, D) or None, poses (K, 3), stamps (K,)) from the route's bag."""
    latent_rows, pose_rows = _read_messages(folder, meta)
    keyframes = meta["keyframes"]
    if len(latent_rows) != keyframes or len(pose_rows) != keyframes:
        raise DataError(f"route {folder} is truncated or damaged: {len(latent_rows)} latents and {len(pose_rows)} "
                        f"poses for {keyframes} keyframes")
    latent_rows.sort(key=lambda row: row[0])
    pose_rows.sort(key=lambda row: row[0])
    stamps = np.array([row[0] for row in latent_rows], dtype=np.int64)
    if not np.array_equal(stamps, np.array([row[0] for row in pose_rows], dtype=np.int64)):
        raise DataError(f"route {folder}: latent and pose stamps do not pair one to one; the route is damaged")
    latents = np.stack([row[1] for row in latent_rows])
    with_logvars = [row[2] is not None for row in latent_rows]
    if any(with_logvars) and not all(with_logvars):
        raise DataError(f"route {folder}: only some keyframes carry log-variances; the route is damaged")
    logvars = np.stack([row[2] for row in latent_rows]) if all(with_logvars) else None
    return latents, logvars, np.array([row[1] for row in pose_rows], dtype=np.float64), stamps


def _read_messages(folder: Path, meta: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(stamp, mean, logvar) per latent message and (stamp, (x, y, yaw)) per pose message, each checked."""
    from rosbags.highlevel import AnyReader

    latent_rows: list[Any] = []
    pose_rows: list[Any] = []
    try:
        with AnyReader([folder], default_typestore=ros2_typestore()) as reader:
            topics = {name: info.msgtype for name, info in reader.topics.items()}
            for topic, msgtype in ((ROUTE_LATENT_TOPIC, LATENT_MSGTYPE), (ROUTE_POSE_TOPIC, POSE_MSGTYPE)):
                if topics.get(topic) != msgtype:
                    raise DataError(f"route {folder} has no {topic} ({msgtype}) topic; the route is damaged")
            connections = [c for c in reader.connections if c.topic in (ROUTE_LATENT_TOPIC, ROUTE_POSE_TOPIC)]
            for connection, _, data in reader.messages(connections=connections):
                if len(latent_rows) + len(pose_rows) >= 2 * meta["keyframes"]:
                    raise DataError(f"route {folder} holds more messages than its {meta['keyframes']} keyframes")
                msg = reader.deserialize(data, connection.msgtype)
                if connection.topic == ROUTE_LATENT_TOPIC:
                    latent_rows.append(_latent_row(msg, meta["latent_dim"], len(latent_rows)))
                else:
                    pose_rows.append(_pose_row(msg))
    except DataError:
        raise
    except VaeRosError as err:
        raise DataError(f"route {folder}: {err}") from err
    except Exception as err:  # rosbags' reader and CDR parser raise many kinds on a damaged bag
        raise DataError(f"route {folder} is unreadable ({type(err).__name__}: {err}); the route is damaged") from err
    return latent_rows, pose_rows


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _latent_row(msg: Any, latent_dim: int, index: int) -> tuple[int, np.ndarray, np.ndarray | None]:
    from vae_ros.core.conversions.latent import stamped_msg_to_latent

    width = int(getattr(msg, "width", 0))
    if width != latent_dim:
        raise DataError(f"keyframe {index} has a {width}-D latent, route.json says {latent_dim}-D")
    try:
        mean, logvar, header = stamped_msg_to_latent(msg, latent_dim)
    except InputError as err:
        raise DataError(f"keyframe {index}: {err}") from err
    return _stamp_ns(header), mean, logvar


def _pose_row(msg: Any) -> tuple[int, tuple[float, float, float]]:
    from vae_ros.core.conversions.common import planar_pose

    return _stamp_ns(msg.header), planar_pose(msg.pose)
