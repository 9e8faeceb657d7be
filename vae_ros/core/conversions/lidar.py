"""LaserScan and PointCloud2 <-> arrays, and decoded LiDAR (a scan model's output back to a LaserScan, a range-image
model's to a PointCloud2).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from vae_ros.core.config import PointCloudSpec, ScanSpec
from vae_ros.core.conversions.common import (
    _as_float_array,
    _as_uint8,
    _f32,
    _header,
    _to_bytes_array,
    _to_float_array,
    _uint_field,
)
from vae_ros.core.errors import InputError
from vae_ros.core.preprocess import preprocess_scan


# ---------------------------------------------------------------------------------------------------------
# sensor_msgs/LaserScan
# ---------------------------------------------------------------------------------------------------------
def scan_msg_to_input(msg: Any, spec: ScanSpec) -> np.ndarray:
    """sensor_msgs/LaserScan -> (2, spec.beams) float32 [range / range_max, mask] (core.preprocess rules)."""
    ranges = _as_float_array(getattr(msg, "ranges", None), "scan ranges")  # (N,)
    if ranges.size == 0:
        raise InputError("scan has no ranges")
    try:
        angle_min = float(msg.angle_min)
        angle_max = float(msg.angle_max)
        angle_increment = float(msg.angle_increment)
        range_min = float(msg.range_min)
        range_max = float(msg.range_max)
    except AttributeError as err:
        raise InputError(f"LaserScan misses a field: {err}") from err
    if not (math.isfinite(angle_min) and math.isfinite(angle_increment)) or angle_increment == 0.0:
        raise InputError(
            f"scan angle_min and angle_increment must be finite and angle_increment non-zero, "
            f"got angle_min={angle_min}, angle_increment={angle_increment}"
        )
    if math.isnan(range_min) or math.isnan(range_max) or range_max < range_min:
        raise InputError(f"scan range limits must satisfy range_min <= range_max, got {range_min}, {range_max}")
    if math.isfinite(angle_max):
        # Drivers disagree on whether angle_max is the last beam or one increment past it; allow that,
        # but a count far off means a truncated or mislabelled scan.
        expected = (angle_max - angle_min) / angle_increment + 1.0
        if expected < 0.5 or abs(ranges.size - expected) > max(2.0, 0.02 * expected):
            raise InputError(
                f"scan has {ranges.size} ranges, but angle_min..angle_max ({angle_min:.4f}..{angle_max:.4f}) "
                f"at angle_increment {angle_increment:.6f} needs about {expected:.0f}"
            )
    return preprocess_scan(ranges, angle_min, angle_increment, range_min, range_max, spec)


# ---------------------------------------------------------------------------------------------------------
# sensor_msgs/PointCloud2
# ---------------------------------------------------------------------------------------------------------
_POINT_FIELD_TYPES = {7: "f4", 8: "f8"}  # sensor_msgs/PointField FLOAT32, FLOAT64


def pointcloud_msg_to_xyz(msg: Any) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> (N, 3) float32 x, y, z, N = height * width in row-major order.

    Fields x, y, z may be FLOAT32 or FLOAT64 at any offsets; point_step, row_step padding, organised
    clouds and is_bigendian are honoured. NaN points pass through (preprocessing drops them).
    """
    height, width = _uint_field(msg, "height"), _uint_field(msg, "width")
    point_step, row_step = _uint_field(msg, "point_step"), _uint_field(msg, "row_step")
    if height < 0 or width < 0:
        raise InputError(f"point cloud height and width must be >= 0, got {height}x{width}")
    fields = {str(f.name): f for f in getattr(msg, "fields", ())}
    big = bool(getattr(msg, "is_bigendian", 0))
    names, formats, offsets = [], [], []
    for axis in ("x", "y", "z"):
        field = fields.get(axis)
        if field is None:
            raise InputError(f"point cloud has no '{axis}' field; fields are {sorted(fields)}, expected x, y, z")
        datatype, count, offset = int(field.datatype), int(field.count), int(field.offset)
        if datatype not in _POINT_FIELD_TYPES:
            raise InputError(
                f"point cloud field '{axis}' has datatype {datatype}; expected FLOAT32 (7) or FLOAT64 (8)"
            )
        if count != 1:
            raise InputError(f"point cloud field '{axis}' has count {count}, expected 1")
        fmt = np.dtype(_POINT_FIELD_TYPES[datatype]).newbyteorder(">" if big else "<")
        if offset < 0 or offset + fmt.itemsize > point_step:
            raise InputError(
                f"point cloud field '{axis}' at offset {offset} ({fmt.itemsize} bytes) does not fit in "
                f"point_step {point_step}"
            )
        names.append(axis)
        formats.append(fmt)
        offsets.append(offset)
    if height == 0 or width == 0:
        return np.empty((0, 3), dtype=np.float32)
    row_bytes = width * point_step
    if height == 1:
        row_step = max(row_step, row_bytes)  # row_step is irrelevant for one row; some drivers leave it 0
    elif row_step < row_bytes:
        raise InputError(f"point cloud row_step {row_step} is smaller than width * point_step = {row_bytes}")
    buf = _as_uint8(getattr(msg, "data", None), "point cloud data")
    needed = row_step * (height - 1) + row_bytes
    if buf.size < needed:
        raise InputError(
            f"point cloud data has {buf.size} bytes, expected at least {needed} for {height}x{width} points "
            f"(point_step {point_step}, row_step {row_step})"
        )
    point = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    # (H, W) structured view straight onto the message buffer; no per-point Python.
    cloud = np.ndarray((height, width), dtype=point, buffer=buf, offset=0, strides=(row_step, point_step))
    xyz = np.empty((height * width, 3), dtype=np.float32)  # (N, 3)
    for i, axis in enumerate(names):
        xyz[:, i] = cloud[axis].reshape(-1)
    return xyz


