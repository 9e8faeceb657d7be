"""The one preprocessing path, shared by training and inference: arrays in, model-ready float32 arrays out.

Message decoding (ROS encodings, row padding, point fields) happens before this, in vae_ros.conversions;
this module only deals with NumPy arrays, so a bag sample and a live message go through identical code.
Outputs are float32 NumPy arrays shaped as ModelConfig.input_shape; backends turn them into tensors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vae_ros.core.config import ImageSpec, PointCloudSpec, ScanSpec
from vae_ros.core.errors import ConfigError, InputError

# Luminance weights (ITU-R BT.601), the same as cv2.COLOR_RGB2GRAY.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Fraction of a bin by which a beam angle may fall short of a bin edge and still count as on it.
_EDGE_SLACK = 1e-6


def checked_image(image: np.ndarray) -> tuple[np.ndarray, float]:
    """An image as preprocess_image takes it -> ((H, W, 1|3) view without alpha, the factor to [0, 1]).

    The checks and the scale of both preprocessing paths (this module's and vae_ros.core.preprocess_torch's):
    uint8 1/255, uint16 1/65535, floating point 1.0 (taken as already in [0, 1]; NaN or inf refused).
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a NumPy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image must be (H, W) or (H, W, C) with H, W > 0, got shape {image.shape}")
    channels = image.shape[2]
    if channels not in (1, 3, 4):
        raise InputError(f"image must have 1, 3 or 4 channels, got {channels}")
    if channels == 4:
        image = image[:, :, :3]
    if image.dtype == np.uint8:
        return image, 1.0 / 255.0
    if image.dtype == np.uint16:
        return image, 1.0 / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise InputError("image holds NaN or infinite values")
        return image, 1.0
    raise InputError(f"image dtype {image.dtype} is not supported (uint8, uint16 or float)")


