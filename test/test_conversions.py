"""vae_ros.core.conversions: message <-> array, on rclpy messages and on rosbags' deserialised dataclasses.

Plain pytest: rclpy message classes construct without rclpy.init. Input messages for the decoders are
built byte by byte here (not with the module's own builders), so a round trip cannot hide a symmetric bug.
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from probe import header
from rclpy.serialization import serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image, LaserScan, PointCloud2, PointField
from std_msgs.msg import Float32MultiArray, MultiArrayDimension

from vae_ros.core.config import ImageSpec, ModelConfig, PointCloudSpec, ScanSpec
from vae_ros.core.conversions.common import checked_planar_pose, path_msg, planar_pose
from vae_ros.core.conversions.image import (
    array_to_compressed_msg,
    array_to_image_msg,
    compressed_msg_to_array,
    image_msg_to_array,
)
from vae_ros.core.conversions.latent import (
    latent_rows_to_msg,
    latent_to_msg,
    latent_to_stamped_msg,
    msg_to_latent,
    msg_to_latent_rows,
    stamped_msg_to_latent,
)
from vae_ros.core.conversions.lidar import (
    NO_RETURN_FRACTION,
    decoded_to_pointcloud_msg,
    decoded_to_scan_msg,
    pointcloud_msg_to_xyz,
    scan_msg_to_input,
    scan_to_msg,
    xyz_to_pointcloud_msg,
)
from vae_ros.core.conversions.model_input import message_kind, msg_to_model_input
from vae_ros.core.errors import InputError
from vae_ros.core.preprocess import preprocess_image, preprocess_pointcloud, preprocess_scan

TYPESTORE = get_typestore(Stores.ROS2_KILTED)


def _picture(height: int = 12, width: int = 20) -> np.ndarray:
    """A smooth RGB test picture (gradients compress well, so JPEG stays close), (H, W, 3) uint8."""
    yy, xx = np.mgrid[0:height, 0:width]
    red = xx * 255 // max(width - 1, 1)
    green = yy * 255 // max(height - 1, 1)
    blue = (xx + yy) * 255 // (width + height - 2)
    return np.stack([red, green, blue], axis=2).astype(np.uint8)


def _image_msg(pixels: np.ndarray, encoding: str, pad: int = 0, big: bool = False) -> Image:
    """Hand-built Image: rows of raw bytes (in the byte order asked) plus `pad` junk bytes per row."""
    height, width = pixels.shape[:2]
    raw = pixels.astype(pixels.dtype.newbyteorder(">" if big else "<")).reshape(height, -1).view(np.uint8)
    rows = np.concatenate([raw, np.full((height, pad), 0xAB, dtype=np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big), step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


def _bag_roundtrip(msg: object, msgtype: str) -> object:
    """The message as a rosbag reader sees it: CDR bytes deserialised by rosbags (data are ndarrays)."""
    return TYPESTORE.deserialize_cdr(serialize_message(msg), msgtype)


# ---------------------------------------------------------------------------------------------------------
# Module hygiene
# ---------------------------------------------------------------------------------------------------------
def test_import_leaves_rclpy_and_message_packages_out() -> None:
    code = (
        "import sys, vae_ros.core.conversions.common, vae_ros.core.conversions.image, "
        "vae_ros.core.conversions.lidar, vae_ros.core.conversions.latent, vae_ros.core.conversions.model_input\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'std_msgs')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------
# Image
# ---------------------------------------------------------------------------------------------------------
def test_same_picture_in_every_colour_form_decodes_identically() -> None:
    rgb = _picture()
    bgr = rgb[:, :, ::-1]
    alpha = np.full(rgb.shape[:2] + (1,), 7, dtype=np.uint8)
    forms = {
        "rgb8": _image_msg(rgb, "rgb8"),
        "bgr8": _image_msg(bgr, "bgr8"),
        "8UC3": _image_msg(bgr, "8UC3"),
        "rgba8": _image_msg(np.concatenate([rgb, alpha], axis=2), "rgba8"),
        "bgra8": _image_msg(np.concatenate([bgr, alpha], axis=2), "bgra8"),
        "rgb8 padded": _image_msg(rgb, "rgb8", pad=5),
        "bgr8 padded": _image_msg(bgr, "bgr8", pad=3),
        "rgba8 padded": _image_msg(np.concatenate([rgb, alpha], axis=2), "rgba8", pad=4),
    }
    for name, msg in forms.items():
        out = image_msg_to_array(msg)
        assert out.dtype == np.uint8 and out.shape == rgb.shape, name
        np.testing.assert_array_equal(out, rgb, err_msg=name)

    png = _compressed(cv2.imencode(".png", bgr)[1], "png")
    np.testing.assert_array_equal(compressed_msg_to_array(png), rgb)
    jpeg = _compressed(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], "rgb8; jpeg compressed bgr8")
    decoded = compressed_msg_to_array(jpeg)
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 4.0


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_sixteen_bit_honours_byte_order_and_padding(encoding: str, big: bool) -> None:
    depth = (np.arange(6 * 9, dtype=np.uint16).reshape(6, 9) * 1201).astype(np.uint16)  # both bytes vary
    out = image_msg_to_array(_image_msg(depth, encoding, pad=2, big=big))
    assert out.dtype == np.uint16 and out.dtype.isnative
    np.testing.assert_array_equal(out, depth)


@pytest.mark.parametrize("big", [False, True])
def test_float_depth_honours_byte_order_and_padding(big: bool) -> None:
    depth = np.linspace(0.0, 7.5, 5 * 8, dtype=np.float32).reshape(5, 8)
    depth[1, 2] = np.nan  # left for preprocessing to judge
    out = image_msg_to_array(_image_msg(depth, "32FC1", pad=4, big=big))
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, depth)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_with_padding(encoding: str) -> None:
    grey = np.arange(7 * 11, dtype=np.uint8).reshape(7, 11)
    np.testing.assert_array_equal(image_msg_to_array(_image_msg(grey, encoding, pad=1)), grey)


def test_result_owns_its_memory() -> None:
    rgb = _picture()
    msg = _image_msg(rgb, "rgb8")
    out = image_msg_to_array(msg)
    out[:] = 0
    np.testing.assert_array_equal(image_msg_to_array(msg), rgb)


def test_trailing_bytes_beyond_step_times_height_are_accepted() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    msg = _image_msg(grey, "mono8")
    msg.data = grey.tobytes() + b"\x00\x01\x02"
    np.testing.assert_array_equal(image_msg_to_array(msg), grey)


def test_duck_typed_message_with_list_data() -> None:
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    msg = SimpleNamespace(height=2, width=3, encoding="mono8", is_bigendian=0, step=3, data=grey.ravel().tolist())
    np.testing.assert_array_equal(image_msg_to_array(msg), grey)


def _bad_image(**changes: object) -> SimpleNamespace:
    fields: dict[str, object] = dict(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=bytes(18))
    fields.update(changes)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    ("msg", "needle"),
    [
        (_bad_image(encoding="yuv422"), "not supported"),
        (_bad_image(encoding=""), "not supported"),
        (_bad_image(height=0, data=b""), "height and width"),
        (_bad_image(width=0, step=0), "height and width"),
        (_bad_image(step=8), "step 8 is smaller"),
        (_bad_image(data=bytes(17)), "17 bytes"),
        (_bad_image(encoding="mono16", step=6, data=bytes(11)), "11 bytes"),
        (_bad_image(encoding="32FC1", step=11), "step 11 is smaller"),
        (_bad_image(data=[0, 1, 300] * 6), "bytes 0..255"),
        (_bad_image(data=np.zeros(18, dtype=np.float32)), "uint8"),
        (_bad_image(data=None), "bytes-like"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_malformed_images_raise_input_error(msg: SimpleNamespace, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        image_msg_to_array(msg)


@pytest.mark.parametrize(
    ("encoding", "pixels"),
    [
        ("rgb8", _picture()),
        ("bgr8", _picture()),
        ("8UC3", _picture()),
        ("rgba8", _picture()),
        ("bgra8", _picture()),
        ("mono8", _picture()[:, :, 0]),
        ("8UC1", _picture()[:, :, 1]),
        ("mono16", (np.arange(240, dtype=np.uint16).reshape(12, 20) * 273).astype(np.uint16)),
        ("16UC1", (np.arange(240, dtype=np.uint16).reshape(12, 20) * 271).astype(np.uint16)),
        ("32FC1", np.linspace(-1.0, 3.0, 240, dtype=np.float32).reshape(12, 20)),
    ],
)
def test_builder_round_trip_every_encoding(encoding: str, pixels: np.ndarray) -> None:
    stamp = Time(sec=12, nanosec=345)
    msg = array_to_image_msg(pixels, encoding, frame_id="camera", stamp=stamp)
    assert isinstance(msg, Image)
    assert (msg.encoding, msg.height, msg.width, msg.header.frame_id) == (encoding, 12, 20, "camera")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
    assert msg.step * msg.height == len(msg.data)
    np.testing.assert_array_equal(image_msg_to_array(msg), pixels)
    # What a bag reader sees decodes identically.
    np.testing.assert_array_equal(image_msg_to_array(_bag_roundtrip(msg, "sensor_msgs/msg/Image")), pixels)


def test_builder_writes_the_documented_byte_layout() -> None:
    rgb = _picture(2, 3)
    bgr_msg = array_to_image_msg(rgb, "bgr8")
    np.testing.assert_array_equal(np.frombuffer(bgr_msg.data, np.uint8).reshape(2, 3, 3), rgb[:, :, ::-1])
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 9, np.uint8)], axis=2)
    bgra_msg = array_to_image_msg(rgba, "bgra8")
    expected = np.concatenate([rgb[:, :, ::-1], np.full((2, 3, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(np.frombuffer(bgra_msg.data, np.uint8).reshape(2, 3, 4), expected)
    opaque = np.frombuffer(array_to_image_msg(rgb, "rgba8").data, np.uint8).reshape(2, 3, 4)
    assert (opaque[:, :, 3] == 255).all()


@pytest.mark.parametrize(
    ("array", "encoding"),
    [
        (np.zeros((4, 4, 3), np.float32), "rgb8"),
        (np.zeros((4, 4), np.uint8), "rgb8"),
        (np.zeros((4, 4, 4), np.uint8), "bgr8"),
        (np.zeros((4, 4, 3), np.uint8), "mono8"),
        (np.zeros((4, 4), np.uint8), "mono16"),
        (np.zeros((4, 4), np.uint16), "32FC1"),
        (np.zeros((0, 4), np.uint8), "mono8"),
        (np.zeros((4, 4), np.uint8), "yuv422"),
    ],
)
def test_image_builder_rejects_mismatched_arrays(array: np.ndarray, encoding: str) -> None:
    with pytest.raises(InputError):
        array_to_image_msg(array, encoding)


# ---------------------------------------------------------------------------------------------------------
# CompressedImage
# ---------------------------------------------------------------------------------------------------------
def _compressed(encoded: np.ndarray | bytes, fmt: str) -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.data = bytes(np.asarray(encoded, dtype=np.uint8).tobytes() if not isinstance(encoded, bytes) else encoded)
    return msg


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_builder_round_trip_colour_and_grey(fmt: str) -> None:
    rgb = _picture(16, 24)
    msg = array_to_compressed_msg(rgb, fmt, frame_id="cam", stamp=Time(sec=3))
    assert msg.format == f"rgb8; {fmt} compressed bgr8" and msg.header.frame_id == "cam"
    tol = 0 if fmt == "png" else 4.0
    for candidate in (msg, _bag_roundtrip(msg, "sensor_msgs/msg/CompressedImage")):
        out = compressed_msg_to_array(candidate)
        assert out.shape == rgb.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - rgb.astype(int)).mean() <= tol
    grey = rgb[:, :, 1]
    grey_msg = array_to_compressed_msg(grey, fmt)
    assert grey_msg.format == f"mono8; {fmt} compressed mono8"
    out = compressed_msg_to_array(grey_msg)
    assert out.shape == grey.shape
    assert np.abs(out.astype(int) - grey.astype(int)).mean() <= tol


def test_mono_original_stored_as_colour_decodes_to_grey() -> None:
    grey = _picture(8, 8)[:, :, 0]
    colour_png = cv2.imencode(".png", cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))[1]
    out = compressed_msg_to_array(_compressed(colour_png, "mono8; png compressed bgr8"))
    assert out.shape == grey.shape
    np.testing.assert_array_equal(out, grey)


def test_sixteen_bit_png_stays_sixteen_bit() -> None:
    depth = (np.arange(100, dtype=np.uint16).reshape(10, 10) * 601).astype(np.uint16)
    msg = array_to_compressed_msg(depth, "png")
    assert msg.format == "mono16; png compressed mono16"
    out = compressed_msg_to_array(msg)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, depth)


def test_compressed_depth_16uc1_skips_the_header() -> None:
    depth = (np.arange(120, dtype=np.uint16).reshape(10, 12) * 499).astype(np.uint16)
    header = struct.pack("<iff", 1, 0.0, 0.0)  # compressed_depth_image_transport's ConfigHeader
    msg = _compressed(header + cv2.imencode(".png", depth)[1].tobytes(), "16UC1; compressedDepth png")
    np.testing.assert_array_equal(compressed_msg_to_array(msg), depth)
    np.testing.assert_array_equal(
        compressed_msg_to_array(_bag_roundtrip(msg, "sensor_msgs/msg/CompressedImage")), depth
    )


def test_compressed_depth_32fc1_undoes_inverse_depth_quantisation() -> None:
    # compressed_depth_image_transport (codec.cpp) with its defaults depth_quantization 100, depth_max 10:
    # A = q (q + 1), B = 1 - A / depth_max, stored value = A / depth + B, 0 = no return.
    quantization, max_depth = 100.0, 10.0
    quant_a = quantization * (quantization + 1.0)
    quant_b = 1.0 - quant_a / max_depth
    depth = np.array([[0.5, 1.0, 2.0], [4.0, 8.0, np.nan]], dtype=np.float32)
    inv = np.zeros(depth.shape, dtype=np.uint16)
    ok = np.isfinite(depth)
    inv[ok] = np.round(quant_a / depth[ok] + quant_b).astype(np.uint16)
    header = struct.pack("<iff", 1, quant_a, quant_b)
    msg = _compressed(header + cv2.imencode(".png", inv)[1].tobytes(), "32FC1; compressedDepth png")
    out = compressed_msg_to_array(msg)
    assert out.dtype == np.float32 and np.isnan(out[1, 2])
    np.testing.assert_allclose(out[ok], depth[ok], rtol=0.005)


@pytest.mark.parametrize(
    ("data", "fmt", "needle"),
    [
        (b"", "jpeg", "no data"),
        (b"not an image at all", "jpeg", "could not be decoded"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "png", "could not be decoded"),
        (b"\x00" * 30, "theora", "not supported"),
        (b"\x00" * 8, "16UC1; compressedDepth png", "12-byte header"),
        (b"\x00" * 40, "16UC1; compressedDepth png", "could not be decoded"),
        (b"\x00" * 40, "32FC1; compressedDepth rvl", "RVL"),
    ],
)
def test_bad_compressed_images_raise_input_error(data: bytes, fmt: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        compressed_msg_to_array(_compressed(data, fmt))


def test_compressed_depth_must_be_sixteen_bit() -> None:
    grey8 = cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes()
    msg = _compressed(struct.pack("<iff", 1, 0, 0) + grey8, "16UC1; compressedDepth png")
    with pytest.raises(InputError, match="16-bit"):
        compressed_msg_to_array(msg)


@pytest.mark.parametrize(
    ("array", "fmt"),
    [
        (np.zeros((4, 4), np.uint16), "jpeg"),
        (np.zeros((4, 4, 3), np.float32), "png"),
        (np.zeros((4, 4, 3), np.uint8), "bmp"),
        (np.zeros((0, 4), np.uint8), "png"),
    ],
)
def test_compressed_builder_rejects_what_it_cannot_encode(array: np.ndarray, fmt: str) -> None:
    with pytest.raises(InputError):
        array_to_compressed_msg(array, fmt)


# ---------------------------------------------------------------------------------------------------------
# LaserScan
# ---------------------------------------------------------------------------------------------------------
def test_scan_decodes_like_preprocess_scan_and_from_a_bag() -> None:
    spec = ScanSpec(beams=64, range_max=8.0)
    rng = np.random.default_rng(1)
    ranges = rng.uniform(0.05, 12.0, 181).astype(np.float32)
    ranges[[3, 50]] = [np.inf, np.nan]
    msg = scan_to_msg(ranges, -math.pi / 2, math.pi / 180, 0.1, 10.0, frame_id="laser")
    assert isinstance(msg, LaserScan)
    assert math.isclose(msg.angle_max, math.pi / 2, abs_tol=1e-5) and len(msg.ranges) == 181
    # LaserScan angles are float32 on the wire: the decoder must use the message's values, as here.
    expected = preprocess_scan(ranges, msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max, spec)
    assert expected[1].sum() < 64  # the inf, NaN and out-of-range beams leave gaps
    np.testing.assert_array_equal(scan_msg_to_input(msg, spec), expected)
    np.testing.assert_array_equal(
        scan_msg_to_input(_bag_roundtrip(msg, "sensor_msgs/msg/LaserScan"), spec), expected
    )


def test_scan_accepts_angle_max_one_increment_past_the_last_beam() -> None:
    msg = scan_to_msg(np.ones(360), -math.pi, 2 * math.pi / 360, 0.1, 10.0)
    msg.angle_max = math.pi  # drivers that count 360 beams over a full turn
    assert scan_msg_to_input(msg, ScanSpec())[1].all()


def _scan(**changes: object) -> SimpleNamespace:
    fields: dict[str, object] = dict(
        angle_min=-1.0, angle_max=1.0, angle_increment=0.02, range_min=0.1, range_max=10.0, ranges=[1.0] * 101
    )
    fields.update(changes)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    ("msg", "needle"),
    [
        (_scan(ranges=[]), "no ranges"),
        (_scan(angle_increment=0.0), "non-zero"),
        (_scan(angle_increment=float("nan")), "finite"),
        (_scan(angle_min=float("inf")), "finite"),
        (_scan(ranges=[1.0] * 50), "50 ranges"),
        (_scan(angle_increment=-0.02), "needs about"),
        (_scan(range_max=float("nan")), "range limits"),
        (_scan(range_min=5.0, range_max=1.0), "range limits"),
        (_scan(ranges=["a"] * 101), "sequence of numbers"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_malformed_scans_raise_input_error(msg: SimpleNamespace, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        scan_msg_to_input(msg, ScanSpec(beams=64))


# ---------------------------------------------------------------------------------------------------------
# PointCloud2
# ---------------------------------------------------------------------------------------------------------
def _cloud_msg(
    xyz: np.ndarray,
    height: int,
    layout: list[tuple[str, int, str]],
    point_step: int,
    row_pad: int = 0,
    big: bool = False,
) -> PointCloud2:
    """Hand-built PointCloud2: `layout` = (name, offset, numpy type) per field; other bytes are junk."""
    n = xyz.shape[0]
    width = n // height
    order = ">" if big else "<"
    dtype = np.dtype(
        {
            "names": [name for name, _, _ in layout],
            "formats": [order + fmt for _, _, fmt in layout],
            "offsets": [offset for _, offset, _ in layout],
            "itemsize": point_step,
        }
    )
    points = np.zeros(n, dtype=dtype)
    points.view(np.uint8)[:] = 0xCD  # junk between fields
    for i, name in enumerate("xyz"):
        points[name] = xyz[:, i]
    for name, _, _ in layout:
        if name not in "xyz":
            points[name] = 42
    rows = points.view(np.uint8).reshape(height, width * point_step)
    rows = np.concatenate([rows, np.full((height, row_pad), 0xEE, np.uint8)], axis=1)
    type_ids = {"f4": PointField.FLOAT32, "f8": PointField.FLOAT64, "u2": PointField.UINT16}
    msg = PointCloud2(height=height, width=width, point_step=point_step, row_step=rows.shape[1])
    msg.is_bigendian = big
    msg.fields = [PointField(name=nm, offset=off, datatype=type_ids[fmt], count=1) for nm, off, fmt in layout]
    msg.data = rows.tobytes()
    return msg


CLOUD_LAYOUTS = {
    "packed float32": ([("x", 0, "f4"), ("y", 4, "f4"), ("z", 8, "f4")], 12),
    "velodyne-like padded": ([("x", 0, "f4"), ("y", 4, "f4"), ("z", 8, "f4"), ("intensity", 16, "f4")], 32),
    "float64": ([("x", 0, "f8"), ("y", 8, "f8"), ("z", 16, "f8")], 24),
    "odd offsets, reordered, mixed": ([("ring", 0, "u2"), ("z", 3, "f8"), ("x", 13, "f4"), ("y", 17, "f8")], 27),
}


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize(("height", "row_pad"), [(1, 0), (4, 0), (4, 7)])
@pytest.mark.parametrize("name", list(CLOUD_LAYOUTS))
def test_pointcloud_layouts(name: str, height: int, row_pad: int, big: bool) -> None:
    layout, point_step = CLOUD_LAYOUTS[name]
    xyz = np.random.default_rng(2).normal(scale=5.0, size=(24, 3)).astype(np.float32)
    xyz[5] = np.nan  # passes through; preprocessing drops it
    msg = _cloud_msg(xyz, height, layout, point_step, row_pad=row_pad, big=big)
    out = pointcloud_msg_to_xyz(msg)
    assert out.dtype == np.float32 and out.shape == (24, 3)
    np.testing.assert_array_equal(out, xyz)  # row-major order kept for organised clouds
    np.testing.assert_array_equal(
        pointcloud_msg_to_xyz(_bag_roundtrip(msg, "sensor_msgs/msg/PointCloud2")), xyz
    )


def test_pointcloud_builder_round_trip() -> None:
    xyz = np.random.default_rng(3).normal(size=(50, 3))
    msg = xyz_to_pointcloud_msg(xyz, frame_id="lidar", stamp=Time(sec=1, nanosec=2))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (1, 50, 12, 600, True)
    np.testing.assert_array_equal(pointcloud_msg_to_xyz(msg), xyz.astype(np.float32))
    xyz[0, 0] = np.nan
    assert xyz_to_pointcloud_msg(xyz).is_dense is False
    empty = xyz_to_pointcloud_msg(np.zeros((0, 3)))
    assert pointcloud_msg_to_xyz(empty).shape == (0, 3)


def _bad_cloud(**changes: object) -> SimpleNamespace:
    fields = [SimpleNamespace(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    base: dict[str, object] = dict(
        height=2, width=3, point_step=12, row_step=36, is_bigendian=False, fields=fields, data=bytes(72)
    )
    base.update(changes)
    return SimpleNamespace(**base)


def _fields(**override: dict[str, int]) -> list[SimpleNamespace]:
    out = []
    for i, name in enumerate("xyz"):
        values = dict(name=name, offset=4 * i, datatype=7, count=1)
        values.update(override.get(name, {}))
        out.append(SimpleNamespace(**values))
    return out


@pytest.mark.parametrize(
    ("msg", "needle"),
    [
        (_bad_cloud(fields=_fields()[:2]), "no 'z' field"),
        (_bad_cloud(fields=[]), "no 'x' field"),
        (_bad_cloud(fields=_fields(y={"datatype": 4})), "datatype 4"),
        (_bad_cloud(fields=_fields(x={"count": 3})), "count 3"),
        (_bad_cloud(fields=_fields(z={"offset": 10})), "does not fit"),
        (_bad_cloud(point_step=8, row_step=24), "does not fit"),
        (_bad_cloud(row_step=30), "row_step 30"),
        (_bad_cloud(data=bytes(71)), "71 bytes"),
        (_bad_cloud(data=None), "bytes-like"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_malformed_clouds_raise_input_error(msg: SimpleNamespace, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        pointcloud_msg_to_xyz(msg)


def test_single_row_cloud_tolerates_a_zero_row_step() -> None:
    msg = _bad_cloud(height=1, width=6, row_step=0, data=np.arange(18, dtype="<f4").tobytes())
    np.testing.assert_array_equal(pointcloud_msg_to_xyz(msg), np.arange(18, dtype=np.float32).reshape(6, 3))


# ---------------------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------------------
def _configs() -> dict[str, ModelConfig]:
    return {
        "image": ModelConfig(modality="image", image=ImageSpec(height=16, width=32, channels=3)),
        "scan": ModelConfig(modality="scan", scan=ScanSpec(beams=64)),
        "pointcloud": ModelConfig(modality="pointcloud", pointcloud=PointCloudSpec(rows=8, cols=32)),
    }


def _sample_messages() -> dict[str, object]:
    rgb = _picture(24, 40)
    ring = np.stack([np.cos(np.linspace(-3, 3, 200)), np.sin(np.linspace(-3, 3, 200)), np.zeros(200)], axis=1) * 3
    return {
        "image": _image_msg(rgb[:, :, ::-1], "bgr8", pad=2),
        "compressed": array_to_compressed_msg(rgb, "png"),
        "scan": scan_to_msg(np.full(90, 2.0), -math.pi, 2 * math.pi / 90, 0.1, 10.0),
        "pointcloud": xyz_to_pointcloud_msg(ring),
    }


def test_msg_to_model_input_matches_the_preprocess_path_for_each_kind() -> None:
    configs, msgs = _configs(), _sample_messages()
    rgb = _picture(24, 40)
    expected_image = preprocess_image(rgb, configs["image"].image_spec)
    for kind, msg in msgs.items():
        assert message_kind(msg) == kind
        modality = "image" if kind == "compressed" else kind
        config = configs[modality]
        out = msg_to_model_input(msg, config)
        assert out.shape == config.input_shape and out.dtype == np.float32, kind
        bag_msg = _bag_roundtrip(msg, f"sensor_msgs/msg/{type(msg).__name__}")
        np.testing.assert_array_equal(msg_to_model_input(bag_msg, config), out, err_msg=kind)
        if modality == "image":
            np.testing.assert_array_equal(out, expected_image)
    np.testing.assert_array_equal(
        msg_to_model_input(msgs["pointcloud"], configs["pointcloud"]),
        preprocess_pointcloud(pointcloud_msg_to_xyz(msgs["pointcloud"]), configs["pointcloud"].pointcloud_spec),
    )


@pytest.mark.parametrize(
    ("kind", "modality"),
    [("image", "scan"), ("compressed", "pointcloud"), ("scan", "image"), ("pointcloud", "scan")],
)
def test_msg_to_model_input_rejects_the_wrong_modality(kind: str, modality: str) -> None:
    with pytest.raises(InputError, match=f"modality is '{modality}'"):
        msg_to_model_input(_sample_messages()[kind], _configs()[modality])


def test_msg_to_model_input_rejects_non_sensor_messages() -> None:
    with pytest.raises(InputError, match="not a supported sensor message"):
        msg_to_model_input(Float32MultiArray(), _configs()["image"])


# ---------------------------------------------------------------------------------------------------------
# Latent
# ---------------------------------------------------------------------------------------------------------
def test_latent_mean_only_layout() -> None:
    mean = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    msg = latent_to_msg(mean)
    assert [(d.label, d.size, d.stride) for d in msg.layout.dim] == [("latent", 3, 3)]
    np.testing.assert_array_equal(np.asarray(msg.data), mean)
    for candidate in (msg, _bag_roundtrip(msg, "std_msgs/msg/Float32MultiArray")):
        got_mean, got_logvar = msg_to_latent(candidate, expected_dim=3)
        np.testing.assert_array_equal(got_mean, mean)
        assert got_logvar is None


def test_latent_with_variance_layout() -> None:
    mean = np.arange(4, dtype=np.float32)
    logvar = -np.arange(4, dtype=np.float32) - 1
    msg = latent_to_msg(mean[None, :], logvar)
    assert [(d.label, d.size, d.stride) for d in msg.layout.dim] == [("stat", 2, 8), ("latent", 4, 4)]
    np.testing.assert_array_equal(np.asarray(msg.data), np.concatenate([mean, logvar]))
    for candidate in (msg, _bag_roundtrip(msg, "std_msgs/msg/Float32MultiArray")):
        got_mean, got_logvar = msg_to_latent(candidate)
        np.testing.assert_array_equal(got_mean, mean)
        assert got_logvar is not None
        np.testing.assert_array_equal(got_logvar, logvar)


def test_latent_with_bare_data_reads_as_means() -> None:
    mean, logvar = msg_to_latent(Float32MultiArray(data=[1.0, 2.0]), expected_dim=2)
    np.testing.assert_array_equal(mean, [1.0, 2.0])
    assert logvar is None


def _latent(dims: list[tuple[str, int, int]], data: list[float], offset: int = 0) -> Float32MultiArray:
    msg = Float32MultiArray(data=data)
    msg.layout.dim = [MultiArrayDimension(label=lb, size=sz, stride=st) for lb, sz, st in dims]
    msg.layout.data_offset = offset
    return msg


def test_latent_honours_data_offset() -> None:
    mean, _ = msg_to_latent(_latent([("latent", 2, 2)], [9.0, 1.0, 2.0], offset=1))
    np.testing.assert_array_equal(mean, [1.0, 2.0])


@pytest.mark.parametrize(
    ("msg", "expected_dim", "needle"),
    [
        (_latent([("z", 3, 3)], [0.0] * 3), None, "not the contract's"),
        (_latent([("latent", 3, 1)], [0.0] * 3), None, "not the contract's"),
        (_latent([("stat", 3, 9), ("latent", 3, 3)], [0.0] * 9), None, "not the contract's"),
        (_latent([("stat", 2, 4), ("latent", 3, 3)], [0.0] * 6), None, "not the contract's"),
        (_latent([("latent", 3, 3), ("stat", 2, 6)], [0.0] * 6), None, "not the contract's"),
        (_latent([("a", 1, 1)] * 3, [0.0]), None, "not the contract's"),
        (_latent([("latent", 3, 3)], [0.0] * 4), None, "data holds 4"),
        (_latent([("stat", 2, 6), ("latent", 3, 3)], [0.0] * 5), None, "data holds 5"),
        (_latent([("latent", 0, 0)], []), None, "at least 1"),
        (_latent([("latent", 3, 3)], [0.0] * 3), 16, "model expects 16"),
        (_latent([("latent", 2, 2)], [0.0, float("nan")]), None, "NaN"),
        (_latent([("stat", 2, 4), ("latent", 2, 2)], [0.0, 0.0, float("inf"), 0.0]), None, "NaN"),
        (_latent([("latent", 2, 2)], [0.0, 1.0], offset=5), None, "data_offset"),
        (_latent([], []), None, "at least 1"),
    ],
)
def test_bad_latents_raise_input_error(msg: Float32MultiArray, expected_dim: int | None, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        msg_to_latent(msg, expected_dim=expected_dim)


@pytest.mark.parametrize(
    ("mean", "logvar"),
    [
        (np.zeros(0), None),
        (np.zeros((2, 3)), None),
        (np.array([0.0, np.nan]), None),
        (np.zeros(3), np.zeros(4)),
        (np.zeros(3), np.array([0.0, np.inf, 0.0])),
    ],
)
def test_latent_builder_rejects_bad_vectors(mean: np.ndarray, logvar: np.ndarray | None) -> None:
    with pytest.raises(InputError):
        latent_to_msg(mean, logvar)


# ---------------------------------------------------------------------------------------------------------
# Stamps
# ---------------------------------------------------------------------------------------------------------
def test_builders_accept_rclpy_and_rosbags_stamps() -> None:
    from rclpy.time import Time as RclpyTime

    grey = np.zeros((2, 2), np.uint8)
    msg = array_to_image_msg(grey, "mono8", stamp=RclpyTime(seconds=5, nanoseconds=7))
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 7)
    bag_time = TYPESTORE.types["builtin_interfaces/msg/Time"](sec=8, nanosec=9)
    msg = array_to_image_msg(grey, "mono8", stamp=bag_time)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (8, 9)
    with pytest.raises(InputError, match="stamp"):
        array_to_image_msg(grey, "mono8", stamp=12.5)


# ---------------------------------------------------------------------------------------------------------
# Stamped latents (sensor_msgs/Image 32FC1)
# ---------------------------------------------------------------------------------------------------------
def _sensor_header(sec: int = 1_700_000_123, nanosec: int = 456_789, frame_id: str = "robot1/laser") -> object:
    return header(frame_id, sec * 1_000_000_000 + nanosec)


def test_stamped_latent_mean_only_layout_and_header() -> None:
    mean = np.array([0.5, -1.0, 2.0, 3.25], dtype=np.float32)
    msg = latent_to_stamped_msg(mean, None, _sensor_header())
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("32FC1", 1, 4, 16, 0)
    assert bytes(msg.data) == mean.astype("<f4").tobytes()  # little-endian whatever the host
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (1_700_000_123, 456_789,
                                                                                       "robot1/laser")
    for candidate in (msg, _bag_roundtrip(msg, "sensor_msgs/msg/Image")):
        got_mean, got_logvar, header = stamped_msg_to_latent(candidate, expected_dim=4)
        np.testing.assert_array_equal(got_mean, mean)
        assert got_logvar is None
        assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1_700_000_123, 456_789, "robot1/laser")


def test_stamped_latent_with_variance_is_two_rows() -> None:
    mean = np.arange(5, dtype=np.float32)
    logvar = -np.arange(5, dtype=np.float32) - 0.5
    msg = latent_to_stamped_msg(mean[None, :], logvar, _sensor_header())
    assert (msg.height, msg.width, msg.step) == (2, 5, 20)
    # It is an ordinary 32FC1 image: row 0 the means, row 1 the log-variances.
    np.testing.assert_array_equal(image_msg_to_array(msg), np.stack([mean, logvar]))
    got_mean, got_logvar, _ = stamped_msg_to_latent(_bag_roundtrip(msg, "sensor_msgs/msg/Image"))
    np.testing.assert_array_equal(got_mean, mean)
    assert got_logvar is not None
    np.testing.assert_array_equal(got_logvar, logvar)


def test_stamped_latent_copies_a_rosbags_header() -> None:
    # The encoder decodes its input with rosbags: its header is a dataclass that rclpy cannot publish.
    scan = scan_to_msg(np.ones(8, np.float32), -1.0, 0.25, 0.1, 5.0, frame_id="base_scan",
                            stamp=Time(sec=42, nanosec=7))
    bag_scan = _bag_roundtrip(scan, "sensor_msgs/msg/LaserScan")
    msg = latent_to_stamped_msg(np.zeros(3, np.float32), None, bag_scan.header)  # type: ignore[attr-defined]
    assert isinstance(msg.header.stamp, Time)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (42, 7, "base_scan")
    serialize_message(msg)  # publishable
    assert latent_to_stamped_msg(np.zeros(3, np.float32)).header.frame_id == ""


def test_latent_rows_roundtrip_one_latent_per_row() -> None:
    # world_model/planned_latents: a plan's predicted latents, one row per planned step, stamped like its input.
    rows = np.arange(12, dtype=np.float32).reshape(4, 3) * 0.5 - 1.0
    msg = latent_rows_to_msg(rows, _sensor_header())
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("32FC1", 4, 3, 12, 0)
    for candidate in (msg, _bag_roundtrip(msg, "sensor_msgs/msg/Image")):
        got, header = msg_to_latent_rows(candidate, expected_dim=3)
        np.testing.assert_array_equal(got, rows)
        assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1_700_000_123, 456_789, "robot1/laser")
    with pytest.raises(InputError, match="expects 4"):
        msg_to_latent_rows(msg, expected_dim=4)
    with pytest.raises(InputError, match="NaN"):
        latent_rows_to_msg(np.full((2, 3), np.nan))
    with pytest.raises(InputError, match="encoding"):
        msg_to_latent_rows(Image(height=1, width=3, encoding="rgb8", step=9, data=bytes(9)))


def test_stamped_latent_honours_big_endian() -> None:
    values = np.array([[1.5, -2.0, 3.0]], dtype=np.float32)
    msg = Image(height=1, width=3, encoding="32FC1", is_bigendian=1, step=12)
    msg.data = values.astype(">f4").tobytes()
    mean, logvar, _ = stamped_msg_to_latent(msg)
    np.testing.assert_array_equal(mean, values[0])
    assert logvar is None


def _stamped(width: int = 3, height: int = 1, encoding: str = "32FC1", step: int | None = None,
             values: list[float] | None = None, extra: int = 0) -> Image:
    data = np.asarray(values if values is not None else [0.25] * (width * height), dtype="<f4").tobytes()
    msg = Image(height=height, width=width, encoding=encoding, step=4 * width if step is None else step)
    msg.data = data + b"\0" * extra
    return msg


@pytest.mark.parametrize(
    ("msg", "expected_dim", "needle"),
    [
        (_stamped(encoding="mono8"), None, "encoding 'mono8'"),
        (_stamped(encoding="32FC2"), None, "encoding '32FC2'"),
        (_stamped(encoding="64FC1"), None, "encoding '64FC1'"),
        (_stamped(height=3), None, "height 3"),
        (_stamped(height=0, values=[]), None, "height 0"),
        (_stamped(width=0, values=[]), None, "width 0"),
        (_stamped(step=16, extra=4), None, "step 16"),
        (_stamped(values=[0.0, 1.0]), None, "8 bytes"),
        (_stamped(extra=4), None, "16 bytes"),
        (_stamped(width=3), 16, "model expects 16"),
        (_stamped(values=[0.0, float("nan"), 1.0]), None, "NaN"),
        (_stamped(height=2, values=[0.0, 0.0, 0.0, 0.0, float("inf"), 0.0]), None, "NaN"),
    ],
)
def test_bad_stamped_latents_raise_input_error(msg: Image, expected_dim: int | None, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        stamped_msg_to_latent(msg, expected_dim=expected_dim)


def test_stamped_latent_builder_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="NaN"):
        latent_to_stamped_msg(np.array([0.0, np.nan]))
    with pytest.raises(InputError, match="log-variance has 3"):
        latent_to_stamped_msg(np.zeros(2), np.zeros(3))
    with pytest.raises(InputError, match="stamp and frame_id"):
        latent_to_stamped_msg(np.zeros(2), None, header="not a header")


# ---------------------------------------------------------------------------------------------------------
# Decoded LiDAR -> LaserScan / PointCloud2
# ---------------------------------------------------------------------------------------------------------
def test_decoded_scan_has_the_models_geometry_and_inf_for_no_return() -> None:
    spec = ScanSpec(beams=64, angle_min=-math.pi, angle_max=math.pi, range_max=8.0)
    rng = np.random.default_rng(3)
    x_hat = rng.uniform(0.05, 0.9, size=(1, 64)).astype(np.float32)  # (1, beams) as the decoder outputs
    no_return = [3, 10, 40]
    x_hat[0, no_return] = [NO_RETURN_FRACTION, 0.999, 1.0]
    msg = decoded_to_scan_msg(x_hat, spec, frame_id="robot1/laser", stamp=Time(sec=9, nanosec=8))
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("robot1/laser", 9, 8)
    width = 2 * math.pi / 64
    assert msg.angle_min == pytest.approx(-math.pi + width / 2, abs=1e-6)
    assert msg.angle_increment == pytest.approx(width, rel=1e-6)
    assert msg.angle_max == pytest.approx(math.pi - width / 2, abs=1e-5)
    assert (msg.range_min, msg.range_max) == (0.0, 8.0)
    ranges = np.asarray(msg.ranges, dtype=np.float32)
    assert ranges.shape == (64,)
    assert np.isposinf(ranges[no_return]).all()
    valid = np.ones(64, bool)
    valid[no_return] = False
    np.testing.assert_allclose(ranges[valid], x_hat[0, valid] * 8.0, rtol=1e-6)
    # Encoding the decoded scan again finds each beam in its own model bin, and no return stays invalid.
    for candidate in (msg, _bag_roundtrip(msg, "sensor_msgs/msg/LaserScan")):
        again = scan_msg_to_input(candidate, spec)  # (2, beams)
        np.testing.assert_array_equal(again[1], valid.astype(np.float32))
        np.testing.assert_allclose(again[0, valid], x_hat[0, valid], rtol=1e-6)


def test_decoded_scan_of_a_partial_field_of_view() -> None:
    spec = ScanSpec(beams=32, angle_min=-1.0, angle_max=2.2, range_max=5.0)
    x_hat = np.full((1, 32), 0.5, np.float32)
    msg = decoded_to_scan_msg(x_hat, spec)
    assert msg.angle_min == pytest.approx(-1.0 + 0.05, abs=1e-6)
    assert msg.angle_max == pytest.approx(2.2 - 0.05, abs=1e-5)
    np.testing.assert_allclose(scan_msg_to_input(msg, spec)[0], 0.5, rtol=1e-6)


def _cloud_fields(msg: PointCloud2) -> np.ndarray:
    """The cloud's points read by hand from the declared fields (not with the module's reader)."""
    kinds = {PointField.FLOAT32: "<f4", PointField.UINT16: "<u2"}
    dtype = np.dtype({"names": [f.name for f in msg.fields], "formats": [kinds[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    return np.frombuffer(bytes(msg.data), dtype=dtype, count=msg.width)


def test_decoded_cloud_has_xyz_ring_and_no_point_for_no_return() -> None:
    spec = PointCloudSpec(rows=8, cols=32, fov_up_deg=10.0, fov_down_deg=-20.0, range_max=10.0)
    rng = np.random.default_rng(4)
    x_hat = rng.uniform(0.1, 0.8, size=(1, 8, 32)).astype(np.float32)  # (1, rows, cols)
    x_hat[0, 2, 5] = 0.99
    x_hat[0, 7, 31] = 1.0
    x_hat[0, 0, 0] = np.nan
    valid = x_hat[0] < NO_RETURN_FRACTION  # NaN compares False
    msg = decoded_to_pointcloud_msg(x_hat, spec, frame_id="robot1/lidar", stamp=Time(sec=3, nanosec=4))
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("robot1/lidar", 3, 4)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
        ("ring", 12, PointField.UINT16, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, int(valid.sum()), 16, 16 * int(valid.sum()))
    assert msg.is_dense and not msg.is_bigendian
    points = _cloud_fields(msg)
    rows, cols = np.nonzero(valid)
    np.testing.assert_array_equal(points["ring"], rows)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=1), x_hat[0][valid] * 10.0, rtol=1e-5)
    # Row 0 looks up at fov_up, the last row down at fov_down (the rings span the field of view).
    pitch = np.degrees(np.arcsin(xyz[:, 2] / np.linalg.norm(xyz, axis=1)))
    np.testing.assert_allclose(pitch, 10.0 - rows * 30.0 / 7, atol=1e-3)
    # Encoding the decoded cloud again puts every point back into its pixel (the bottom row: see below).
    inner = slice(0, spec.rows - 1)
    for candidate in (msg, _bag_roundtrip(msg, "sensor_msgs/msg/PointCloud2")):
        again = preprocess_pointcloud(pointcloud_msg_to_xyz(candidate), spec)  # (2, rows, cols)
        np.testing.assert_array_equal(again[1][inner], valid[inner].astype(np.float32))
        np.testing.assert_allclose(again[0][inner][valid[inner]], x_hat[0][inner][valid[inner]], rtol=1e-5)


@pytest.mark.xfail(reason="preprocess_pointcloud drops points a rounding error above fov_down: its edge slack "
                          "turns row_f = rows - 1e-7 into row `rows`, outside the image (the simulator's bottom "
                          "ring loses about a third of its points the same way)", strict=False)
def test_decoded_cloud_bottom_row_round_trips() -> None:
    spec = PointCloudSpec(rows=8, cols=32, fov_up_deg=10.0, fov_down_deg=-20.0, range_max=10.0)
    x_hat = np.random.default_rng(4).uniform(0.1, 0.8, size=(1, 8, 32)).astype(np.float32)
    msg = decoded_to_pointcloud_msg(x_hat, spec)
    again = preprocess_pointcloud(pointcloud_msg_to_xyz(msg), spec)
    np.testing.assert_array_equal(again[1][-1], 1.0)


def test_decoded_cloud_without_any_return_is_empty() -> None:
    spec = PointCloudSpec(rows=8, cols=16)
    msg = decoded_to_pointcloud_msg(np.ones((1, 8, 16), np.float32), spec)
    assert (msg.width, len(msg.data)) == (0, 0)
    serialize_message(msg)


@pytest.mark.parametrize("shape", [(1, 63), (2, 64), (64, 1), (1, 1, 64)])
def test_decoded_scan_of_the_wrong_shape_raises_input_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match="decoded LiDAR has shape"):
        decoded_to_scan_msg(np.zeros(shape, np.float32), ScanSpec(beams=64))


def test_decoded_cloud_of_the_wrong_shape_raises_input_error() -> None:
    with pytest.raises(InputError, match="decoded LiDAR has shape"):
        decoded_to_pointcloud_msg(np.zeros((1, 16, 8), np.float32), PointCloudSpec(rows=8, cols=16))


def test_a_compressed_image_declaring_too_many_pixels_is_refused_before_decoding() -> None:
    from hostile_inputs import png_header_only

    bomb = _compressed(png_header_only(32000, 32000), "png")
    with pytest.raises(InputError, match="max_image_pixels"):
        compressed_msg_to_array(bomb)
    with pytest.raises(InputError, match="max_image_pixels"):
        msg_to_model_input(bomb, ModelConfig("image"), max_image_pixels=4096 * 4096)
    small = _compressed(cv2.imencode(".png", np.zeros((40, 50, 3), np.uint8))[1], "png")
    with pytest.raises(InputError, match="40 = 2000 pixels"):
        compressed_msg_to_array(small, max_pixels=1999)
    assert compressed_msg_to_array(small, max_pixels=2000).shape == (40, 50, 3)
    assert compressed_msg_to_array(small, max_pixels=0).shape == (40, 50, 3)  # 0: no limit


@pytest.mark.parametrize("yaw", [0.0, 1.2, -2.5, math.pi - 1e-6])
def test_planar_pose_reads_back_the_simulators_odometry(yaw: float) -> None:
    from vae_ros.ros.sim_messages import odometry_msg
    from vae_ros.sim.world import Pose2D, Velocity2D

    msg = odometry_msg(Pose2D(0.4, -1.1, yaw), Velocity2D(0.0, 0.0, 0.0), Time())
    x, y, read_yaw = planar_pose(msg.pose.pose)
    assert (x, y) == pytest.approx((0.4, -1.1))
    assert read_yaw == pytest.approx(yaw, abs=1e-9)


def test_checked_planar_pose_refuses_nan_and_non_unit_quaternions() -> None:
    from geometry_msgs.msg import Pose

    pose = Pose()
    pose.position.x, pose.position.y = 1.0, -2.0
    pose.orientation.z, pose.orientation.w = math.sin(0.3), math.cos(0.3)
    assert checked_planar_pose(pose) == pytest.approx((1.0, -2.0, 0.6))
    unfilled = Pose()
    unfilled.orientation.w = 0.0  # all zero: not a rotation
    with pytest.raises(InputError, match="unit quaternion"):
        checked_planar_pose(unfilled, "odometry pose")
    pose.position.y = float("nan")
    with pytest.raises(InputError, match="odometry pose holds NaN"):
        checked_planar_pose(pose, "odometry pose")


def test_path_msg_holds_one_pose_per_row_in_the_frame() -> None:
    poses = np.array([[0.0, 0.0, 0.0], [0.25, 0.1, math.pi / 2]])
    msg = path_msg(poses, "odom")
    assert msg.header.frame_id == "odom" and len(msg.poses) == 2
    assert all(p.header.frame_id == "odom" for p in msg.poses)
    assert [planar_pose(p.pose) for p in msg.poses] == [pytest.approx(tuple(row)) for row in poses]
    with pytest.raises(InputError, match="finite"):
        path_msg(np.array([[0.0, np.nan, 0.0]]), "odom")