def scan_to_msg(
    ranges: np.ndarray,
    angle_min: float,
    angle_increment: float,
    range_min: float,
    range_max: float,
    frame_id: str = "",
    stamp: Any = None,
    intensities: np.ndarray | None = None,
    scan_time: float = 0.0,
) -> Any:
    """(N,) ranges -> sensor_msgs/LaserScan; angle_max is the angle of the last beam (REP-117 ranges)."""
    from sensor_msgs.msg import LaserScan

    values = np.asarray(ranges, dtype=np.float32).reshape(-1)  # (N,)
    if values.size == 0:
        raise InputError("scan needs at least one range")
    if not math.isfinite(angle_increment) or angle_increment == 0.0:
        raise InputError(f"angle_increment must be finite and non-zero, got {angle_increment}")
    msg = LaserScan()
    msg.header = _header(frame_id, stamp)
    # The fields are float32 on the wire; rounding here makes the local message equal what subscribers
    # and bags see (a double angle_increment can move a beam across a model bin edge).
    msg.angle_min = _f32(angle_min)
    msg.angle_max = _f32(angle_min + angle_increment * (values.size - 1))
    msg.angle_increment = _f32(angle_increment)
    msg.time_increment = 0.0
    msg.scan_time = _f32(scan_time)
    msg.range_min = _f32(range_min)
    msg.range_max = _f32(range_max)
    msg.ranges = _to_float_array(values)
    if intensities is not None:
        inten = np.asarray(intensities, dtype=np.float32).reshape(-1)
        if inten.size != values.size:
            raise InputError(f"scan has {values.size} ranges but {inten.size} intensities")
        msg.intensities = _to_float_array(inten)
    return msg


