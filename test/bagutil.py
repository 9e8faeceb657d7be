"""Write small rosbag2 bags (MCAP or sqlite3) of real sensor_msgs for tests, the way `ros2 bag record` does.

Messages are real rclpy message objects serialised with rclpy.serialization.serialize_message; the bag
carries their message definitions (from rosbags' ROS 2 typestore), so readers need no typestore of their
own. Scenes are simple and structured so a tiny VAE can learn them in seconds: a coloured square at a
position for cameras, a robot at a position in a square room for 2-D and 3-D LiDAR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# Colours of the squares (RGB); the background is dark grey.
PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 90, 230]], dtype=np.uint8)
ROOM_HALF = 4.0  # the room is 8 m x 8 m, centred on the origin


def msgtype_of(msg: Any) -> str:
    """'sensor_msgs/msg/Image' for a sensor_msgs.msg.Image instance."""
    return f"{type(msg).__module__.split('.')[0]}/msg/{type(msg).__name__}"


def write_bag(path: str | Path, messages: Iterable[tuple[str, int, Any]], storage: str = "mcap") -> Path:
    """Write (topic, timestamp_ns, message) tuples to a new rosbag2 folder; message is an rclpy message or
    raw CDR bytes (then the topic's type comes from the first real message on it)."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    path = Path(path)
    pending: dict[str, list[tuple[int, bytes]]] = {}
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections: dict[str, Any] = {}
        for topic, stamp_ns, msg in messages:
            if isinstance(msg, bytes):
                if topic in connections:
                    writer.write(connections[topic], stamp_ns, msg)
                else:
                    pending.setdefault(topic, []).append((stamp_ns, msg))
                continue
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype_of(msg), typestore=typestore)
                for early_stamp, raw in pending.pop(topic, []):
                    writer.write(connections[topic], early_stamp, raw)
            writer.write(connections[topic], stamp_ns, serialize_message(msg))
    return path


def _stamp(msg: Any, stamp_ns: int, frame_id: str) -> None:
    msg.header.stamp.sec = stamp_ns // 1_000_000_000
    msg.header.stamp.nanosec = stamp_ns % 1_000_000_000
    msg.header.frame_id = frame_id


