"""sensor_msgs/Image and CompressedImage <-> (H, W, C) arrays: every common encoding, row padding (`step`),
decompression bombs refused from the header before decoding.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vae_ros.core.conversions.common import _as_uint8, _header, _to_bytes_array, _uint_field
from vae_ros.core.errors import InputError
from vae_ros.core.image_header import DEFAULT_MAX_IMAGE_PIXELS, check_declared_size


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
    pixels, order = image_msg_pixels(msg)
    if order in ("rgb", "mono"):
        return pixels if order == "mono" else pixels.copy()
    return cv2.cvtColor(pixels, _TO_RGB[order])  # ~30x faster than a strided NumPy copy


# cv2 conversions of 8-bit colour pixels in a message's channel order to RGB (alpha dropped).
_TO_RGB = {"bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB, "bgra": cv2.COLOR_BGRA2RGB}


def image_msg_pixels(msg: Any) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image -> (pixels, channel order), checked like image_msg_to_array but not converted.

    8-bit colour: an (H, W, 3|4) uint8 view of the message's bytes (strided where rows are padded) and its
    order, "rgb", "bgr", "rgba" or "bgra": for preprocessing that swaps channels itself, on a GPU
    (vae_ros.core.preprocess_torch), so the host never touches the pixels. Single channel: the (H, W) array
    image_msg_to_array gives (its own memory), and "mono".
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
        return np.array(np.ascontiguousarray(rows).view(wire).reshape(height, width), dtype=spec.dtype), "mono"

    pixels = rows.reshape(height, width, spec.channels)  # (H, W, C) view, strided when padded
    if spec.order == "mono":
        return pixels[:, :, 0].copy(), "mono"  # (H, W)
    return pixels, spec.order


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
