"""Latents on the wire: std_msgs/Float32MultiArray (vae/latent, the contract's layout) and the stamped
sensor_msgs/Image 32FC1 (vae/latent_stamped, rows of latents).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vae_ros.core.conversions.common import (
    _as_float_array,
    _as_uint8,
    _copy_header,
    _to_bytes_array,
    _to_float_array,
    _uint_field,
)
from vae_ros.core.errors import InputError


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
    msg: Any, expected_dim: int | None = None, finite: bool = True
) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """sensor_msgs/Image in the stamped layout -> ((D,) mean, (D,) logvar or None, the message's header).

    Strict about the layout (encoding, height, step, data size), so a camera image sent to the latent
    topic by mistake is rejected rather than read as numbers; is_bigendian is honoured. `finite=False` returns
    NaN or infinite values instead of refusing them (a reader that skips and counts such rows, e.g. teaching).
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
    if finite and not np.isfinite(values).all():
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
