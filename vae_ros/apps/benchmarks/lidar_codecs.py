"""The codecs of the LiDAR compression benchmark (vae_ros.apps.benchmarks.compression, whose docstring defines
each row): message -> wire bytes -> reconstruction, for raw CDR, lossless zstd / lz4, quantised ranges, Draco
and the VAE latent, plus the geometry they share (valid beams, points, range-image rays, Chamfer distance).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError, InputError

ZSTD_LEVEL = 3  # zstd's default level: fast enough for a robot's CPU at sensor rates
DRACO_COMPRESSION_LEVEL = 7  # draco_encoder's default
DRACO_BITS = (11, 8)
RANGE_STEPS_M = (0.01, 0.05)
# The low-rate classic row per modality (step m, every k-th beam / column): about the latent's bytes.
LOW_RATE = {"scan": (0.20, 8), "pointcloud": (0.20, 16)}
INT8_SIGMAS = 4.0  # int8 latents cover the prior's +-4 sigma
_MSG_SCAN = "sensor_msgs/msg/LaserScan"
_MSG_CLOUD = "sensor_msgs/msg/PointCloud2"


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by the codecs
# ---------------------------------------------------------------------------------------------------------
def message_class(msgtype: str) -> Any:
    from sensor_msgs.msg import LaserScan, PointCloud2

    return LaserScan if msgtype == _MSG_SCAN else PointCloud2


def _without(msg: Any, field_name: str) -> Any:
    """A copy of msg with one array field emptied: the metadata a receiver needs beside the payload."""
    out = type(msg)()
    for name in msg.get_fields_and_field_types():
        if name != field_name:
            setattr(out, name, getattr(msg, name))
    return out


def _metadata(msg: Any, array_field: str) -> bytes:
    """The array's length (uint32) and the CDR of msg without the array: what a receiver needs beside it."""
    from rclpy.serialization import serialize_message

    return struct.pack("<I", len(getattr(msg, array_field))) + serialize_message(_without(msg, array_field))


def _read_metadata(buf: bytes, msg_class: Any) -> tuple[int, Any]:
    """_metadata's bytes -> (array length, the message without its array)."""
    from rclpy.serialization import deserialize_message

    (length,) = struct.unpack_from("<I", buf, 0)
    return int(length), deserialize_message(buf[4:], msg_class)


def _pack(*parts: bytes) -> bytes:
    """Length-prefixed concatenation (uint32 little-endian lengths, all but the last part)."""
    head = b"".join(struct.pack("<I", len(p)) for p in parts[:-1])
    return head + b"".join(parts)


def _unpack(buf: bytes, count: int) -> list[bytes]:
    lengths = struct.unpack_from(f"<{count - 1}I", buf, 0)
    pos = 4 * (count - 1)
    out = []
    for length in lengths:
        out.append(buf[pos:pos + length])
        pos += length
    out.append(buf[pos:])
    return out


