"""What the message <-> array conversions share: strict views of message buffers, headers, poses.
"""

from __future__ import annotations

import array as pyarray
import math
from typing import Any

import numpy as np

from vae_ros.core.errors import InputError


# ---------------------------------------------------------------------------------------------------------
# Buffers
# ---------------------------------------------------------------------------------------------------------
def _as_uint8(data: Any, what: str) -> np.ndarray:
    """A message's byte field as a 1-D uint8 array, without copying where the buffer allows it."""
    if isinstance(data, np.ndarray):
        if data.dtype.itemsize != 1:
            raise InputError(f"{what} must hold bytes (uint8), got a NumPy array of {data.dtype}")
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, pyarray.array):
        if data.itemsize != 1:
            raise InputError(f"{what} must hold bytes (array typecode 'B'), got typecode {data.typecode!r}")
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, (list, tuple)):
        # Only hand-built messages get here; real ones carry array.array (rclpy) or ndarray (rosbags).
        # Through int64 and an explicit range check: NumPy 1.x casts 300 to uint8 44 with only a warning.
        try:
            values = np.asarray(data, dtype=np.int64).reshape(-1)
        except (OverflowError, ValueError, TypeError) as err:
            raise InputError(f"{what} must be a sequence of bytes 0..255: {err}") from err
        if values.size and (values.min() < 0 or values.max() > 255):
            raise InputError(f"{what} must be a sequence of bytes 0..255, got values in "
                             f"{values.min()}..{values.max()}")
        return values.astype(np.uint8)
    raise InputError(f"{what} must be bytes-like (bytes, array.array, uint8 ndarray), got {type(data).__name__}")


def _as_float_array(data: Any, what: str) -> np.ndarray:
    """A message's float sequence field (float32[] / float64[]) as a 1-D float32 array."""
    if isinstance(data, pyarray.array) and data.typecode in ("f", "d"):
        return np.frombuffer(data, dtype=np.float32 if data.typecode == "f" else np.float64).astype(np.float32)
    try:
        return np.asarray(data, dtype=np.float32).reshape(-1)
    except (ValueError, TypeError) as err:
        raise InputError(f"{what} must be a sequence of numbers: {err}") from err


def _to_bytes_array(values: np.ndarray) -> pyarray.array:
    """NumPy array -> array.array('B') of its bytes, the type rclpy stores for uint8[] fields (one memcpy)."""
    out = pyarray.array("B")
    out.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8).data)
    return out


def _to_float_array(values: np.ndarray) -> pyarray.array:
    """NumPy array -> array.array('f'), the type rclpy stores for float32[] fields (one memcpy)."""
    out = pyarray.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.uint8).data)
    return out


def _f32(value: float) -> float:
    """A Python float rounded to float32, the precision of float32 message fields."""
    return float(np.float32(value))


def _uint_field(msg: Any, name: str) -> int:
    try:
        return int(getattr(msg, name))
    except AttributeError as err:
        raise InputError(f"message has no field '{name}' ({type(msg).__name__})") from err
    except (TypeError, ValueError) as err:
        raise InputError(f"message field '{name}' must be an integer: {err}") from err


def stamp_ns(stamp: Any) -> int:
    """A header stamp (builtin_interfaces/Time or a rosbags Time: sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# ---------------------------------------------------------------------------------------------------------
# Builders (rclpy message objects; message packages imported lazily)
# ---------------------------------------------------------------------------------------------------------
def _header(frame_id: str, stamp: Any) -> Any:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    if stamp is None:
        stamp_msg = Time()
    elif isinstance(stamp, Time):
        stamp_msg = stamp
    elif hasattr(stamp, "to_msg"):  # rclpy.time.Time
        stamp_msg = stamp.to_msg()
    elif hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):  # e.g. a rosbags Time
        stamp_msg = Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec))
    else:
        raise InputError(f"stamp must be a builtin_interfaces/Time, rclpy Time or None, got {type(stamp).__name__}")
    return Header(frame_id=str(frame_id), stamp=stamp_msg)


def _copy_header(header: Any) -> Any:
    """Any header with stamp (sec, nanosec) and frame_id -> a new std_msgs/Header (None: an empty one).

    The encoder decodes its input with rosbags, whose Header is a dataclass rclpy cannot publish; this
    turns it (or an rclpy Header) into the rclpy message, keeping the stamp and frame_id exactly.
    """
    if header is None:
        return _header("", None)
    try:
        stamp, frame_id = header.stamp, header.frame_id
    except AttributeError as err:
        raise InputError(f"header must have stamp and frame_id fields, got {type(header).__name__}") from err
    return _header(str(frame_id), stamp)


# ---------------------------------------------------------------------------------------------------------
# Poses
# ---------------------------------------------------------------------------------------------------------
def planar_pose(pose: Any) -> tuple[float, float, float]:
    """geometry_msgs/Pose (e.g. nav_msgs/Odometry's pose.pose) -> (x, y, yaw): the robot in the plane.

    yaw is the rotation about z of the orientation quaternion, in (-pi, pi]; roll and pitch are ignored.
    """
    p, q = pose.position, pose.orientation
    yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
    return float(p.x), float(p.y), yaw


# Largest deviation of an orientation quaternion's norm from 1 that still counts as a rotation (float32 fields
# and a few rounding steps stay well inside; a zero quaternion, the default of an unfilled message, is far out).
QUATERNION_NORM_TOLERANCE = 1e-2


def checked_planar_pose(pose: Any, what: str = "pose") -> tuple[float, float, float]:
    """planar_pose of a geometry_msgs/Pose that must be usable: InputError for a NaN or infinite position or
    orientation, or an orientation quaternion that is not of unit norm (an unfilled message's zero quaternion)."""
    p, q = pose.position, pose.orientation
    values = [float(v) for v in (p.x, p.y, p.z, q.x, q.y, q.z, q.w)]
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} holds NaN or infinite values (position {values[:3]}, orientation {values[3:]})")
    norm = math.sqrt(sum(v * v for v in values[3:]))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise InputError(f"{what} orientation is not a unit quaternion (norm {norm:.4g}; expected 1 within "
                         f"{QUATERNION_NORM_TOLERANCE:g})")
    return planar_pose(pose)


def path_msg(poses: np.ndarray, frame_id: str, stamp: Any = None) -> Any:
    """(K, 3) planar poses [x, y, yaw] -> nav_msgs/Path of K PoseStamped (z = 0), all in frame_id at stamp."""
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path

    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3 or not np.all(np.isfinite(poses)):
        raise InputError(f"path poses must be finite (K, 3) [x, y, yaw], got {poses.shape}")
    header = _header(frame_id, stamp)
    msg = Path(header=header)
    for x, y, yaw in poses:
        stamped = PoseStamped(header=header)
        stamped.pose.position.x, stamped.pose.position.y = float(x), float(y)
        stamped.pose.orientation.z, stamped.pose.orientation.w = math.sin(yaw / 2.0), math.cos(yaw / 2.0)
        msg.poses.append(stamped)
    return msg