def xyz_to_pointcloud_msg(points: np.ndarray, frame_id: str = "", stamp: Any = None) -> Any:
    """(N, 3) points -> unorganised sensor_msgs/PointCloud2 with float32 fields x, y, z (point_step 12)."""
    from sensor_msgs.msg import PointCloud2, PointField

    xyz = np.asarray(points)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError(f"points must be (N, 3), got shape {xyz.shape}")
    xyz = np.ascontiguousarray(xyz, dtype=np.float32)  # (N, 3)
    msg = PointCloud2()
    msg.header = _header(frame_id, stamp)
    msg.height, msg.width = 1, int(xyz.shape[0])
    msg.fields = [
        PointField(name=axis, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, axis in enumerate("xyz")
    ]
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step = 12
    msg.row_step = 12 * int(xyz.shape[0])
    msg.is_dense = bool(np.isfinite(xyz).all())
    msg.data = _to_bytes_array(xyz)
    return msg


# ---------------------------------------------------------------------------------------------------------
# Decoded LiDAR (decoder output in [0, 1]) -> LaserScan / PointCloud2 in the sensor frame
# ---------------------------------------------------------------------------------------------------------
# The LiDAR VAEs predict ranges only, no validity channel: preprocessing fills bins without a return with
# 1.0 (= range_max) and the loss ignores them, so "no return" must be read off the range. A decoded bin at
# or beyond this fraction of range_max counts as no return (+inf in a LaserScan, no point in a cloud).
NO_RETURN_FRACTION = 0.98
# One point of a decoded cloud: x, y, z float32 and the range-image row, little-endian, 16 bytes.
_RING_POINT = np.dtype({"names": ["x", "y", "z", "ring"], "formats": ["<f4", "<f4", "<f4", "<u2"],
                        "offsets": [0, 4, 8, 12], "itemsize": 16})


def _decoded_lidar(x_hat: np.ndarray, shape: tuple[int, ...], range_max: float) -> np.ndarray:
    """Decoder output (1, *shape) or shape, in [0, 1] -> ranges in metres, +inf where there is no return."""
    values = np.asarray(x_hat, dtype=np.float32)
    if values.shape == (1, *shape):
        values = values[0]
    if values.shape != shape:
        raise InputError(f"decoded LiDAR has shape {values.shape}, expected (1, {', '.join(map(str, shape))})")
    ranges = values * np.float32(range_max)
    valid = np.isfinite(values) & (values > 0.0) & (values < NO_RETURN_FRACTION)
    return np.where(valid, ranges, np.float32(np.inf)).astype(np.float32)


def decoded_scan_ranges(x_hat: np.ndarray, spec: ScanSpec) -> np.ndarray:
    """Decoded scan (1, beams) in [0, 1] -> (beams,) ranges in metres at the model's beam centres.

    +inf (REP-117: no return within range_max) where the decoded range is NO_RETURN_FRACTION of range_max
    or more, or not finite.
    """
    return _decoded_lidar(x_hat, (spec.beams,), spec.range_max)


def decoded_to_scan_msg(x_hat: np.ndarray, spec: ScanSpec, frame_id: str = "", stamp: Any = None) -> Any:
    """Decoded scan (1, beams) -> sensor_msgs/LaserScan with the model's geometry (model.json).

    Beam i lies at the centre of model bin i, angle_min + (i + 0.5)·w with w = (angle_max − angle_min) / beams
    (vae_ros.core.preprocess.preprocess_scan's bins), so encoding the message again finds the same bins.
    range_min 0, range_max the model's; invalid bins are +inf.
    """
    ranges = decoded_scan_ranges(x_hat, spec)  # (beams,)
    width = (spec.angle_max - spec.angle_min) / spec.beams
    return scan_to_msg(ranges, spec.angle_min + 0.5 * width, width, 0.0, spec.range_max,
                       frame_id=frame_id, stamp=stamp)


def decoded_range_image_to_points(x_hat: np.ndarray, spec: PointCloudSpec) -> tuple[np.ndarray, np.ndarray]:
    """Decoded range image (1, rows, cols) in [0, 1] -> ((N, 3) float32 x, y, z, (N,) uint16 row).

    Rows are rings from fov_up_deg (row 0) to fov_down_deg (last row), as PointCloudSpec says: pitch
    fov_up − row·(fov_up − fov_down) / (rows − 1), the elevations of a sensor whose rings span the field of
    view (the simulator's, a VLP-16's). Columns look along their bin centres, yaw −π + (col + 0.5)·2π / cols.
    preprocess_pointcloud puts every such ray back into its pixel. Pixels with no return
    (NO_RETURN_FRACTION rule) give no point. Points are in row-major pixel order.
    """
    ranges = _decoded_lidar(x_hat, (spec.rows, spec.cols), spec.range_max)  # (rows, cols)
    rows, cols = np.nonzero(np.isfinite(ranges))  # (N,) each, row-major
    r = ranges[rows, cols].astype(np.float64)
    fov_up, fov_down = math.radians(spec.fov_up_deg), math.radians(spec.fov_down_deg)
    pitch = fov_up - rows * (fov_up - fov_down) / max(spec.rows - 1, 1)
    yaw = -math.pi + (cols + 0.5) * (2.0 * math.pi / spec.cols)
    xyz = np.empty((r.size, 3), dtype=np.float32)  # (N, 3)
    xyz[:, 0] = r * np.cos(pitch) * np.cos(yaw)
    xyz[:, 1] = r * np.cos(pitch) * np.sin(yaw)
    xyz[:, 2] = r * np.sin(pitch)
    return xyz, rows.astype(np.uint16)


def decoded_to_pointcloud_msg(
    x_hat: np.ndarray, spec: PointCloudSpec, frame_id: str = "", stamp: Any = None
) -> Any:
    """Decoded range image (1, rows, cols) -> unorganised sensor_msgs/PointCloud2.

    Fields x, y, z (FLOAT32, offsets 0, 4, 8) and ring (UINT16, offset 12: the range-image row, 0 = the top
    ring at fov_up_deg); point_step 16, little-endian, dense (pixels without a return are left out).
    """
    from sensor_msgs.msg import PointCloud2, PointField

    xyz, ring = decoded_range_image_to_points(x_hat, spec)
    points = np.zeros(ring.size, dtype=_RING_POINT)  # (N,) structured, 16 bytes a point
    points["x"], points["y"], points["z"], points["ring"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], ring
    msg = PointCloud2()
    msg.header = _header(frame_id, stamp)
    msg.height, msg.width = 1, int(ring.size)
    msg.fields = [PointField(name=axis, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, axis in enumerate("xyz")]
    msg.fields.append(PointField(name="ring", offset=12, datatype=PointField.UINT16, count=1))
    msg.is_bigendian = False
    msg.point_step = _RING_POINT.itemsize
    msg.row_step = _RING_POINT.itemsize * int(ring.size)
    msg.is_dense = True
    msg.data = _to_bytes_array(points)
    return msg