def scan_valid(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """(N,) float32 ranges of a LaserScan and the mask of valid beams (finite, within its own limits)."""
    ranges = np.asarray(msg.ranges, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(ranges) & (ranges >= msg.range_min) & (ranges <= msg.range_max)
    return ranges, valid


def cloud_points(msg: Any) -> np.ndarray:
    """(N, 3) float32 finite, non-zero points of a PointCloud2 (organised clouds mark no return with NaN)."""
    from vae_ros.core.conversions.lidar import pointcloud_msg_to_xyz

    xyz = pointcloud_msg_to_xyz(msg)
    keep = np.isfinite(xyz).all(axis=1) & (np.abs(xyz).sum(axis=1) > 1e-6)
    return np.ascontiguousarray(xyz[keep])


def range_image_directions(spec: Any) -> np.ndarray:
    """(rows, cols, 3) unit rays of a PointCloudSpec's range image, exactly the decoder's.

    Taken from vae_ros.conversions.decoded_range_image_to_points on a uniform image, so the geometry is
    written once; codecs use the rays without the decoder's no-return rule (they know which pixels are empty).
    """
    from vae_ros.core.conversions.lidar import decoded_range_image_to_points

    half = np.full((1, spec.rows, spec.cols), 0.5, dtype=np.float32)  # every pixel a return at range_max / 2
    xyz, _rows = decoded_range_image_to_points(half, spec)  # (rows * cols, 3), row-major
    return (xyz.astype(np.float64) / (0.5 * spec.range_max)).reshape(spec.rows, spec.cols, 3)


def range_image_points(ranges_m: np.ndarray, valid: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(rows, cols) ranges and mask -> (M, 3) float32 points along the range image's rays."""
    return (directions[valid] * ranges_m[valid][:, None]).astype(np.float32)


def scan_beam_bins(msg: Any, spec: Any) -> np.ndarray:
    """(N,) model bin of each beam of a LaserScan (-1 outside the model's field of view)."""
    n = len(msg.ranges)
    width = (spec.angle_max - spec.angle_min) / spec.beams
    rel = float(msg.angle_min) + float(msg.angle_increment) * np.arange(n) - spec.angle_min
    if spec.wraps:
        rel = np.mod(rel, 2 * math.pi)
    bins = np.floor(rel / width + 1e-6).astype(np.int64)
    if spec.wraps:
        bins %= spec.beams
    return np.where((bins >= 0) & (bins < spec.beams), bins, -1)


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance: (mean_a min_b |a - b| + mean_b min_a |b - a|) / 2, in the points' unit."""
    if len(a) == 0 or len(b) == 0:
        return math.inf if len(a) or len(b) else 0.0
    try:
        from scipy.spatial import cKDTree
    except ImportError:  # brute force in blocks: slower, same figure
        return 0.5 * (float(np.mean(_nearest_brute(a, b))) + float(np.mean(_nearest_brute(b, a))))
    d_ab, _ = cKDTree(b).query(a, k=1)
    d_ba, _ = cKDTree(a).query(b, k=1)
    return 0.5 * (float(np.mean(d_ab)) + float(np.mean(d_ba)))


def _nearest_brute(a: np.ndarray, b: np.ndarray, block: int = 1024) -> np.ndarray:
    """(len(a),) distance from each point of a to its nearest point of b, without scipy."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out = np.empty(len(a64))
    for i in range(0, len(a64), block):
        diff = a64[i:i + block, None, :] - b64[None, :, :]  # (block, len(b), 3)
        out[i:i + block] = np.sqrt((diff ** 2).sum(axis=2).min(axis=1))
    return out


# ---------------------------------------------------------------------------------------------------------
# Codecs: encode(msg) -> bytes; decode(bytes) -> reconstruction (scan: (N,) ranges, +inf = none;
# point cloud: (M, 3) points)
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Codec:
    """A named pair: message -> wire bytes, wire bytes -> reconstruction."""

    name: str
    family: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], np.ndarray]
    note: str = ""


class CodecContext:
    """What the codecs of one modality share: message type, model geometry, the inference backend."""

    def __init__(self, modality: str, model_dir: Path, threads: int, backend: str) -> None:
        from vae_ros.core.backends import create_backend, load_config

        self.modality = modality
        self.msgtype = _MSG_SCAN if modality == "scan" else _MSG_CLOUD
        self.msg_class = message_class(self.msgtype)
        self.config = load_config(model_dir)
        if self.config.modality != modality:
            raise ConfigError(f"model {model_dir} is a {self.config.modality} model; this part needs a "
                              f"{modality} model")
        self.backend = create_backend(model_dir, backend, "cpu", threads=threads)
        if modality == "scan":
            self.range_max = self.config.scan_spec.range_max
        else:
            self.range_max = self.config.pointcloud_spec.range_max
            self.directions = range_image_directions(self.config.pointcloud_spec)

    # -- what every reconstruction is measured in ---------------------------------------------------------
    def reconstruct(self, msg: Any) -> np.ndarray:
        """A received full message -> the reconstruction form (scan ranges or cloud points)."""
        if self.modality == "scan":
            return np.asarray(msg.ranges, dtype=np.float32)
        return cloud_points(msg)

    def range_image(self, points: np.ndarray) -> np.ndarray:
        """(M, 3) points -> (2, rows, cols) [range / range_max, mask] in the model's projection."""
        from vae_ros.core.preprocess import preprocess_pointcloud

        spec = self.config.pointcloud_spec
        if len(points):
            try:
                return preprocess_pointcloud(points, spec)
            except InputError:  # nothing in range or in the field of view: an empty image
                pass
        empty = np.zeros((2, spec.rows, spec.cols), dtype=np.float32)
        empty[0] = 1.0  # what preprocessing writes where there is no point
        return empty


def _lossless(ctx: CodecContext, name: str, compress: Callable[[bytes], bytes],
              decompress: Callable[[bytes], bytes], note: str) -> Codec:
    from rclpy.serialization import deserialize_message, serialize_message

    def encode(msg: Any) -> bytes:
        return compress(serialize_message(msg))

    def decode(buf: bytes) -> np.ndarray:
        return ctx.reconstruct(deserialize_message(decompress(buf), ctx.msg_class))

    return Codec(name, "lossless", encode, decode, note)


def _raw(ctx: CodecContext) -> Codec:
    from rclpy.serialization import deserialize_message, serialize_message

    return Codec("raw (CDR)", "raw", serialize_message,
                 lambda buf: ctx.reconstruct(deserialize_message(buf, ctx.msg_class)), "baseline")


def _quantised_scan(ctx: CodecContext, step: float, zstd: Any, keep_every: int = 1) -> Codec:
    """Ranges as uint16 codes: 0 +inf, 1 -inf, 2 NaN / negative, else round(r / step) + 3 (clipped).

    keep_every > 1 sends every k-th beam only; the receiver gives each beam its nearest sent beam's range.
    """

    compressor, decompressor = zstd.ZstdCompressor(level=ZSTD_LEVEL), zstd.ZstdDecompressor()

    def encode(msg: Any) -> bytes:
        ranges = np.asarray(msg.ranges, dtype=np.float32)[::keep_every]
        codes = np.full(ranges.shape, 2, dtype=np.uint16)
        finite = np.isfinite(ranges) & (ranges >= 0)
        codes[finite] = np.minimum(np.rint(ranges[finite] / step) + 3, 65535).astype(np.uint16)
        codes[ranges == np.inf] = 0
        codes[ranges == -np.inf] = 1
        return compressor.compress(_pack(_metadata(msg, "ranges"), codes.astype("<u2").tobytes()))

    specials = np.array([np.inf, -np.inf, np.nan], dtype=np.float32)

    def decode(buf: bytes) -> np.ndarray:
        meta, data = _unpack(decompressor.decompress(buf), 2)
        beams, _header_and_geometry = _read_metadata(meta, ctx.msg_class)  # what the receiver rebuilds from
        codes = np.frombuffer(data, dtype="<u2").astype(np.int64)
        ranges = ((codes - 3) * step).astype(np.float32)
        low = codes < 3
        ranges[low] = specials[codes[low]]
        if keep_every == 1:
            return ranges
        nearest = np.minimum(np.rint(np.arange(beams) / keep_every).astype(np.int64), ranges.size - 1)
        return ranges[nearest]

    sparse = f", 1/{keep_every} beams" if keep_every > 1 else ""
    note = f"uint16 codes, max error {step / 2 * 100:g} cm"
    if keep_every > 1:
        note += f" on every {keep_every}th beam, nearest sent beam elsewhere"
    return Codec(f"range {step * 100:g} cm{sparse} + zstd", "quantised", encode, decode, note)


def _quantised_cloud(ctx: CodecContext, step: float, zstd: Any, keep_every: int = 1) -> Codec:
    """Model range image as uint16 codes: 0 no point, else round(r / step) + 1; points at pixel centres.

    keep_every > 1 sends every k-th column only; the receiver gives each column its nearest sent column.
    """

    compressor, decompressor = zstd.ZstdCompressor(level=ZSTD_LEVEL), zstd.ZstdDecompressor()
    range_max = ctx.range_max

    def encode(msg: Any) -> bytes:
        image = ctx.range_image(cloud_points(msg))  # (2, rows, cols)
        codes = np.zeros(image.shape[1:], dtype=np.uint16)
        valid = image[1] > 0.5
        codes[valid] = np.minimum(np.rint(image[0][valid] * range_max / step) + 1, 65535).astype(np.uint16)
        return compressor.compress(_pack(_metadata(msg, "data"), np.ascontiguousarray(codes[:, ::keep_every], "<u2").tobytes()))

    def decode(buf: bytes) -> np.ndarray:
        meta, data = _unpack(decompressor.decompress(buf), 2)
        _read_metadata(meta, ctx.msg_class)
        rows, cols = ctx.directions.shape[:2]
        codes = np.frombuffer(data, dtype="<u2").reshape(rows, -1)
        if keep_every > 1:  # azimuth wraps: the last columns take the first sent one when it is nearer
            codes = codes[:, np.rint(np.arange(cols) / keep_every).astype(np.int64) % codes.shape[1]]
        return range_image_points((codes.astype(np.float64) - 1) * step, codes > 0, ctx.directions)

    sparse = f", 1/{keep_every} cols" if keep_every > 1 else ""
    note = f"model range image, uint16 codes, max range error {step / 2 * 100:g} cm"
    if keep_every > 1:
        note += f" on every {keep_every}th column, nearest sent column elsewhere"
    return Codec(f"range img {step * 100:g} cm{sparse} + zstd", "quantised", encode, decode, note)


def _draco(ctx: CodecContext, bits: int, draco: Any, zstd: Any) -> Codec:
    """Valid points through Draco at `bits` per axis over [-R, R]^3; metadata as zstd'd CDR beside them."""

    compressor, decompressor = zstd.ZstdCompressor(level=ZSTD_LEVEL), zstd.ZstdDecompressor()
    array_field = "ranges" if ctx.modality == "scan" else "data"

    def points_of(msg: Any) -> np.ndarray:
        if ctx.modality == "pointcloud":
            return cloud_points(msg)
        ranges, valid = scan_valid(msg)
        angles = float(msg.angle_min) + float(msg.angle_increment) * np.arange(ranges.size)
        r = ranges[valid]
        return np.stack([r * np.cos(angles[valid]), r * np.sin(angles[valid]), np.zeros_like(r)],
                        axis=1).astype(np.float32)

    def encode(msg: Any) -> bytes:
        meta = compressor.compress(_metadata(msg, array_field))
        points = points_of(msg)
        if len(points) == 0:
            return _pack(meta, b"")
        half = float(max(1.0, math.ceil(float(np.abs(points).max()))))
        blob = draco.encode(points, quantization_bits=bits, compression_level=DRACO_COMPRESSION_LEVEL,
                            quantization_range=2 * half, quantization_origin=[-half, -half, -half])
        return _pack(meta, blob)

    def decode(buf: bytes) -> np.ndarray:
        meta_z, blob = _unpack(buf, 2)
        n, meta = _read_metadata(decompressor.decompress(meta_z), ctx.msg_class)
        points = (np.asarray(draco.decode(blob).points, dtype=np.float32).reshape(-1, 3) if blob
                  else np.empty((0, 3), dtype=np.float32))
        if ctx.modality == "pointcloud":
            return points
        # The receiver re-bins points to beams by angle; the nearest point wins a beam.
        ranges = np.full(n, np.inf, dtype=np.float32)
        if len(points):
            theta = np.arctan2(points[:, 1], points[:, 0])
            idx = np.rint((theta - meta.angle_min) / meta.angle_increment).astype(np.int64)
            if abs(n * meta.angle_increment - 2 * math.pi) < 1.5 * abs(meta.angle_increment):
                idx %= n
            inside = (idx >= 0) & (idx < n)
            np.minimum.at(ranges, idx[inside], np.hypot(points[inside, 0], points[inside, 1]))
        return ranges

    what = "x, y points re-binned by angle" if ctx.modality == "scan" else "x, y, z points, unorganised"
    return Codec(f"draco {bits}-bit", "draco", encode, decode,
                 f"{what}; step 2R/2^{bits} (R: largest coordinate)")


def latent_image_msg(values: np.ndarray, encoding: str, header: Any) -> Any:
    """(D,) latent values of any dtype -> sensor_msgs/Image 1 x D laid out as the stamped latent (little-endian).

    The f16 / int8 variants of this benchmark; the contract's float32 message is conversions.latent_to_stamped_msg.
    """
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header = header
    msg.height, msg.width = 1, int(values.size)
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(values.dtype.itemsize * values.size)
    msg.data = values.astype(values.dtype.newbyteorder("<")).tobytes()
    return msg


def quantise_int8(z: np.ndarray) -> np.ndarray:
    """Latent means -> int8 codes over the prior's +-INT8_SIGMAS (per dimension; the prior is N(0, I))."""
    return np.clip(np.rint(z * (127.0 / INT8_SIGMAS)), -127, 127).astype(np.int8)


def dequantise_int8(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.float32) * np.float32(INT8_SIGMAS / 127.0)


_LATENT_FORMS = {  # name -> (encoding, latent -> wire values, wire bytes -> float32 latent)
    "f16": ("16FC1", lambda z: z.astype(np.float16), lambda b: np.frombuffer(b, "<f2").astype(np.float32)),
    "int8": ("8SC1", quantise_int8, lambda b: dequantise_int8(np.frombuffer(b, np.int8))),
}


def _latent(ctx: CodecContext, form: str) -> Codec:
    """The latent mean on the wire: f32 is the contract's vae/latent_stamped; f16 and int8 shrink its values."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from vae_ros.core.conversions.latent import latent_to_stamped_msg, stamped_msg_to_latent
    from vae_ros.core.conversions.lidar import decoded_range_image_to_points, decoded_scan_ranges
    from vae_ros.core.conversions.model_input import msg_to_model_input

    config, backend = ctx.config, ctx.backend

    def to_msg(mean: np.ndarray, header: Any) -> Any:
        if form == "f32":
            return latent_to_stamped_msg(mean, None, header)
        encoding, to_wire, _ = _LATENT_FORMS[form]
        return latent_image_msg(to_wire(mean), encoding, header)

    def from_msg(msg: Any) -> np.ndarray:
        if form == "f32":
            return stamped_msg_to_latent(msg, config.latent_dim)[0]
        return _LATENT_FORMS[form][2](bytes(msg.data))

    def encode(msg: Any) -> bytes:
        x = msg_to_model_input(msg, config)[None]  # (1, *input_shape)
        mean, _logvar = backend.encode(x)  # (1, D)
        return serialize_message(to_msg(mean[0], msg.header))

    def decode(buf: bytes) -> np.ndarray:
        z = from_msg(deserialize_message(buf, Image))[None]  # (1, D)
        x_hat = backend.decode(z)[0]  # (1, beams) or (1, rows, cols), r / range_max
        if ctx.modality == "pointcloud":
            return decoded_range_image_to_points(x_hat, config.pointcloud_spec)[0]
        return decoded_scan_ranges(x_hat, config.scan_spec)  # per model bin; to the message's beams in _measure

    notes = {"f32": "vae/latent_stamped as in the contract (header included)",
             "f16": "same message, float16 values", "int8": f"same message, int8 over prior +-{INT8_SIGMAS:g} sigma"}
    return Codec(f"latent {form} (D={config.latent_dim})", "latent", encode, decode, notes[form])


def available_codecs(ctx: CodecContext, skipped: dict[str, str]) -> list[Codec]:
    """Every codec that runs here; the ones whose package is missing go into `skipped` with the reason."""
    codecs = [_raw(ctx)]
    zstd: Any = None
    try:
        import zstandard as zstd
    except ImportError as err:
        skipped["zstd (all zstd-based rows)"] = f"PyPI 'zstandard' is not installed ({err})"
    if zstd is not None:
        compressor, decompressor = zstd.ZstdCompressor(level=ZSTD_LEVEL), zstd.ZstdDecompressor()
        codecs.append(_lossless(ctx, f"zstd -{ZSTD_LEVEL}", compressor.compress, decompressor.decompress,
                                "lossless"))
    try:
        import lz4.frame as lz4_frame
    except ImportError as err:
        skipped["lz4"] = f"PyPI 'lz4' is not installed ({err})"
    else:
        codecs.append(_lossless(ctx, "lz4", lz4_frame.compress, lz4_frame.decompress, "lossless, frame format"))
    if zstd is not None:
        quantised = _quantised_scan if ctx.modality == "scan" else _quantised_cloud
        codecs.extend(quantised(ctx, step, zstd) for step in RANGE_STEPS_M)
        # A coarse, sparse row takes the classic codec down to about the latent's bytes.
        step, keep_every = LOW_RATE[ctx.modality]
        codecs.append(quantised(ctx, step, zstd, keep_every))
        try:
            import DracoPy as draco
        except ImportError as err:
            skipped["draco"] = f"PyPI 'DracoPy' is not installed ({err})"
        else:
            codecs.extend(_draco(ctx, bits, draco, zstd) for bits in DRACO_BITS)
    codecs.extend(_latent(ctx, form) for form in ("f32", "f16", "int8"))
    return codecs
