"""vae_ros.core.preprocess's image path on a torch device: a camera frame in, the model's input tensor out, there.

encoder_node uses it with `preprocess:=device` (and `auto` where the model runs in torch on CUDA): the frame goes
to the GPU as uint8 (a quarter of the float32 bytes) and is resized, scaled and channel-converted there, so the
host does no per-pixel work beyond decoding the message and the encoder's input never crosses the bus again.

The resize is OpenCV's INTER_AREA itself, not an approximation of it: cv2.resize is separable and linear per axis,
so it is out = Wy · image · Wxᵀ with per-axis weight matrices, two small matmuls here. area_weights builds them
as OpenCV does: for a downscale of both axes (OpenCV's area path) each output pixel averages the input box it
covers, fractional pixels weighted by their share; when an axis grows, OpenCV's INTER_AREA blends the two nearest
pixels with its own coefficients, reproduced too. Measured against cv2 on float32 noise (test/core/
test_preprocess_torch.py): 1.2e-7 for every size tried. torch's own F.interpolate is not as close: mode "area"
(adaptive average pooling, whole pixels only) differs from cv2 by up to 0.024 (mean 0.0045) at 640x480 -> 64x64
and by 0.19-0.53 where the scale is not an integer or an axis grows; "bilinear" with antialias is further off at
integer factors (0.27 at 128 -> 64). Integer images are rounded to their type after the resize as cv2 rounds
them (half up), so the model sees what the NumPy path gives it: the same values, or one grey level apart where
OpenCV's fixed-point or float sums land on the other side of a rounding edge (<0.1 % of the values of a
640x480 -> 64x64 downscale).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from vae_ros.core.config import ImageSpec
from vae_ros.core.errors import InputError
from vae_ros.core.preprocess import LUMA, checked_image

CHANNEL_ORDERS = ("rgb", "bgr", "rgba", "bgra", "mono")


def area_weights(size_in: int, size_out: int, area_path: bool) -> np.ndarray:
    """(size_out, size_in) float64: one axis of cv2.resize(..., interpolation=INTER_AREA).

    area_path: both axes shrink or keep their size (OpenCV then averages boxes on both); otherwise OpenCV's
    INTER_AREA takes its linear-like path on both axes, with the coefficients below (imgproc/resize.cpp).
    """
    scale = size_in / size_out
    weights = np.zeros((size_out, size_in), np.float64)
    if area_path:
        for d in range(size_out):
            start, end = d * scale, (d + 1) * scale
            s = int(math.floor(start))
            while s < end and s < size_in:
                overlap = min(end, s + 1) - max(start, s)
                if overlap > 0:
                    weights[d, s] += overlap / scale
                s += 1
        return weights
    inverse = 1.0 / scale
    for d in range(size_out):
        s = int(math.floor(d * scale))
        frac = (d + 1) - (s + 1) * inverse
        frac = 0.0 if frac <= 0 else frac - math.floor(frac)
        if s >= size_in - 1:  # the last pixel, replicated
            s, frac = size_in - 1, 0.0
        weights[d, s] += 1.0 - frac
        if frac:
            weights[d, s + 1] += frac
    return weights


class DevicePreprocessor:
    """preprocess_image on a torch device: (H, W[, C]) NumPy image -> (1, C, h, w) float32 tensor on `device`.

    The same checks, scale, resize, rounding and channel rules as vae_ros.core.preprocess.preprocess_image (its
    docstring has them); the weight matrices of each input size are made once and kept on the device (a camera
    sends one size)."""

    def __init__(self, spec: ImageSpec, device: torch.device | str) -> None:
        self.spec = spec
        self.device = torch.device(device)
        self._weights: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._luma = torch.from_numpy(LUMA).to(self.device).view(1, 3, 1, 1)
        self._staging: dict[tuple[Any, ...], tuple[torch.Tensor, Any]] = {}  # CUDA: pinned buffer, copy event

    def _upload(self, source: np.ndarray) -> torch.Tensor:
        """(H, W, C) array -> the same on the device. To a GPU through a page-locked staging buffer kept per shape
        (the copy is then a DMA that does not wait on the host), reused once the previous copy has finished."""
        if self.device.type != "cuda":
            return torch.from_numpy(np.ascontiguousarray(source)).to(self.device)
        key = (source.shape, source.dtype.str)
        if key not in self._staging:
            dtype = {np.dtype(np.uint8): torch.uint8, np.dtype(np.int32): torch.int32,
                     np.dtype(np.float32): torch.float32}[source.dtype]
            self._staging[key] = (torch.empty(source.shape, dtype=dtype, pin_memory=True), torch.cuda.Event())
        staging, copied = self._staging[key]
        copied.synchronize()  # the previous frame's copy out of this buffer is done
        np.copyto(staging.numpy(), source)
        pixels = staging.to(self.device, non_blocking=True)
        copied.record()
        return pixels

    def _resize_weights(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (height, width)
        if key not in self._weights:
            area_path = height >= self.spec.height and width >= self.spec.width
            wy = area_weights(height, self.spec.height, area_path)  # (h, H)
            wx = area_weights(width, self.spec.width, area_path)  # (w, W)
            self._weights[key] = (torch.from_numpy(wy.astype(np.float32)).to(self.device),
                                  torch.from_numpy(np.ascontiguousarray(wx.T, np.float32)).to(self.device))
        return self._weights[key]

    def __call__(self, image: np.ndarray, order: str = "rgb") -> torch.Tensor:
        """`order`: the channel order of a 3- or 4-channel image, rgb, bgr, rgba or bgra (a message's own, from
        image_msg_pixels): the swap and the alpha drop happen on the device, not on the host."""
        if order not in CHANNEL_ORDERS:
            raise InputError(f"channel order must be one of {', '.join(CHANNEL_ORDERS)}, got {order!r}")
        checked, scale = checked_image(image)  # (H, W, 1|3) view: the checks and the scale of the NumPy path
        # A contiguous 4-channel image goes up whole (dropping alpha on the host would be a strided copy).
        source = image if image.ndim == 3 and image.shape[2] == 4 and image.flags.c_contiguous else checked
        if source.dtype not in (np.uint8, np.uint16, np.float32):  # as the NumPy path: float16/64 via float32
            source = source.astype(np.float32)
        if source.dtype == np.uint16:  # torch's uint16 has few kernels; int32 holds it exactly
            source = source.astype(np.int32)
        x = self._upload(source).permute(2, 0, 1).unsqueeze(0)[:, :3].float()  # (1, C, H, W), the type's units
        height, width = checked.shape[:2]
        if (height, width) != (self.spec.height, self.spec.width):
            wy, wx_t = self._resize_weights(height, width)
            x = torch.matmul(wy, torch.matmul(x, wx_t))  # (1, C, h, w)
            if scale != 1.0:  # integer images: rounded to their type, as cv2.resize returns them
                x = torch.floor(x + 0.5)
        x = x * scale
        if scale == 1.0:
            x = x.clamp(0.0, 1.0)
        channels = x.shape[1]
        if channels == 3 and order in ("bgr", "bgra"):  # after the resize: it is per channel, and 64x64 is cheap
            x = x.flip(1)
        if self.spec.channels == 3 and channels == 1:
            x = x.expand(1, 3, *x.shape[2:])
        elif self.spec.channels == 1 and channels == 3:
            x = (x * self._luma).sum(1, keepdim=True)
        return x.contiguous()