# -- cameras --------------------------------------------------------------------------------------------
def square_scene(index: int, height: int = 32, width: int = 32) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a coloured square (colour and position drawn from the index) on dark grey."""
    rng = np.random.default_rng(1000 + index)
    image = np.full((height, width, 3), 30, dtype=np.uint8)
    side = max(4, width // 4)
    row = int(rng.integers(0, height - side + 1))
    col = int(rng.integers(0, width - side + 1))
    image[row:row + side, col:col + side] = PALETTE[index % len(PALETTE)]
    return image


def image_msg(rgb: np.ndarray, stamp_ns: int = 0, encoding: str = "rgb8", frame_id: str = "camera") -> Any:
    """sensor_msgs/Image of an (H, W, 3) RGB uint8 array, as rgb8 or bgr8, rows padded to 4 bytes."""
    from sensor_msgs.msg import Image

    array = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    height, width = array.shape[:2]
    step = (width * 3 + 3) // 4 * 4
    padded = np.zeros((height, step), dtype=np.uint8)
    padded[:, :width * 3] = array.reshape(height, width * 3)
    msg = Image()
    _stamp(msg, stamp_ns, frame_id)
    msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian = height, width, encoding, step, 0
    msg.data = padded.tobytes()
    return msg


def compressed_msg(rgb: np.ndarray, stamp_ns: int = 0, fmt: str = "png", frame_id: str = "camera") -> Any:
    """sensor_msgs/CompressedImage (PNG or JPEG) of an (H, W, 3) RGB uint8 array."""
    from sensor_msgs.msg import CompressedImage

    ok, buffer = cv2.imencode("." + fmt, np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    msg = CompressedImage()
    _stamp(msg, stamp_ns, frame_id)
    msg.format = "rgb8; png compressed bgr8" if fmt == "png" else "rgb8; jpeg compressed bgr8"
    msg.data = buffer.tobytes()
    return msg


def broken_image_msg(stamp_ns: int = 0) -> Any:
    """An Image whose data is shorter than height * step: a decoder must reject it (InputError)."""
    msg = image_msg(square_scene(0), stamp_ns)
    msg.data = bytes(10)
    return msg


# -- LiDAR ----------------------------------------------------------------------------------------------
def robot_pose(index: int) -> tuple[float, float, float]:
    """(x, y, yaw) of the robot for a frame: drawn from the index, inside the room."""
    rng = np.random.default_rng(2000 + index)
    x, y = rng.uniform(-2.5, 2.5, size=2)
    return float(x), float(y), float(rng.uniform(-math.pi, math.pi))


def room_ranges(pose: tuple[float, float, float], angles: np.ndarray) -> np.ndarray:
    """Distances from pose along each angle (sensor frame) to the walls of the square room."""
    x, y, yaw = pose
    world = angles + yaw
    dx, dy = np.cos(world), np.sin(world)
    with np.errstate(divide="ignore"):
        tx = np.where(dx > 0, (ROOM_HALF - x) / dx, (-ROOM_HALF - x) / dx)
        ty = np.where(dy > 0, (ROOM_HALF - y) / dy, (-ROOM_HALF - y) / dy)
    return np.minimum(np.abs(tx), np.abs(ty))


def scan_msg(index: int, beams: int = 360, stamp_ns: int = 0, range_max: float = 10.0) -> Any:
    """sensor_msgs/LaserScan of the room from robot_pose(index); a few beams read inf and NaN."""
    from sensor_msgs.msg import LaserScan

    increment = 2 * math.pi / beams
    angles = -math.pi + increment * np.arange(beams)
    ranges = room_ranges(robot_pose(index), angles).astype(np.float32)
    ranges[index % beams] = np.inf
    ranges[(index * 7) % beams] = np.nan
    msg = LaserScan()
    _stamp(msg, stamp_ns, "laser")
    msg.angle_min, msg.angle_max = -math.pi, float(-math.pi + increment * (beams - 1))
    msg.angle_increment, msg.range_min, msg.range_max = increment, 0.05, range_max
    msg.ranges = ranges.tolist()
    return msg


def cloud_msg(index: int, rings: int = 16, columns: int = 256, stamp_ns: int = 0,
              fov_deg: tuple[float, float] = (-15.0, 15.0)) -> Any:
    """sensor_msgs/PointCloud2 (x, y, z float32 + intensity, point_step 16) of the room from
    robot_pose(index): `rings` elevation rings of `columns` points hitting the walls."""
    from sensor_msgs.msg import PointCloud2, PointField

    yaws = -math.pi + (np.arange(columns) + 0.5) * 2 * math.pi / columns
    pitches = np.radians(np.linspace(fov_deg[1], fov_deg[0], rings))
    horizontal = room_ranges(robot_pose(index), yaws)  # (columns,)
    xy = horizontal[None, :] * np.ones((rings, 1))
    points = np.zeros((rings, columns), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("i", "<f4")])
    points["x"] = xy * np.cos(yaws)[None, :]
    points["y"] = xy * np.sin(yaws)[None, :]
    points["z"] = xy * np.tan(pitches)[:, None]
    points["i"] = 1.0
    msg = PointCloud2()
    _stamp(msg, stamp_ns, "lidar")
    msg.height, msg.width = 1, rings * columns
    msg.fields = [PointField(name=n, offset=4 * k, datatype=PointField.FLOAT32, count=1)
                  for k, n in enumerate(("x", "y", "z", "intensity"))]
    msg.is_bigendian, msg.point_step, msg.row_step, msg.is_dense = False, 16, 16 * rings * columns, True
    msg.data = points.tobytes()
    return msg


def empty_cloud_msg(stamp_ns: int = 0) -> Any:
    """A PointCloud2 with no points: a decoder must reject it (InputError)."""
    msg = cloud_msg(0, stamp_ns=stamp_ns)
    msg.width, msg.row_step, msg.data = 0, 0, b""
    return msg


# -- whole bags -----------------------------------------------------------------------------------------
PERIOD_NS = 100_000_000  # 10 Hz


def write_sensor_bag(path: str | Path, count: int, make: Callable[[int, int], Any], topic: str,
                     storage: str = "mcap", bad: Sequence[int] = (),
                     make_bad: Callable[[int], Any] | None = None,
                     extra_topics: Sequence[tuple[str, Callable[[int, int], Any]]] = ()) -> Path:
    """A bag with `count` messages make(index, stamp_ns) on topic; indices in `bad` get make_bad(stamp)
    instead; extra topics get one message per frame too (so the reader has to filter)."""
    def frames() -> Iterable[tuple[str, int, Any]]:
        for index in range(count):
            stamp = 1_700_000_000_000_000_000 + index * PERIOD_NS
            if index in bad and make_bad is not None:
                yield topic, stamp, make_bad(stamp)
            else:
                yield topic, stamp, make(index, stamp)
            for other_topic, other_make in extra_topics:
                yield other_topic, stamp + 1, other_make(index, stamp + 1)

    return write_bag(path, frames(), storage=storage)


def write_image_bag(path: str | Path, count: int, storage: str = "mcap", topic: str = "/camera/image_raw",
                    size: tuple[int, int] = (32, 32), compressed: bool = False, encoding: str = "rgb8",
                    bad: Sequence[int] = ()) -> Path:
    """Camera bag of square scenes (Image with encoding, or PNG CompressedImage); `bad` frames are broken."""
    height, width = size

    def make(index: int, stamp: int) -> Any:
        scene = square_scene(index, height, width)
        return compressed_msg(scene, stamp) if compressed else image_msg(scene, stamp, encoding)

    def make_bad(stamp: int) -> Any:
        if compressed:
            msg = compressed_msg(square_scene(0, height, width), stamp)
            msg.data = b"not an image at all"
            return msg
        return broken_image_msg(stamp)

    odom = ("/odom", lambda index, stamp: _string_msg(f"frame {index}"))
    return write_sensor_bag(path, count, make, topic, storage, bad, make_bad, extra_topics=[odom])


def _string_msg(text: str) -> Any:
    from std_msgs.msg import String

    return String(data=text)


def write_scan_bag(path: str | Path, count: int, storage: str = "mcap", topic: str = "/scan",
                   beams: int = 360) -> Path:
    return write_sensor_bag(path, count, lambda i, s: scan_msg(i, beams, s), topic, storage)


def write_cloud_bag(path: str | Path, count: int, storage: str = "mcap", topic: str = "/lidar/points",
                    bad: Sequence[int] = ()) -> Path:
    return write_sensor_bag(path, count, lambda i, s: cloud_msg(i, stamp_ns=s), topic, storage, bad,
                            empty_cloud_msg)


def write_image_folder(directory: str | Path, count: int, size: tuple[int, int] = (32, 32),
                       broken: int = 0) -> Path:
    """A folder tree of PNG/JPEG/BMP square scenes (in sub-folders) plus `broken` unreadable .png files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        sub = directory / f"part{index % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        suffix = (".png", ".png", ".bmp", ".jpg")[index % 4]
        bgr = square_scene(index, *size)[:, :, ::-1]
        cv2.imwrite(str(sub / f"img_{index:04d}{suffix}"), np.ascontiguousarray(bgr))
    for index in range(broken):
        (directory / f"broken_{index}.png").write_bytes(b"\x89PNG not really")
    (directory / "notes.txt").write_text("not an image; ignored")
    return directory
