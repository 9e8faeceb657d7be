"""A control model directory as the servo uses it (ROS-free): encoder, servo head and calibrated tolerance.

A control model is a vae_ros model directory (or a fused camera + LiDAR model whose LiDAR expert is one:
latent_model_dir) (model.json + weights.safetensors, exports beside them)
trained with the pose-metric term (`vae-ros train --pose-topic`), plus `servo_head.safetensors` (the
relative-pose head, vae_ros.control.runtime.pose_head) and, in model.json under training.control, the latent
error tolerance calibrated to mean <= 0.10 m and 5 deg. latent_servo_node and the in-process evaluation
both go through this class, so they see the same numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.runtime.pose_head import PoseHeadNumpy
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.core.preprocess import preprocess_scan

CONTROL_MODEL = "control_default"


def control_model_dir(path: str) -> Path:
    """A `model` parameter / --model flag -> a directory: empty means the packaged models/control_default."""
    if path.strip():
        return Path(path.strip()).expanduser()
    from vae_ros.resources import models_dir

    return models_dir() / CONTROL_MODEL


def latent_model_dir(model_dir: str | Path) -> Path:
    """The model directory whose latent space a controller works in: the directory itself, or for a fused camera
    + LiDAR model (vae_ros.core.fused) its LiDAR expert, `<model>/scan`. The fused model's joint latent IS that
    expert's latent (the camera's expert is trained onto it), so its latent size, training summary (latent
    range, calibrated tolerance) and weights digest stand for the fused model's: a route or dynamics taught on
    the control model's latents serve the fused model whose LiDAR expert is that control model, and back."""
    from vae_ros.core.fused import is_fused_model, load_fused_config

    root = Path(model_dir)
    if not is_fused_model(root):
        return root
    config = load_fused_config(root)
    if "scan" not in config.sensors:
        raise ConfigError(f"fused model {root} has no scan expert (sensors {', '.join(config.sensors)}); the "
                          "controllers work in the LiDAR's control-fit latent space")
    return root / "scan"


def goal_camera_dir(model_dir: str | Path) -> Path | None:
    """A fused model's camera expert, `<model>/camera`, which turns a goal image into the joint latent (the expert is
    trained onto the LiDAR's latent space: docs/FUSION.md); None for a single-sensor model or a fused one without
    a camera."""
    from vae_ros.core.fused import is_fused_model, load_fused_config

    root = Path(model_dir)
    if not is_fused_model(root) or "camera" not in load_fused_config(root).sensors:
        return None
    return root / "camera"


def servo_head_dir(model_dir: str | Path) -> Path:
    """Where a model's relative-pose head (servo_head.safetensors) is: the directory itself, or for a fused model
    its top level when the head is there, else its LiDAR expert's (latent_model_dir)."""
    from vae_ros.core.model_dir import SERVO_HEAD_FILE

    root = Path(model_dir)
    return root if os.path.lexists(root / SERVO_HEAD_FILE) else latent_model_dir(root)


def calibrated_tolerance(training: dict[str, Any]) -> float | None:
    """training.control.tolerance of a control model's model.json; None when it was never calibrated."""
    control = training.get("control") if isinstance(training, dict) else None
    value = control.get("tolerance") if isinstance(control, dict) else None
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.json training.control.tolerance must be a number, got {value!r}") from err
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"model.json training.control.tolerance must be positive, got {value}")
    return value


