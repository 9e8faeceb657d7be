"""goal_align: a goal image aligned with the live view, for the goal controllers on a fused camera + LiDAR model.

What latent_servo_node and world_model_node (vae_ros.ros.nodes.control_base) do with a goal image that matches no
remembered view (docs/FUSION.md, "A goal given as an image alone"): on the goal-image thread, the newest camera
frame and the LaserScan paired with it by header stamp give the goal's pose (vae_ros.control.runtime.image_goal:
ImageGoalFinder, the `align+look` rule the evaluation measures), and the goal latent is the joint latent of the
live scan moved there (the LiDAR expert) and the image (the camera expert). Before that search the robot looks
around (`look_around`: it turns in place to +goal_align_look degrees and to -goal_align_look, a view at each
heading; the executor sends `look_command`), and the best of the three views' matches wins. Every `goal_align_period` a search
around where the controller estimates the goal refines it where the match is sound (NCC >= ALIGN_ACCEPT_NCC).

This module holds the sensors the search needs (recent frames, scans and latents, each with its header stamp), the
search's state for /diagnostics and the searches themselves; control_base keeps the rules of what may set a goal
(which goal a search belongs to, clear_goal, the view memory winning). It imports no rclpy.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.runtime.image_goal import (
    LOOK_TURN_RATE,
    AlignedGoal,
    CameraGeometry,
    ImageGoalFinder,
    ScanGeometry,
    best_aligned,
)
from vae_ros.core.errors import InputError
from vae_ros.core.fused import SYNC_SLOP_S

ALIGNING = "aligning goal image"  # the controller's status while the search at the start runs (the robot stopped)
# Seconds the search at the start waits for a camera frame and a scan that pair (a goal on servo/goal_image), and for
# the goal_image parameter at start-up, when the simulator or the encoders may still be starting.
PAIR_WAIT_S = 5.0
START_PAIR_WAIT_S = 30.0
PAIR_MAX_AGE_S = 1.0  # a pair older than this (its stamp against the node's clock) is not the live view
LOOK_SETTLE_S = 0.3  # looking around: seconds stopped after each turn before the view is taken (the evaluation's 3 steps)
# A turn or a settle of the look-around gives up (the views so far are searched) when the node's clock has not
# advanced by its length within this many times as long of wall time, plus 2 s.
LOOK_HOLD_WALL_FACTOR = 10.0
FRAMES_KEPT, SCANS_KEPT, LATENTS_KEPT = 3, 30, 30  # ~0.3 s of frames, ~3 s of scans and latents at 10 Hz

# Phases, as /diagnostics `goal_align` starts.
OFF, NO_GOAL_IMAGE, SEARCHING, ALIGNED, FELL_BACK = "off", "none", "searching", "aligned", "fell back"


@dataclass(frozen=True)
class LivePair:
    """A camera frame and the LaserScan paired with it by header stamp."""

    stamp_ns: int
    image: np.ndarray
    ranges: np.ndarray
    geometry: ScanGeometry


class LiveSensors:
    """Recent camera frames, scans and latents with their header stamps: the executor adds, the goal-image thread
    reads (under one lock, held only to copy references)."""

    def __init__(self, slop_s: float = SYNC_SLOP_S) -> None:
        self.slop_ns = int(slop_s * 1e9)
        self._lock = threading.Lock()
        self._frames: deque[tuple[int, np.ndarray]] = deque(maxlen=FRAMES_KEPT)
        self._scans: deque[tuple[int, np.ndarray, ScanGeometry]] = deque(maxlen=SCANS_KEPT)
        self._latents: deque[tuple[int, np.ndarray]] = deque(maxlen=LATENTS_KEPT)

    def add_frame(self, stamp_ns: int, image: np.ndarray) -> None:
        with self._lock:
            self._frames.append((stamp_ns, image))

    def add_scan(self, stamp_ns: int, ranges: np.ndarray, geometry: ScanGeometry) -> None:
        with self._lock:
            self._scans.append((stamp_ns, ranges, geometry))

    def add_latent(self, stamp_ns: int, mean: np.ndarray) -> None:
        with self._lock:
            self._latents.append((stamp_ns, mean))

    def newest_pair(self, not_before_ns: int) -> LivePair | None:
        """The newest camera frame stamped at or after `not_before_ns` that has a scan within the slop, with the
        scan nearest it; None when there is none."""
        with self._lock:
            frames, scans = list(self._frames), list(self._scans)
        for stamp, image in reversed(frames):
            if stamp < not_before_ns:
                break
            near = [(abs(s - stamp), s, r, g) for s, r, g in scans if abs(s - stamp) <= self.slop_ns]
            if near:
                _, _, ranges, geometry = min(near, key=lambda item: item[0])
                return LivePair(stamp, image, ranges, geometry)
        return None

    def latent_near(self, stamp_ns: int) -> np.ndarray | None:
        """The latent whose stamp is nearest `stamp_ns` (within the slop), else None."""
        with self._lock:
            latents = list(self._latents)
        near = [(abs(s - stamp_ns), z) for s, z in latents if abs(s - stamp_ns) <= self.slop_ns]
        return min(near, key=lambda item: item[0])[1] if near else None


@dataclass(frozen=True)
class AlignStarted:
    """Goal-image thread -> executor: the search at the start begins for the goal image of `generation` (the robot
    stops meanwhile); `found`, `descriptor`: the view memory's lookup (the view may still match while it runs)."""

    generation: int
    source: str
    found: Any
    descriptor: np.ndarray | None