def preprocess_image(image: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """(H, W) or (H, W, C) RGB(A)/grey image -> (spec.channels, spec.height, spec.width) float32 in [0, 1].

    uint8 is scaled by 1/255 and uint16 by 1/65535; floating point is taken as already in [0, 1] and
    clipped. A 4th (alpha) channel is dropped; grey is replicated for RGB models; RGB is converted to
    luminance for grey models. Resizing uses INTER_AREA (anti-aliased for downscaling).
    """
    image, scale = checked_image(image)
    if (image.shape[0], image.shape[1]) != (spec.height, spec.width):
        # cv2.resize takes uint8, uint16 and float32 (not float16/float64).
        src = image if image.dtype in (np.uint8, np.uint16, np.float32) else image.astype(np.float32)
        src = np.ascontiguousarray(src)
        resized = cv2.resize(src, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
        image = resized if resized.ndim == 3 else resized[:, :, None]
    out = image.astype(np.float32) * np.float32(scale)
    if scale == 1.0:
        np.clip(out, 0.0, 1.0, out=out)

    if spec.channels == 3 and out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif spec.channels == 1 and out.shape[2] == 3:
        out = (out @ LUMA)[:, :, None]
    return np.ascontiguousarray(out.transpose(2, 0, 1))  # (C, H, W)


def preprocess_scan(
    ranges: np.ndarray,
    angle_min: float,
    angle_increment: float,
    range_min: float,
    range_max: float,
    spec: ScanSpec,
) -> np.ndarray:
    """LaserScan ranges of any beam count -> (2, spec.beams) float32: [normalised range, validity mask].

    The rule (documented in the README):
    - A beam is valid when it is finite and range_min <= r <= range_max (the message's own limits) and
      r <= spec.range_max. NaN, -inf, +inf ("no return", REP-117) and out-of-range beams are invalid.
    - Each input beam falls into the model bin that contains its angle (angles wrap for a full-turn
      model). A bin takes the minimum valid range of its beams (the nearest obstacle wins, as a
      costmap would), so scans denser than the model are pooled conservatively.
    - A bin with no input beam (scans sparser than the model) takes the nearest input beam by angle,
      if that beam lies within one input increment; otherwise it is invalid.
    - Channel 0 is r / spec.range_max in [0, 1]; invalid bins read 1.0 (free as far as the model knows)
      and channel 1 (the mask) is 0 there, 1 elsewhere. Reconstruction losses use only valid bins.
    """
    ranges = np.asarray(ranges, dtype=np.float32).reshape(-1)
    n = ranges.size
    if n == 0:
        raise InputError("scan has no ranges")
    if not (math.isfinite(angle_min) and math.isfinite(angle_increment)) or angle_increment == 0.0:
        raise InputError(f"scan angle_increment must be finite and non-zero, got {angle_increment}")
    beams = spec.beams
    span = spec.angle_max - spec.angle_min
    bin_width = span / beams

    angles = angle_min + angle_increment * np.arange(n, dtype=np.float64)
    rel = angles - spec.angle_min
    if spec.wraps:
        rel = np.mod(rel, 2 * math.pi)
    # Beams of a scan that matches the model sit exactly on bin edges; without the slack, rounding in
    # angle_min + i * increment would drop some into the bin below (pooling two beams, leaving one empty).
    bins = np.floor(rel / bin_width + _EDGE_SLACK).astype(np.int64)
    if spec.wraps:
        bins %= beams
    inside = (bins >= 0) & (bins < beams)

    valid = np.isfinite(ranges) & (ranges >= range_min) & (ranges <= range_max) & (ranges <= spec.range_max)
    best = np.full(beams, np.inf, dtype=np.float32)
    take = inside & valid
    np.minimum.at(best, bins[take], ranges[take])
    covered = np.zeros(beams, dtype=bool)
    covered[bins[inside]] = True

    # Bins no input beam falls into: borrow the nearest beam by angle when it is close enough.
    empty = np.flatnonzero(~covered)
    if empty.size:
        centres = spec.angle_min + (empty + 0.5) * bin_width
        nearest, distance = _nearest_beams(centres, angles, spec.wraps)
        ok = (distance <= abs(angle_increment) + 1e-9) & valid[nearest]
        best[empty[ok]] = ranges[nearest[ok]]

    mask = np.isfinite(best)
    out = np.empty((2, beams), dtype=np.float32)
    out[0] = np.where(mask, best / np.float32(spec.range_max), 1.0)
    out[1] = mask
    return out


def _nearest_beams(centres: np.ndarray, angles: np.ndarray, wraps: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each centre angle, the beam nearest in angle (the lowest beam index on ties) and |difference|.

    The same answer as argmin over the (centres x beams) difference matrix, without building it: a scan
    of 400k beams in a narrow arc leaves most model bins empty, and that matrix took gigabytes. Distinct
    beam angles are sorted once; each centre then looks at a few sorted neighbours on either side, enough
    that rounding in the wrap-around cannot hide the nearest one. O((centres + beams) log beams).
    """
    full_turn = 2 * math.pi
    key = np.mod(angles, full_turn) if wraps else angles
    values, first = np.unique(key, return_index=True)  # sorted distinct angles; lowest beam index of each
    slot = np.searchsorted(values, np.mod(centres, full_turn) if wraps else centres)
    candidates = slot[:, None] + np.arange(-2, 2)[None, :]  # (E, 4) sorted positions around each centre
    if wraps:
        candidates %= values.size
    else:
        np.clip(candidates, 0, values.size - 1, out=candidates)
    beam = first[candidates]  # (E, 4) beam indices
    diff = centres[:, None] - angles[beam]
    if wraps:
        diff = (diff + math.pi) % full_turn - math.pi
    distance = np.abs(diff)
    nearest_distance = distance.min(axis=1)
    lowest_index = np.iinfo(np.int64).max
    nearest = np.where(distance == nearest_distance[:, None], beam, lowest_index).min(axis=1)
    return nearest, nearest_distance


def preprocess_pointcloud(points: np.ndarray, spec: PointCloudSpec) -> np.ndarray:
    """(N, 3) points in the sensor frame -> spherical range image (2, rows, cols) float32: [r / range_max, mask].

    Points with NaN/inf coordinates, zero range, beyond spec.range_max or outside the vertical field of
    view are dropped. The nearest point wins each pixel. Empty pixels read 1.0 with mask 0. An empty cloud
    (or one with no usable point) is rejected: it carries no information to encode.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"points must be (N, 3), got shape {points.shape}")
    if points.shape[0] == 0:
        raise InputError("point cloud is empty")
    pts = points.astype(np.float64, copy=False)
    finite = np.isfinite(pts).all(axis=1)
    pts = pts[finite]
    r = np.linalg.norm(pts, axis=1)
    keep = (r > 1e-6) & (r <= spec.range_max)
    pts, r = pts[keep], r[keep]
    if r.size == 0:
        raise InputError("point cloud has no finite point within range")

    yaw = np.arctan2(pts[:, 1], pts[:, 0])  # (-pi, pi]
    pitch = np.arcsin(np.clip(pts[:, 2] / r, -1.0, 1.0))
    fov_up = math.radians(spec.fov_up_deg)
    fov_down = math.radians(spec.fov_down_deg)
    row_f = (fov_up - pitch) / (fov_up - fov_down) * spec.rows
    # Same edge slack as for scans: rays cast exactly on pixel edges must not round into the pixel below.
    col = np.floor((yaw + math.pi) / (2 * math.pi) * spec.cols + _EDGE_SLACK).astype(np.int64) % spec.cols
    # Rings sit at the edges of the field of view; half a row of slack keeps them in.
    row = np.floor(row_f + _EDGE_SLACK).astype(np.int64)
    row = np.where((row_f >= -0.5) & (row_f < 0), 0, row)
    row = np.where((row_f >= spec.rows) & (row_f <= spec.rows + 0.5), spec.rows - 1, row)
    inside = (row >= 0) & (row < spec.rows)
    if not inside.any():
        raise InputError("point cloud has no point inside the model's vertical field of view")
    flat = row[inside] * spec.cols + col[inside]
    best = np.full(spec.rows * spec.cols, np.inf)
    np.minimum.at(best, flat, r[inside])
    mask = np.isfinite(best)
    out = np.empty((2, spec.rows, spec.cols), dtype=np.float32)
    out[0] = np.where(mask, best / spec.range_max, 1.0).reshape(spec.rows, spec.cols)
    out[1] = mask.reshape(spec.rows, spec.cols)
    return out


def read_image_file(path: str | Path) -> np.ndarray:
    """An image file -> (H, W) or (H, W, 3|4) array in RGB(A) order, uint8 or uint16 as stored."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{path} is not a readable image")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


# -- where encoder_node preprocesses images (its `preprocess` parameter) -----------------------------------------
PREPROCESS_CHOICES = ("auto", "cpu", "device")


def preprocess_on_device(choice: str, modality: str, backend: Any) -> bool:
    """Whether encoder_node preprocesses on the model's torch device (vae_ros.core.preprocess_torch) or here.

    `device` needs an image model on backend torch (the other runtimes take NumPy arrays); `auto` takes the device
    where that device is a GPU (a 640x480 frame then crosses the bus as uint8 and the host does no per-pixel
    work), the CPU otherwise (OpenCV is as fast there, and ONNX Runtime nodes never import torch). ConfigError,
    one line, for `device` where it cannot run.
    """
    if choice not in PREPROCESS_CHOICES:
        raise ConfigError(f"preprocess must be one of {', '.join(PREPROCESS_CHOICES)}, got {choice!r}")
    if choice == "cpu":
        return False
    from vae_ros.core.backends import TorchBackend

    on_torch = isinstance(backend, TorchBackend)
    if choice == "auto":
        return modality == "image" and on_torch and backend.device.type == "cuda"
    if modality != "image":
        raise ConfigError(f"preprocess 'device' is for image models; this model's modality is {modality!r} (its "
                          "preprocessing stays on the CPU: set preprocess to auto or cpu)")
    if not on_torch:
        raise ConfigError(f"preprocess 'device' needs backend torch, which takes tensors on its device; backend "
                          f"{getattr(backend, 'name', type(backend).__name__)} takes NumPy arrays: set backend to "
                          "torch, or preprocess to auto or cpu")
    return True
