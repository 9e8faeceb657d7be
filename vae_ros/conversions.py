"""The one message <-> array module: ROS sensor messages to NumPy arrays and back.

Decoders are duck-typed on message fields, so the same code reads rclpy messages (``data`` is an
``array.array``, ``bytes`` or a list) and rosbags' deserialised dataclasses (``data`` is a NumPy array);
the training data path and the encoder node therefore decode identically. Pixels and points are never
touched in Python loops: buffers are viewed with NumPy and converted with OpenCV.

This module never imports rclpy. Message classes (sensor_msgs, std_msgs) are imported lazily by the
builders only, so decoding works on machines that have rosbags but no ROS 2. Every problem with an input
raises vae_ros.core.errors.InputError, with a message saying what was wrong and what was expected.
"""

from __future__ import annotations

import array as pyarray
import math
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vae_ros.core.config import ModelConfig, PointCloudSpec, ScanSpec
from vae_ros.core.errors import InputError
from vae_ros.core.image_header import DEFAULT_MAX_IMAGE_PIXELS, check_declared_size
from vae_ros.core.preprocess import preprocess_image, preprocess_pointcloud, preprocess_scan

__all__ = [
    "IMAGE_ENCODINGS",
    "NO_RETURN_FRACTION",
    "STAMPED_LATENT_ENCODING",
    "array_to_compressed_msg",
    "array_to_image_msg",
    "compressed_msg_to_array",
    "decoded_range_image_to_points",
    "decoded_scan_ranges",
    "decoded_to_pointcloud_msg",
    "decoded_to_scan_msg",
    "image_msg_to_array",
    "latent_to_msg",
    "latent_to_stamped_msg",
    "latent_rows_to_msg",
    "message_kind",
    "msg_to_latent",
    "msg_to_latent_rows",
    "msg_to_model_input",
    "pointcloud_msg_to_xyz",
    "scan_msg_to_input",
    "scan_to_msg",
    "stamped_msg_to_latent",
    "xyz_to_pointcloud_msg",
]


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


# ---------------------------------------------------------------------------------------------------------
# sensor_msgs/Image
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Encoding:
    dtype: str  # NumPy base type of one channel
    channels: int
    order: str  # rgb, bgr, rgba, bgra or mono


# The encodings vae_ros reads and writes (names from sensor_msgs/image_encodings.hpp).
_ENCODINGS: dict[str, _Encoding] = {
    "rgb8": _Encoding("u1", 3, "rgb"),
    "bgr8": _Encoding("u1", 3, "bgr"),
    "rgba8": _Encoding("u1", 4, "rgba"),
    "bgra8": _Encoding("u1", 4, "bgra"),
    "mono8": _Encoding("u1", 1, "mono"),
    "8UC1": _Encoding("u1", 1, "mono"),
    "8UC3": _Encoding("u1", 3, "bgr"),  # OpenCV's default channel order
    "mono16": _Encoding("u2", 1, "mono"),
    "16UC1": _Encoding("u2", 1, "mono"),
    "32FC1": _Encoding("f4", 1, "mono"),
}
IMAGE_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)


def _lookup_encoding(encoding: Any) -> _Encoding:
    spec = _ENCODINGS.get(str(encoding))
    if spec is None:
        raise InputError(f"image encoding {encoding!r} is not supported; expected one of {', '.join(_ENCODINGS)}")
    return spec