@dataclass(frozen=True)
class AlignDone:
    """Goal-image thread -> executor: the search at the start ended: `result` (matched), or the camera expert's
    joint latent `camera_latent` and why (`reason`)."""

    generation: int
    source: str
    found: Any
    descriptor: np.ndarray | None
    camera_latent: np.ndarray
    result: AlignedGoal | None
    reason: str = ""


@dataclass(frozen=True)
class AlignRefreshed:
    """Goal-image thread -> executor: a search on the way found the goal of `generation` again (NCC accepted)."""

    generation: int
    result: AlignedGoal


class GoalAlign:
    """The alignment of goal images with the live view for one controller: its sensors, its searches (run on the
    goal-image thread) and its state (for /diagnostics; set by the executor).

    `encoder_dir`: the fused model's LiDAR expert (its backend is made on first use, on the goal-image thread:
    ONNX Runtime where exported, one thread); `camera_geometry(width, height)`: the camera as the parameters
    describe it, for frames of that size; `clock_ns`: the node's clock (the stamps' clock); `pair_slop_s`: seconds
    between a frame's and a scan's stamps that pair (the fused model's FusedConfig.pair_slop_s: the slop its training
    recording was paired with)."""

    def __init__(self, encoder_dir: Path, backend: str, device: str,
                 camera_geometry: Callable[[int, int], CameraGeometry], clock_ns: Callable[[], int],
                 pair_slop_s: float = SYNC_SLOP_S) -> None:
        self.sensors = LiveSensors(pair_slop_s)
        self._encoder_dir = encoder_dir
        self._runtime = (backend, device)
        self._camera_geometry = camera_geometry
        self._clock_ns = clock_ns
        self._encoder: Any = None
        self._closing = threading.Event()
        # Goal-image thread only: the finder of the newest search at the start (the refreshes' goal photo; a refresh
        # that belongs to an older goal is dropped by its goal generation, control_base._refresh_work).
        self._finder: ImageGoalFinder | None = None
        # Executor only (read by /diagnostics): what the alignment is doing.
        self.phase = NO_GOAL_IMAGE
        self.generation = -1  # the goal generation (control_base) the aligned goal is, while ALIGNED
        self.score = float("nan")
        self.refreshes = 0
        self.reason = ""
        self.started = 0.0  # time.monotonic() the search at the start began
        self.dropped = 0  # searches at the start that ended after a newer goal or a clear (never applied)
        # Written by the goal-image thread while it looks around (one assignment: atomic), read by the executor:
        # the turn in place to command while the controller's status is ALIGNING; None: stand still.
        self.look_command: tuple[float, float] | None = None

    def close(self) -> None:
        """Ends a wait for sensors at once (the node is going)."""
        self._closing.set()

    def describe(self) -> str:
        """/diagnostics `goal_align`."""
        if self.phase == SEARCHING:
            looking = ", looking around" if self.look_command is not None else ""
            return f"{SEARCHING} ({time.monotonic() - self.started:.1f} s{looking})"
        if self.phase == ALIGNED:
            return f"{ALIGNED} NCC {self.score:.3f} ({self.refreshes} refreshes)"
        if self.phase == FELL_BACK:
            return f"{FELL_BACK}: {self.reason}"
        return self.phase

    # -- goal-image thread -----------------------------------------------------------------------------------
    def _encode_scans(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._encoder is None:
            from vae_ros.core.backends import create_backend

            self._encoder = create_backend(self._encoder_dir, *self._runtime, threads=1)
        mean, logvar = self._encoder.encode(batch)
        return np.asarray(mean, dtype=np.float32), np.asarray(logvar, dtype=np.float32)

    def wait_for_pair(self, wait_s: float, current: Callable[[], bool], not_before_ns: int = 0) -> LivePair | None:
        """The newest fresh frame + scan pair (its frame stamped at or after `not_before_ns` too), waiting up to
        `wait_s` for one; None when none came, when `current()` turns false (a newer goal or a clear) or when the
        node closes."""
        deadline = time.monotonic() + wait_s
        while True:
            pair = self.sensors.newest_pair(max(self._clock_ns() - int(PAIR_MAX_AGE_S * 1e9), not_before_ns))
            if pair is not None or not current() or time.monotonic() >= deadline:
                return pair
            if self._closing.wait(0.05):
                return None

    def _hold(self, seconds: float, current: Callable[[], bool]) -> bool:
        """Let `seconds` pass on the node's clock (the command as it is): simulated time under use_sim_time, so a
        turn in a simulator slower than real time turns as far as in one that keeps up. False at once when
        `current()` turns false or the node closes, and when the clock has not advanced that far within
        LOOK_HOLD_WALL_FACTOR times as long of wall time plus 2 s (a paused simulator, no /clock), or when the clock
        goes back (a simulator reset, a bag that loops, a clock stepped back): the robot would turn on meanwhile."""
        start_ns = self._clock_ns()
        until_ns = start_ns + int(seconds * 1e9)
        wall_deadline = time.monotonic() + seconds * LOOK_HOLD_WALL_FACTOR + 2.0
        while (now_ns := self._clock_ns()) < until_ns:
            if now_ns < start_ns or not current() or self._closing.wait(0.02) or time.monotonic() > wall_deadline:
                return False
        return current()

    def look_around(self, first: LivePair, angle_deg: float, current: Callable[[], bool]) -> list[LivePair]:
        """Goal-image thread, the robot stopped: turn in place to +angle_deg, stop, take a view; turn to -angle_deg,
        stop, take a view (at LOOK_TURN_RATE, timed on the node's clock; the angles need not be exact, each view is
        searched on its own). The views, `first` (taken before turning) included; fewer when a newer goal or a
        clear comes, or no fresh pair follows a turn. The executor sends `look_command` meanwhile (through the scan
        safety layer); it is None again on return."""
        pairs = [first]
        try:
            if angle_deg <= 0:
                return pairs
            turn_s = math.radians(angle_deg) / LOOK_TURN_RATE
            for rate, seconds in ((LOOK_TURN_RATE, turn_s), (-LOOK_TURN_RATE, 2.0 * turn_s)):
                self.look_command = (0.0, rate)
                turned = self._hold(seconds, current)
                self.look_command = (0.0, 0.0)
                if not turned or not self._hold(LOOK_SETTLE_S, current):
                    break
                pair = self.wait_for_pair(PAIR_WAIT_S, current, not_before_ns=self._clock_ns())
                if pair is None:
                    break
                pairs.append(pair)
            return pairs
        finally:
            self.look_command = None

    def finder(self, photo: np.ndarray, camera_posterior: tuple[np.ndarray, np.ndarray], first: LivePair
               ) -> ImageGoalFinder:
        """The search's ImageGoalFinder for `photo` and views of the size of `first`: made before the robot looks
        around, so that a photo that cannot be aligned with this camera (InputError: another aspect, another camera
        or a crop) is known before it turns."""
        from vae_ros.core.backends import load_config

        height, width = first.image.shape[:2]
        return ImageGoalFinder(photo, self._camera_geometry(width, height), camera_posterior, self._encode_scans,
                               load_config(self._encoder_dir).scan_spec)

    def search_wide(self, finder: ImageGoalFinder, pairs: list[LivePair]) -> AlignedGoal:
        """The search at the start (ImageGoalFinder.wide) on each view, the best match kept (best_aligned); the
        finder is kept for the refreshes. Views of another size than the first are not searched."""
        height, width = pairs[0].image.shape[:2]
        results = [finder.wide(p.image, p.ranges, p.geometry) for p in pairs if p.image.shape[:2] == (height, width)]
        self._finder = finder
        return best_aligned(results)

    def search_local(self, estimate: Callable[[np.ndarray], np.ndarray | None]) -> AlignedGoal | None:
        """A search on the way (ImageGoalFinder.local) around `estimate(z)` (the goal in the robot frame from the
        latent z of the pair's instant); None without a fresh pair, a latent of its instant, an estimate or a sound
        match."""
        finder = self._finder
        if finder is None:
            return None
        pair = self.sensors.newest_pair(self._clock_ns() - int(PAIR_MAX_AGE_S * 1e9))
        if pair is None:
            return None
        z = self.sensors.latent_near(pair.stamp_ns)
        center = None if z is None else estimate(z)
        if center is None:
            return None
        try:
            return finder.local(pair.image, pair.ranges, pair.geometry, center)
        except InputError:  # a frame of another size than the one aligned at the start: no refresh from it
            return None