class ControlModel:
    """Encoder (through a vae_ros backend) + servo head + tolerance of one control model directory."""

    def __init__(self, model_dir: str | Path, backend: str = "auto", device: str = "cpu",
                 threads: int | None = None) -> None:
        from vae_ros.core.backends import load_config

        self.model_dir = Path(model_dir)
        self.latent_dir = latent_model_dir(self.model_dir)  # a fused model's LiDAR expert
        self.config = load_config(self.latent_dir)
        if self.config.modality != "scan":
            raise ConfigError(f"{self.model_dir} is a {self.config.modality!r} model; the latent servo's packaged "
                              "control models are LaserScan models (train one with `vae-ros train --pose-topic`)")
        self.head = PoseHeadNumpy.load(servo_head_dir(self.model_dir), self.config.latent_dim)
        self.tolerance = calibrated_tolerance(self.config.training)
        self._backend_args = (backend, device, threads)
        self._backend: Any = None

    @property
    def backend(self) -> Any:
        """The encoder's runtime, created on first use: latent_servo_node never encodes (its latents come
        from encoder_node), the in-process evaluation does."""
        if self._backend is None:
            from vae_ros.core.backends import create_backend

            backend, device, threads = self._backend_args
            self._backend = create_backend(self.latent_dir, backend, device, threads=threads)
        return self._backend

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def scan_latents(self, scans: np.ndarray, angle_min: float, angle_increment: float, range_min: float,
                     range_max: float) -> np.ndarray:
        """(K, beams) LaserScan ranges of one geometry -> (K, D) latent means (the encoder node's path)."""
        return encode_scans(self.backend, self.config.scan_spec, scans, angle_min, angle_increment, range_min,
                            range_max)

    def latent(self, world: Any) -> np.ndarray:
        """(D,) latent of what the simulated robot's LiDAR sees now (a vae_ros.sim.world.SimWorld)."""
        geo = world.scan_geometry
        return self.scan_latents(world.scan()[None], geo.angle_min, geo.angle_increment, geo.range_min,
                                 geo.range_max)[0]

    def turned_views(self, latents: np.ndarray) -> np.ndarray | None:
        """(1 + T, K, D) the route follower's views of keyframe latents (route_follower.turned_views), or None
        when the model's LiDAR does not see the full turn (a turned scan would need what it never saw)."""
        from vae_ros.control.runtime.route_follower import scan_turned_views

        return scan_turned_views(self.backend, self.config, latents)

    def turned_scan_latents(self, ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float,
                            range_max: float, turns: np.ndarray) -> np.ndarray:
        """(T, D) latents of one full-turn LaserScan (beams,) as the robot would see it turned in place by each of
        `turns` (rad): a robot turned by +t sees its scan rolled by -t (whole beams). The world model planner's
        `turned_scan` localiser (vae_ros.control.runtime.planner.plan_step)."""
        return self.scan_latents(turned_scans(ranges, angle_increment, turns), angle_min, angle_increment,
                                 range_min, range_max).astype(np.float32)

    def goal_turner(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        """The world model planner's goal_turner for this model: (goal latent (D,), turns (T,) rad) -> (T, D)
        latents of the goal's place seen with its yaw + each turn (its scan decoded, rolled, encoded again:
        route_follower.turned_views); None when the model's LiDAR does not see the full turn."""
        from vae_ros.control.runtime.route_follower import full_turn_scan_model

        if not full_turn_scan_model(self.config):
            return None
        return lambda z_goal, turns: goal_turner(self.backend, z_goal, turns)

    def estimate(self, z: np.ndarray, z_goal: np.ndarray) -> np.ndarray:
        """(3,) the goal's (dx, dy, dyaw) in the robot frame, from the two latents."""
        return self.head.estimate(z, z_goal)


def goal_turner(backend: Any, z_goal: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """(T, D) a full-turn LiDAR model's latents of the goal's place seen with its yaw + each of `turns` (rad):
    a robot turned by +t sees its scan rolled by -t (route_follower.turned_views rolls by +angle)."""
    from vae_ros.control.runtime.route_follower import turned_views

    angles = tuple(-math.degrees(float(t)) for t in np.asarray(turns).reshape(-1))
    views = turned_views(np.asarray(z_goal, np.float32).reshape(1, -1), backend.decode,
                         lambda x: backend.encode(x)[0], angles)  # (1 + T, 1, D)
    return np.asarray(views[1:, 0], np.float32)


def turned_scans(ranges: np.ndarray, angle_increment: float, turns: np.ndarray) -> np.ndarray:
    """(T, beams) one full-turn scan (beams,) as seen turned in place by each of `turns` (rad): rolled by -t in
    whole beams. Refuses a scan that does not cover the full turn (a turned one would need beams it never saw)."""
    r = np.asarray(ranges, np.float32).reshape(-1)
    if not (angle_increment > 0 and abs(r.size * angle_increment - 2.0 * math.pi) <= 1.5 * angle_increment):
        raise InputError(f"a scan of {r.size} beams {angle_increment:.4f} rad apart does not cover the full turn; "
                         "only a full-turn scan can be turned in place")
    shifts = [-int(round(float(t) / angle_increment)) for t in np.asarray(turns).reshape(-1)]
    return np.stack([np.roll(r, shift) for shift in shifts])


def encode_scans(backend: Any, spec: Any, scans: np.ndarray, angle_min: float, angle_increment: float,
                 range_min: float, range_max: float) -> np.ndarray:
    """(K, beams) LaserScan ranges of one geometry -> (K, D) latent means, by a scan model's backend
    (vae_ros.core.backends) and its scan_spec: the encoder node's path."""
    batch = np.stack([preprocess_scan(r, angle_min, angle_increment, range_min, range_max, spec)
                      for r in np.atleast_2d(np.asarray(scans, dtype=np.float32))])  # (K, 2, beams)
    mean, _ = backend.encode(batch)
    return np.asarray(mean, dtype=np.float64)
