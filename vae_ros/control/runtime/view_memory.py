"""Goal images for a control model that does not read the camera: remembered views.

The packaged control model reads LaserScans, so a camera image cannot be encoded into its latent. What a
robot can do is remember: each camera frame it sees is kept beside the latent it had at the same instant
(paired by header stamp), and a goal image selects the remembered view it matches; that view's latent
becomes the goal. This is teach-and-repeat with image goals: pick a frame the robot saw (from a recording,
a UI, a frame just captured) and it drives back to where that frame was taken.

A view is a small descriptor of the frame (grey, `size` x `size`, zero mean, unit norm), so matching is a
normalised cross-correlation (NCC) against every remembered view. The match must be near exact
(`min_score` 0.99), because similar-looking places alias. Measured in the simulator's held-out rooms
(docs/CONTROL.md): the view 2 cm ahead scores 0.992-0.998; 5 cm sideways 0.84-0.99; 2 deg of yaw
0.90-0.98; the best other place (> 0.3 m or 15 deg away) 0.88 median, 0.975 p99, 0.998 at worst. So a goal
image must be (nearly) a frame the robot saw; an image of a place it has not seen waits, and regressing
the scan latent from an image (tried) does not reach servo accuracy.

Pure and ROS-free: the node feeds `add_frame` / `add_latent` and asks `match`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from vae_ros.core.errors import ConfigError, InputError


@dataclass(frozen=True)
class ViewMemoryConfig:
    capacity: int = 3000  # remembered views (a ring buffer): 5 min of frames at 10 Hz, about 3 MB
    size: int = 32  # descriptor side (pixels)
    min_score: float = 0.99  # NCC a goal image must reach against a remembered view (docs/CONTROL.md)
    max_pair_s: float = 0.05  # a frame and a latent pair when their header stamps are this close
    pending_frames: int = 30  # camera frames kept while their latents are on the way

    def validate(self) -> None:
        if self.capacity < 1 or self.size < 4 or self.pending_frames < 1:
            raise ConfigError("view memory capacity must be >= 1, size >= 4 and pending_frames >= 1")
        if not 0.0 < self.min_score <= 1.0:
            raise ConfigError(f"view memory min_score must be in (0, 1], got {self.min_score}")
        if not self.max_pair_s > 0:
            raise ConfigError(f"view memory max_pair_s must be positive, got {self.max_pair_s}")


def view_descriptor(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W) or (H, W, C) image, any dtype -> (size * size,) float32, zero mean, unit norm."""
    import cv2

    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        if array.shape[2] not in (3, 4):
            raise InputError(f"a view needs a grey or RGB(A) image, got shape {array.shape}")
        array = array[:, :, :3].astype(np.float32).mean(axis=2)
    elif array.ndim != 2:
        raise InputError(f"a view needs a 2-D or 3-D image, got shape {array.shape}")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise InputError(f"image {array.shape} is too small to be a view")
    grey = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(grey)):
        raise InputError("image holds NaN or inf")
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    if norm < 1e-6:
        raise InputError("image is uniform: nothing to recognise a place by")
    return (small / norm).astype(np.float32)


@dataclass(frozen=True)
class Match:
    latent: np.ndarray  # (D,) the latent seen with the matching view
    score: float  # its NCC with the goal image
    stamp_ns: int  # when that view was seen


class ViewMemory:
    """Camera views paired with the latents seen at the same instant; goal images look them up."""

    def __init__(self, config: ViewMemoryConfig | None = None) -> None:
        self.config = config or ViewMemoryConfig()
        self.config.validate()
        n, k = self.config.capacity, self.config.size ** 2
        self._views = np.zeros((n, k), np.float32)
        self._latents: np.ndarray | None = None  # (n, D), sized by the first latent
        self._stamps = np.zeros(n, np.int64)
        self._count = 0  # views stored so far (the ring's next slot is count % capacity)
        self._frames: deque[tuple[int, np.ndarray]] = deque(maxlen=self.config.pending_frames)

    def __len__(self) -> int:
        return min(self._count, self.config.capacity)

    def add_frame(self, stamp_ns: int, image: np.ndarray) -> bool:
        """A camera frame: kept until a latent with a stamp within max_pair_s arrives. A uniform frame (a
        blank wall filling the view) is skipped: no goal image could be told by it (False)."""
        try:
            descriptor = view_descriptor(image, self.config.size)
        except InputError as err:
            if "uniform" in str(err):
                return False
            raise
        self._frames.append((int(stamp_ns), descriptor))
        return True

    def add_latent(self, stamp_ns: int, latent: np.ndarray) -> bool:
        """A latent: remembered with the pending frame nearest in stamp, if one is within max_pair_s."""
        if not self._frames:
            return False
        gaps = [abs(stamp - int(stamp_ns)) for stamp, _ in self._frames]
        best = int(np.argmin(gaps))
        if gaps[best] > self.config.max_pair_s * 1e9:
            return False
        latent = np.asarray(latent, np.float32).reshape(-1)
        if self._latents is None:
            self._latents = np.zeros((self.config.capacity, latent.size), np.float32)
        elif latent.size != self._latents.shape[1]:
            raise InputError(f"latent has {latent.size} dimensions, the remembered ones {self._latents.shape[1]}")
        slot = self._count % self.config.capacity
        self._views[slot] = self._frames[best][1]
        self._latents[slot] = latent
        self._stamps[slot] = int(stamp_ns)
        self._count += 1
        return True

    def best(self, image: np.ndarray) -> Match | None:
        """The remembered view most like `image` (None when nothing is remembered yet); InputError for an
        image no view could match (uniform, wrong shape), also while the memory is empty."""
        descriptor = view_descriptor(image, self.config.size)
        if len(self) == 0 or self._latents is None:
            return None
        scores = self._views[: len(self)] @ descriptor
        i = int(np.argmax(scores))
        return Match(self._latents[i].copy(), float(scores[i]), int(self._stamps[i]))

    def newest(self, descriptor: np.ndarray) -> Match | None:
        """The newest remembered view scored against a descriptor (view_descriptor): what a goal image that
        waits needs per new view, instead of a search through all of them again."""
        if len(self) == 0 or self._latents is None:
            return None
        i = (self._count - 1) % self.config.capacity
        return Match(self._latents[i].copy(), float(self._views[i] @ descriptor), int(self._stamps[i]))

    def match(self, image: np.ndarray) -> Match:
        """The remembered view `image` shows (NCC >= min_score), or InputError saying how near it came."""
        found = self.best(image)
        if found is None:
            raise InputError("no camera view remembered yet: the robot must have seen the goal place")
        if found.score < self.config.min_score:
            raise InputError(f"the goal image matches no remembered view (best NCC {found.score:.3f} < "
                             f"{self.config.min_score}): show it a frame from where it has been")
        return found