def image_msg_to_array(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> NumPy image that owns its memory.

    (H, W, 3) uint8 RGB for rgb8/bgr8/rgba8/bgra8/8UC3 (alpha dropped); (H, W) uint8 for mono8/8UC1;
    (H, W) uint16 for mono16/16UC1; (H, W) float32 for 32FC1. Row padding (step) and is_bigendian are
    honoured; bytes beyond step * height are ignored.
    """
    spec = _lookup_encoding(getattr(msg, "encoding", None))
    height, width, step = _uint_field(msg, "height"), _uint_field(msg, "width"), _uint_field(msg, "step")
    if height <= 0 or width <= 0:
        raise InputError(f"image must have height and width > 0, got {height}x{width}")
    itemsize = np.dtype(spec.dtype).itemsize
    row_bytes = width * spec.channels * itemsize
    if step < row_bytes:
        raise InputError(
            f"image step {step} is smaller than width * bytes per pixel = {width} * "
            f"{spec.channels * itemsize} = {row_bytes} for {msg.encoding}"
        )
    buf = _as_uint8(getattr(msg, "data", None), "image data")
    if buf.size < step * height:
        raise InputError(f"image data has {buf.size} bytes, expected at least step * height = {step} * {height}")
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]  # (H, row_bytes), a view

    if itemsize > 1:
        big = bool(getattr(msg, "is_bigendian", 0))
        wire = np.dtype(spec.dtype).newbyteorder(">" if big else "<")
        # (H, W) in native byte order; np.array always copies, so the result never aliases the message.
        return np.array(np.ascontiguousarray(rows).view(wire).reshape(height, width), dtype=spec.dtype)

    pixels = rows.reshape(height, width, spec.channels)  # (H, W, C) view, strided when padded
    if spec.order == "rgb":
        return pixels.copy()
    if spec.order == "bgr":
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if spec.order == "rgba":
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)  # ~30x faster than a strided NumPy copy
    if spec.order == "bgra":
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    return pixels[:, :, 0].copy()  # (H, W)


# ---------------------------------------------------------------------------------------------------------
# sensor_msgs/CompressedImage
# ---------------------------------------------------------------------------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# compressed_depth_image_transport prefixes its PNG with ConfigHeader {int32 format; float32 depthParam[2]}.
_DEPTH_HEADER_BYTES = 12
_COMPRESSED_KINDS = ("jpeg", "jpg", "png", "tiff", "tif", "webp")


def _imdecode(buf: np.ndarray, what: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    if max_pixels > 0:  # the declared size first: decoding a 1 MB PNG of 32000x32000 would take gigabytes
        check_declared_size(buf.tobytes(), max_pixels, what)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise InputError(f"{what} could not be decoded: {err}") from err
    if image is None or image.size == 0:
        raise InputError(f"{what} could not be decoded (corrupt or not an image)")
    return image


def _decode_compressed_depth(buf: np.ndarray, fmt: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """compressedDepth payload -> (H, W) uint16 (16UC1) or float32 metres (32FC1, NaN where no return)."""
    if "rvl" in fmt:
        raise InputError(f"compressedDepth format {fmt!r} (RVL) is not supported; expected 'compressedDepth png'")
    if buf[: len(_PNG_SIGNATURE)].tobytes() == _PNG_SIGNATURE:
        header, png = None, buf  # some old publishers wrote no header
    else:
        if buf.size <= _DEPTH_HEADER_BYTES:
            raise InputError(f"compressedDepth data has {buf.size} bytes, expected a 12-byte header and a PNG")
        header, png = buf[:_DEPTH_HEADER_BYTES], buf[_DEPTH_HEADER_BYTES:]
    image = _imdecode(png, "compressedDepth PNG", max_pixels)
    if image.ndim != 2 or image.dtype != np.uint16:
        raise InputError(f"compressedDepth PNG must be single-channel 16-bit, got {image.dtype} {image.shape}")
    if not fmt.startswith("32fc1"):
        return image
    if header is None:
        raise InputError("32FC1 compressedDepth data has no header with the depth quantisation parameters")
    quant_a, quant_b = np.frombuffer(header.tobytes(), dtype="<f4", count=2, offset=4)
    # The publisher stored inverse depth: value = quant_a / depth + quant_b; 0 means no return.
    inv = image.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(quant_a) / (inv - np.float32(quant_b))
    depth[image == 0] = np.nan
    return depth.astype(np.float32)


def compressed_msg_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage -> NumPy image: (H, W, 3) uint8 RGB, (H, W) uint8 grey or (H, W) uint16.

    Reads the ``format`` strings image_transport writes ("jpeg", "png", "rgb8; jpeg compressed bgr8",
    "16UC1; compressedDepth png", ...). compressedDepth yields (H, W) uint16, or float32 metres for 32FC1.
    Images declaring more than max_pixels pixels are refused before decoding (0: no limit).
    """
    fmt = str(getattr(msg, "format", "")).strip().lower()
    buf = _as_uint8(getattr(msg, "data", None), "compressed image data")
    if buf.size == 0:
        raise InputError("compressed image has no data")
    if "compresseddepth" in fmt:
        return _decode_compressed_depth(buf, fmt, max_pixels)
    if fmt and not any(kind in fmt for kind in _COMPRESSED_KINDS):
        raise InputError(f"compressed image format {fmt!r} is not supported; expected jpeg or png")
    image = _imdecode(buf, f"compressed image ({fmt or 'no format'})", max_pixels)
    original = fmt.split(";", 1)[0].strip() if ";" in fmt else ""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
        if original in ("mono8", "8uc1"):
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image


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


# ---------------------------------------------------------------------------------------------------------
# Dispatch: the single path from a sensor message to a model input
# ---------------------------------------------------------------------------------------------------------
_KIND_MODALITY = {"image": "image", "compressed": "image", "scan": "scan", "pointcloud": "pointcloud"}
_KIND_NAMES = {
    "image": "sensor_msgs/Image",
    "compressed": "sensor_msgs/CompressedImage",
    "scan": "sensor_msgs/LaserScan",
    "pointcloud": "sensor_msgs/PointCloud2",
}


def message_kind(msg: Any) -> str:
    """What a message is, from its fields: 'image', 'compressed', 'scan' or 'pointcloud'."""
    if hasattr(msg, "format") and hasattr(msg, "data"):
        return "compressed"
    if hasattr(msg, "ranges") and hasattr(msg, "angle_increment"):
        return "scan"
    if hasattr(msg, "fields") and hasattr(msg, "point_step"):
        return "pointcloud"
    if hasattr(msg, "encoding") and hasattr(msg, "step"):
        return "image"
    raise InputError(
        f"{type(msg).__name__} is not a supported sensor message; expected Image, CompressedImage, "
        "LaserScan or PointCloud2"
    )


def msg_to_model_input(msg: Any, config: ModelConfig,
                       max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Any supported sensor message -> one preprocessed float32 sample shaped config.input_shape.

    The single path used by the encoder node and by training data, so both see identical inputs.
    max_image_pixels bounds what a compressed image may declare (see compressed_msg_to_array).
    """
    kind = message_kind(msg)
    if _KIND_MODALITY[kind] != config.modality:
        raise InputError(f"got a {_KIND_NAMES[kind]}, but the model's modality is {config.modality!r}")
    if kind == "image":
        return preprocess_image(image_msg_to_array(msg), config.image_spec)
    if kind == "compressed":
        return preprocess_image(compressed_msg_to_array(msg, max_image_pixels), config.image_spec)
    if kind == "scan":
        return scan_msg_to_input(msg, config.scan_spec)
    return preprocess_pointcloud(pointcloud_msg_to_xyz(msg), config.pointcloud_spec)


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


def _check_dtype(image: np.ndarray, dtype: str, encoding: str) -> None:
    if image.dtype != np.dtype(dtype):
        raise InputError(f"encoding {encoding} needs a {np.dtype(dtype)} array, got {image.dtype}")


def array_to_image_msg(array: np.ndarray, encoding: str, frame_id: str = "", stamp: Any = None) -> Any:
    """NumPy image -> sensor_msgs/Image in native byte order with no row padding.

    Colour encodings take (H, W, 3) uint8 RGB (rgba8/bgra8 also take (H, W, 4) RGBA; otherwise alpha is
    255); mono8/8UC1 take (H, W) uint8, mono16/16UC1 (H, W) uint16, 32FC1 (H, W) float32 (float64 is cast).
    """
    from sensor_msgs.msg import Image

    spec = _lookup_encoding(encoding)
    image = np.asarray(array)
    if image.ndim == 3 and image.shape[2] == 1 and spec.channels == 1:
        image = image[:, :, 0]
    if spec.channels == 1:
        if image.ndim != 2:
            raise InputError(f"encoding {encoding} needs an (H, W) array, got shape {image.shape}")
        if spec.dtype == "f4" and image.dtype == np.float64:
            image = image.astype(np.float32)
        _check_dtype(image, spec.dtype, encoding)
        pixels = image
    else:
        if image.ndim != 3 or image.shape[2] not in (3, 4) or (image.shape[2] == 4 and spec.channels == 3):
            allowed = "(H, W, 3) RGB" + (" or (H, W, 4) RGBA" if spec.channels == 4 else "")
            raise InputError(f"encoding {encoding} needs an {allowed} array, got shape {image.shape}")
        _check_dtype(image, "u1", encoding)
        if spec.order == "rgb":
            pixels = image
        elif spec.order == "bgr":
            pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        elif spec.order == "rgba":
            pixels = image if image.shape[2] == 4 else cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
        else:
            code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGRA
            pixels = cv2.cvtColor(image, code)
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise InputError(f"image must have height and width > 0, got {height}x{width}")
    msg = Image()
    msg.header = _header(frame_id, stamp)
    msg.height, msg.width = int(height), int(width)
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and pixels.dtype.itemsize > 1)
    msg.step = int(width * spec.channels * pixels.dtype.itemsize)
    msg.data = _to_bytes_array(pixels)
    return msg


def array_to_compressed_msg(
    array: np.ndarray, fmt: str = "jpeg", frame_id: str = "", stamp: Any = None, quality: int = 95
) -> Any:
    """NumPy image -> sensor_msgs/CompressedImage with image_transport's format string.

    Takes (H, W, 3) uint8 RGB or (H, W) uint8 grey for jpeg and png, and (H, W) uint16 for png.
    ``quality`` is the JPEG quality (1..100); PNG is lossless.
    """
    from sensor_msgs.msg import CompressedImage

    kind = fmt.strip().lower()
    if kind == "jpg":
        kind = "jpeg"
    if kind not in ("jpeg", "png"):
        raise InputError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")
    image = np.asarray(array)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        encoding, pixels = "rgb8", cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        compressed_as = "bgr8"
    elif image.ndim == 2 and image.dtype == np.uint8:
        encoding, pixels, compressed_as = "mono8", image, "mono8"
    elif image.ndim == 2 and image.dtype == np.uint16 and kind == "png":
        encoding, pixels, compressed_as = "mono16", image, "mono16"
    else:
        raise InputError(
            f"{kind} needs (H, W, 3) uint8 RGB or (H, W) uint8" + (" or uint16" if kind == "png" else "")
            + f", got {image.dtype} {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image must have height and width > 0, got shape {image.shape}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if kind == "jpeg" else []
    ok, encoded = cv2.imencode(".jpg" if kind == "jpeg" else ".png", np.ascontiguousarray(pixels), params)
    if not ok:
        raise InputError(f"OpenCV could not encode the image as {kind}")
    msg = CompressedImage()
    msg.header = _header(frame_id, stamp)
    msg.format = f"{encoding}; {kind} compressed {compressed_as}"
    msg.data = _to_bytes_array(encoded)
    return msg


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
# Latents (std_msgs/Float32MultiArray, CONTRACT.md "Latent message layout")
# ---------------------------------------------------------------------------------------------------------
def _latent_vector(values: Any, what: str) -> np.ndarray:
    vec = np.asarray(values, dtype=np.float32)
    if vec.ndim == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if vec.ndim != 1 or vec.size == 0:
        raise InputError(f"{what} must be a non-empty (D,) or (1, D) array, got shape {vec.shape}")
    if not np.isfinite(vec).all():
        raise InputError(f"{what} holds NaN or infinite values")
    return vec


def latent_to_msg(mean: np.ndarray, logvar: np.ndarray | None = None) -> Any:
    """(D,) mean [and (D,) log-variance] -> std_msgs/Float32MultiArray in the contract's layout.

    Mean only: dim [latent: D, stride D]. With logvar: dim [stat: 2, stride 2D; latent: D, stride D] and
    data = D means then D log-variances.
    """
    from std_msgs.msg import Float32MultiArray, MultiArrayDimension

    mu = _latent_vector(mean, "latent mean")  # (D,)
    dim = int(mu.size)
    msg = Float32MultiArray()
    if logvar is None:
        msg.layout.dim = [MultiArrayDimension(label="latent", size=dim, stride=dim)]
        msg.data = _to_float_array(mu)
        return msg
    lv = _latent_vector(logvar, "latent log-variance")
    if lv.size != dim:
        raise InputError(f"latent log-variance has {lv.size} values but the mean has {dim}")
    msg.layout.dim = [
        MultiArrayDimension(label="stat", size=2, stride=2 * dim),
        MultiArrayDimension(label="latent", size=dim, stride=dim),
    ]
    msg.data = _to_float_array(np.concatenate([mu, lv]))  # (2D,)
    return msg


_LAYOUT_HELP = (
    "expected dim [{label: latent, size: D, stride: D}] or "
    "[{label: stat, size: 2, stride: 2D}, {label: latent, size: D, stride: D}]"
)


def msg_to_latent(msg: Any, expected_dim: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """std_msgs/Float32MultiArray in the contract's layout -> ((D,) mean, (D,) logvar or None), float32.

    A message with an empty layout is read as D means (what `ros2 topic pub ... "{data: [...]}"` sends).
    """
    layout = getattr(msg, "layout", None)
    dims = list(getattr(layout, "dim", None) or [])
    offset = int(getattr(layout, "data_offset", 0) or 0)
    data = _as_float_array(getattr(msg, "data", None), "latent data")
    if offset < 0 or offset > data.size:
        raise InputError(f"latent layout data_offset {offset} is outside the data ({data.size} values)")
    data = data[offset:]
    described = [(str(d.label), int(d.size), int(d.stride)) for d in dims]
    if not dims:
        stats, dim = 1, int(data.size)
    elif len(dims) == 1 and described[0][0] == "latent" and described[0][2] == described[0][1]:
        stats, dim = 1, described[0][1]
    elif (
        len(dims) == 2
        and described[0][0] == "stat"
        and described[1][0] == "latent"
        and described[0][1] == 2
        and described[1][2] == described[1][1]
        and described[0][2] == 2 * described[1][1]
    ):
        stats, dim = 2, described[1][1]
    else:
        raise InputError(f"latent layout {described} is not the contract's; {_LAYOUT_HELP}")
    if dim <= 0:
        raise InputError(f"latent has size {dim}; expected at least 1 dimension")
    if data.size != stats * dim:
        raise InputError(f"latent layout describes {stats} x {dim} values but data holds {data.size}")
    if expected_dim is not None and dim != expected_dim:
        raise InputError(f"latent has {dim} dimensions but the model expects {expected_dim}")
    if not np.isfinite(data).all():
        raise InputError("latent holds NaN or infinite values")
    mean = data[:dim].copy()
    logvar = data[dim:].copy() if stats == 2 else None
    return mean, logvar


# ---------------------------------------------------------------------------------------------------------
# Stamped latents (sensor_msgs/Image 32FC1, CONTRACT.md "Latent message layout")
# ---------------------------------------------------------------------------------------------------------
STAMPED_LATENT_ENCODING = "32FC1"
_STAMPED_HELP = "expected encoding 32FC1, width D, height 1 (means) or 2 (means, log-variances), step 4·D"


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


def latent_to_stamped_msg(mean: np.ndarray, logvar: np.ndarray | None = None, header: Any = None) -> Any:
    """(D,) mean [and (D,) log-variance] + the input's header -> sensor_msgs/Image in the stamped layout.

    encoding 32FC1, width D, height 1 (means) or 2 (row 0 means, row 1 log-variances), step 4·D,
    little-endian (is_bigendian 0); the header's stamp and frame_id are copied (rclpy or rosbags header).
    """
    mu = _latent_vector(mean, "latent mean")  # (D,)
    rows = [mu]
    if logvar is not None:
        lv = _latent_vector(logvar, "latent log-variance")
        if lv.size != mu.size:
            raise InputError(f"latent log-variance has {lv.size} values but the mean has {mu.size}")
        rows.append(lv)
    return latent_rows_to_msg(np.stack(rows), header)  # (1 or 2, D)


def stamped_msg_to_latent(
    msg: Any, expected_dim: int | None = None
) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """sensor_msgs/Image in the stamped layout -> ((D,) mean, (D,) logvar or None, the message's header).

    Strict about the layout (encoding, height, step, data size), so a camera image sent to the latent
    topic by mistake is rejected rather than read as numbers; is_bigendian is honoured.
    """
    encoding = str(getattr(msg, "encoding", ""))
    if encoding != STAMPED_LATENT_ENCODING:
        raise InputError(f"stamped latent has encoding {encoding!r}; {_STAMPED_HELP}")
    height, width, step = _uint_field(msg, "height"), _uint_field(msg, "width"), _uint_field(msg, "step")
    if height not in (1, 2):
        raise InputError(f"stamped latent has height {height}; {_STAMPED_HELP}")
    if width <= 0:
        raise InputError(f"stamped latent has width {width}; expected at least 1 dimension")
    if step != 4 * width:
        raise InputError(f"stamped latent has step {step} for width {width}; {_STAMPED_HELP}")
    buf = _as_uint8(getattr(msg, "data", None), "stamped latent data")
    if buf.size != step * height:
        raise InputError(f"stamped latent data has {buf.size} bytes, expected step * height = {step * height}")
    if expected_dim is not None and width != expected_dim:
        raise InputError(f"latent has {width} dimensions but the model expects {expected_dim}")
    wire = np.dtype(">f4" if bool(getattr(msg, "is_bigendian", 0)) else "<f4")
    values = np.ascontiguousarray(buf).view(wire).astype(np.float32).reshape(height, width)  # (1 or 2, D)
    if not np.isfinite(values).all():
        raise InputError("latent holds NaN or infinite values")
    header = getattr(msg, "header", None)
    if header is None:
        raise InputError("stamped latent has no header")
    return values[0].copy(), (values[1].copy() if height == 2 else None), header


def latent_rows_to_msg(rows: np.ndarray, header: Any = None) -> Any:
    """(H, D) latents, one per row (e.g. a plan's predicted latents, one per planned step) + a header ->
    sensor_msgs/Image 32FC1 as the stamped layout: width D, height H, step 4·D, little-endian."""
    from sensor_msgs.msg import Image

    values = np.asarray(rows, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 1:
        raise InputError(f"latent rows must be a non-empty (H, D) array, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise InputError("latent rows hold NaN or infinite values")
    msg = Image()
    msg.header = _copy_header(header)
    msg.height, msg.width = int(values.shape[0]), int(values.shape[1])
    msg.encoding = STAMPED_LATENT_ENCODING
    msg.is_bigendian = 0
    msg.step = 4 * int(values.shape[1])
    msg.data = _to_bytes_array(values.astype("<f4"))  # little-endian whatever the host
    return msg


def msg_to_latent_rows(msg: Any, expected_dim: int | None = None) -> tuple[np.ndarray, Any]:
    """sensor_msgs/Image 32FC1 with one latent per row (latent_rows_to_msg) -> ((H, D) float32, its header)."""
    encoding = str(getattr(msg, "encoding", ""))
    if encoding != STAMPED_LATENT_ENCODING:
        raise InputError(f"latent rows have encoding {encoding!r}; expected 32FC1, width D, height H, step 4·D")
    height, width, step = _uint_field(msg, "height"), _uint_field(msg, "width"), _uint_field(msg, "step")
    if height < 1 or width < 1 or step != 4 * width:
        raise InputError(f"latent rows have height {height}, width {width}, step {step}; expected height >= 1, "
                         "width D >= 1, step 4·D")
    buf = _as_uint8(getattr(msg, "data", None), "latent rows data")
    if buf.size != step * height:
        raise InputError(f"latent rows data has {buf.size} bytes, expected step * height = {step * height}")
    if expected_dim is not None and width != expected_dim:
        raise InputError(f"latent rows have {width} dimensions but the model expects {expected_dim}")
    wire = np.dtype(">f4" if bool(getattr(msg, "is_bigendian", 0)) else "<f4")
    values = np.ascontiguousarray(buf).view(wire).astype(np.float32).reshape(height, width)
    if not np.isfinite(values).all():
        raise InputError("latent rows hold NaN or infinite values")
    return values, getattr(msg, "header", None)


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
