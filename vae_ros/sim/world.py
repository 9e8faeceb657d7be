"""MuJoCo world for vae_ros (ROS-free): a walled room with coloured objects and a differential-drive robot.

The robot is a 10 kg cylinder on three planar joints (x, y slides and a yaw hinge). It is moved by physics:
velocity actuators with force limits drive the joints towards the world-frame velocity that a
differential drive with the commanded (linear, angular) speed would have, recomputed from the current yaw
at every physics step, so the base never slides sideways on purpose, accelerates at a bounded rate and
is stopped by contacts with walls and objects. It is never teleported except by `set_pose`.

Light: one of the LIGHTING presets (`lighting`), so that a route taught in one light can be repeated in another.

Sensors (all ideal, noise-free, deterministic; sim_node adds wheel-odometry error, vae_ros.sim.odometry):
- a forward RGB camera (MuJoCo offscreen rendering; MUJOCO_GL=egl on headless machines),
- a 2-D LiDAR: `scan_beams` beams over a full turn by ray casting, +inf for no return (REP-117),
- a 3-D LiDAR: `cloud_rings` rings between +/-15 deg (VLP-16 geometry) x `cloud_columns` columns,
- ground-truth pose (x, y, yaw) and body-frame velocity.

Frames (REP-103: x forward, y left, z up): `base_link` on the floor at the robot's centre; `lidar_link`
at LIDAR_OFFSET in base_link, for both LiDARs; the camera sits at CAMERA_OFFSET looking along base_link +x
(`camera_link`, REP-103 axes; its optical frame has z forward, x right, y down, REP-103 "_optical").
The room's object layout, jitter and colours come from the seed; physics and rendering are deterministic.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError, InputError
from vae_ros.sim.geometry import (
    ROBOT_RADIUS,
    ROOM_HALF_SIZE,
    clearance,
    wrap_angle,
)

# Walls (metres); the room's size and the robot's radius are in vae_ros.sim.geometry.
WALL_HEIGHT = 2.5
WALL_THICKNESS = 0.1
# Sensor mounts in base_link (x, y, z).
LIDAR_OFFSET = (0.0, 0.0, 0.4)
CAMERA_OFFSET = (0.21, 0.0, 0.3)
CAMERA_FOVY_DEG = 60.0

PHYSICS_TIMESTEP = 0.005  # s; 200 Hz physics, sensors at whatever rate step() is called
_ROBOT_MASS = 10.0  # kg
_ROBOT_IZZ = 0.2  # kg m^2
# Actuator force limits give the robot realistic accelerations: 20 N / 10 kg = 2 m/s^2, 2 N m / 0.2 = 10 rad/s^2.
_FORCE_LIMIT = 20.0
_TORQUE_LIMIT = 2.0
_KV_LINEAR = 400.0  # N s/m: velocity loop time constant m / kv = 25 ms
_KV_ANGULAR = 8.0  # N m s: time constant I / kv = 25 ms


@dataclass(frozen=True)
class Lighting:
    """The room's light: the camera's headlight (ambient and diffuse grey levels) and a directional sun
    (RGB diffuse colour, direction it shines in)."""

    ambient: float
    headlight: float
    sun_rgb: tuple[float, float, float]
    sun_dir: tuple[float, float, float]
    description: str


# The `lighting` presets of sim_node (the teach-and-repeat evaluation repeats a route under another one).
LIGHTING: dict[str, Lighting] = {
    "default": Lighting(0.35, 0.45, (0.5, 0.5, 0.5), (-0.3, -0.2, -1.0),
                        "even white light, mostly from the camera's headlight: what the packaged models saw"),
    "dim": Lighting(0.12, 0.22, (0.25, 0.25, 0.25), (-0.3, -0.2, -1.0),
                    "the same light at about half the brightness (dusk, lights dimmed)"),
    "bright": Lighting(0.55, 0.6, (0.8, 0.8, 0.8), (-0.3, -0.2, -1.0),
                       "about 1.5x brighter: colours wash out toward white"),
    "side": Lighting(0.18, 0.2, (0.95, 0.8, 0.6), (0.8, 0.5, -0.35),
                     "a low, warm (orange) sun from one side: faces toward it bright, faces away dark"),
}


@dataclass(frozen=True)
class SimObject:
    """An object in the room: where it stands on the floor, how big and which colour (RGB in [0, 1])."""

    name: str
    shape: str  # "box" | "cylinder" | "post" (a sphere on a thin post)
    x: float
    y: float
    yaw: float
    radius: float  # footprint radius (box: half the diagonal)
    height: float
    rgb: tuple[float, float, float]


# name, shape, nominal (x, y), half-extent, height, nominal RGB. Distinct hues so that views differ clearly.
_LAYOUT: tuple[tuple[str, str, float, float, float, float, tuple[float, float, float]], ...] = (
    ("red_box", "box", 2.0, 1.3, 0.25, 0.7, (0.85, 0.10, 0.10)),
    ("green_cylinder", "cylinder", -1.8, 2.0, 0.25, 0.9, (0.10, 0.70, 0.15)),
    ("blue_box", "box", 1.4, -2.0, 0.30, 0.6, (0.10, 0.20, 0.85)),
    ("yellow_cylinder", "cylinder", -2.1, -1.2, 0.22, 1.1, (0.90, 0.80, 0.10)),
    ("magenta_box", "box", 0.3, 2.3, 0.20, 1.3, (0.80, 0.10, 0.75)),
    ("cyan_post", "post", -0.6, -2.2, 0.25, 0.9, (0.10, 0.75, 0.80)),
    ("orange_box", "box", 2.3, -0.3, 0.20, 0.5, (0.95, 0.50, 0.05)),
    ("white_cylinder", "cylinder", -2.3, 0.7, 0.18, 1.4, (0.92, 0.92, 0.92)),
)
# Walls: (name, centre x, centre y, half length along x, half length along y, colour 1, colour 2).
_H = ROOM_HALF_SIZE + WALL_THICKNESS
_WALLS = (
    ("wall_north", 0.0, _H, _H, WALL_THICKNESS, (0.80, 0.72, 0.60), (0.70, 0.62, 0.50)),
    ("wall_south", 0.0, -_H, _H, WALL_THICKNESS, (0.55, 0.65, 0.80), (0.45, 0.55, 0.70)),
    ("wall_east", _H, 0.0, WALL_THICKNESS, _H, (0.65, 0.80, 0.60), (0.55, 0.70, 0.50)),
    ("wall_west", -_H, 0.0, WALL_THICKNESS, _H, (0.75, 0.65, 0.80), (0.65, 0.55, 0.70)),
)


@dataclass
class SimConfig:
    """What the world looks like and what its sensors measure. Everything else follows from the seed."""

    seed: int = 0
    image_width: int = 128
    image_height: int = 128
    initial_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x, y, yaw in the odom frame
    lighting: str = "default"  # a LIGHTING preset: what the camera sees (the LiDARs do not care)
    # Beam i of the 2-D LiDAR looks at -pi + (i + 0.5) * 2 pi / beams: the bin centres of ScanSpec's
    # default (-pi..pi) geometry, so each beam falls in the middle of its model bin.
    scan_beams: int = 360
    scan_range_min: float = 0.05
    scan_range_max: float = 10.0
    cloud_rings: int = 16
    cloud_columns: int = 256
    cloud_fov_up_deg: float = 15.0
    cloud_fov_down_deg: float = -15.0
    cloud_range_max: float = 10.0
    object_jitter: float = 0.25  # m, uniform jitter of each object's position, drawn from the seed
    max_linear: float = 1.0  # m/s, hard limit of the base
    max_angular: float = 2.0  # rad/s

    def validate(self) -> None:
        """Raise ConfigError for values the world cannot honour."""
        for name in ("image_width", "image_height"):
            size = getattr(self, name)
            if not 8 <= size <= 4096:
                raise ConfigError(f"{name} must be in 8..4096 pixels, got {size}")
        if self.scan_beams < 4:
            raise ConfigError(f"scan_beams must be >= 4, got {self.scan_beams}")
        if self.cloud_rings < 1 or self.cloud_columns < 4:
            raise ConfigError("cloud_rings must be >= 1 and cloud_columns >= 4")
        if not 0 <= self.scan_range_min < self.scan_range_max:
            raise ConfigError("scan_range_min must be >= 0 and below scan_range_max")
        if not self.cloud_fov_up_deg > self.cloud_fov_down_deg:
            raise ConfigError("cloud_fov_up_deg must be greater than cloud_fov_down_deg")
        if not self.cloud_range_max > 0:
            raise ConfigError("cloud_range_max must be positive")
        if not 0 <= self.object_jitter <= 0.5:
            raise ConfigError(f"object_jitter must be in 0..0.5 m, got {self.object_jitter}")
        if not (self.max_linear > 0 and self.max_angular > 0):
            raise ConfigError("max_linear and max_angular must be positive")
        if len(self.initial_pose) != 3 or not all(math.isfinite(v) for v in self.initial_pose):
            raise ConfigError(f"initial_pose must be three finite numbers [x, y, yaw], got {self.initial_pose}")
        if self.lighting not in LIGHTING:
            raise ConfigError(f"lighting must be one of {', '.join(LIGHTING)}, got {self.lighting!r}")


@dataclass(frozen=True)
class ScanGeometry:
    """LaserScan geometry (the message's fields): beam i is at angle_min + i * angle_increment."""

    angle_min: float
    angle_max: float
    angle_increment: float
    range_min: float
    range_max: float

    @property
    def angles(self) -> np.ndarray:
        """(beams,) beam angles in the lidar frame."""
        beams = int(round((self.angle_max - self.angle_min) / self.angle_increment)) + 1
        return self.angle_min + self.angle_increment * np.arange(beams)


@dataclass(frozen=True)
class Pose2D:
    """Planar pose of base_link in the odom frame."""

    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class Velocity2D:
    """Velocity of base_link expressed in base_link (REP-105 odometry twist): forward, left, yaw rate."""

    linear_x: float
    linear_y: float
    angular_z: float


def _generate_objects(seed: int, jitter: float) -> list[SimObject]:
    """Place the layout's objects with seeded position jitter, yaw and a slight colour change."""
    rng = np.random.default_rng(seed)
    objects = []
    for name, shape, x, y, half, height, rgb in _LAYOUT:
        dx, dy = rng.uniform(-jitter, jitter, size=2) if jitter > 0 else (0.0, 0.0)
        yaw = float(rng.uniform(-math.pi, math.pi)) if shape == "box" else 0.0
        colour = np.clip(np.asarray(rgb) + rng.uniform(-0.05, 0.05, size=3), 0.0, 1.0)
        radius = half * math.sqrt(2.0) if shape == "box" else half
        objects.append(SimObject(name, shape, float(x + dx), float(y + dy), yaw, radius, height,
                                 (float(colour[0]), float(colour[1]), float(colour[2]))))
    return objects


def _fmt(values: Any) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def build_mjcf(config: SimConfig, objects: list[SimObject]) -> str:
    """The world's MJCF (MuJoCo XML) for a config and an object layout."""
    light = LIGHTING[config.lighting]
    off_w = max(640, config.image_width)
    off_h = max(480, config.image_height)
    assets = []
    walls = []
    for name, cx, cy, hx, hy, rgb1, rgb2 in _WALLS:
        assets.append(
            f'<texture name="{name}" type="2d" builtin="checker" width="64" height="64" '
            f'rgb1="{_fmt(rgb1)}" rgb2="{_fmt(rgb2)}"/>'
            f'<material name="{name}" texture="{name}" texrepeat="2 2" texuniform="true"/>'
        )
        walls.append(
            f'<geom name="{name}" type="box" size="{_fmt((hx, hy, WALL_HEIGHT / 2))}" '
            f'pos="{_fmt((cx, cy, WALL_HEIGHT / 2))}" material="{name}"/>'
        )
    bodies = []
    for obj in objects:
        rgba = _fmt((*obj.rgb, 1.0))
        pos_xy = (obj.x, obj.y)
        if obj.shape == "box":
            half = obj.radius / math.sqrt(2.0)
            geom = (f'<geom name="{obj.name}" type="box" size="{_fmt((half, half, obj.height / 2))}" '
                    f'pos="{_fmt((*pos_xy, obj.height / 2))}" euler="0 0 {obj.yaw:.6g}" rgba="{rgba}"/>')
        elif obj.shape == "cylinder":
            geom = (f'<geom name="{obj.name}" type="cylinder" size="{_fmt((obj.radius, obj.height / 2))}" '
                    f'pos="{_fmt((*pos_xy, obj.height / 2))}" rgba="{rgba}"/>')
        else:  # a sphere on a thin post of the same colour
            post_h = obj.height - obj.radius
            geom = (f'<geom name="{obj.name}_post" type="cylinder" size="{_fmt((0.05, post_h / 2))}" '
                    f'pos="{_fmt((*pos_xy, post_h / 2))}" rgba="{rgba}"/>'
                    f'<geom name="{obj.name}" type="sphere" size="{obj.radius:.6g}" '
                    f'pos="{_fmt((*pos_xy, post_h))}" rgba="{rgba}"/>')
        bodies.append(geom)
    return f"""
<mujoco model="vae_ros_room">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_TIMESTEP}" integrator="implicitfast"/>
  <visual>
    <global offwidth="{off_w}" offheight="{off_h}"/>
    <headlight ambient="{_fmt((light.ambient,) * 3)}" diffuse="{_fmt((light.headlight,) * 3)}" specular="0 0 0"/>
    <quality shadowsize="0"/>
  </visual>
  <default>
    <geom contype="1" conaffinity="1" friction="0.8 0.005 0.0001"/>
  </default>
  <asset>
    <texture name="floor" type="2d" builtin="checker" width="128" height="128"
             rgb1="0.42 0.40 0.38" rgb2="0.30 0.29 0.28"/>
    <material name="floor" texture="floor" texrepeat="6 6" texuniform="false"/>
    {"".join(assets)}
  </asset>
  <worldbody>
    <light name="sun" directional="true" pos="0 0 {WALL_HEIGHT:.3g}" dir="{_fmt(light.sun_dir)}"
           diffuse="{_fmt(light.sun_rgb)}" castshadow="false"/>
    <geom name="floor" type="plane" size="{_H:.6g} {_H:.6g} 0.1" material="floor" contype="0" conaffinity="0"/>
    <geom name="ceiling" type="box" size="{_H:.6g} {_H:.6g} 0.05" pos="0 0 {WALL_HEIGHT + 0.05:.6g}"
          rgba="0.85 0.85 0.82 1" contype="0" conaffinity="0"/>
    {"".join(walls)}
    {"".join(bodies)}
    <body name="base_link" pos="0 0 0">
      <joint name="base_x" type="slide" axis="1 0 0"/>
      <joint name="base_y" type="slide" axis="0 1 0"/>
      <joint name="base_yaw" type="hinge" axis="0 0 1"/>
      <inertial pos="0 0 0.12" mass="{_ROBOT_MASS}" diaginertia="0.15 0.15 {_ROBOT_IZZ}"/>
      <geom name="chassis" type="cylinder" size="{ROBOT_RADIUS} 0.1" pos="0 0 0.12" rgba="0.15 0.15 0.18 1"/>
      <geom name="lidar_puck" type="cylinder" size="0.05 0.03" pos="{_fmt(LIDAR_OFFSET[:2])} {LIDAR_OFFSET[2] - 0.03:.6g}"
            rgba="0.1 0.1 0.1 1" contype="0" conaffinity="0"/>
      <site name="lidar_link" pos="{_fmt(LIDAR_OFFSET)}"/>
      <camera name="front" pos="{_fmt(CAMERA_OFFSET)}" xyaxes="0 -1 0 0 0 1" fovy="{CAMERA_FOVY_DEG}"/>
    </body>
  </worldbody>
  <actuator>
    <velocity name="drive_x" joint="base_x" kv="{_KV_LINEAR}" forcerange="-{_FORCE_LIMIT} {_FORCE_LIMIT}"/>
    <velocity name="drive_y" joint="base_y" kv="{_KV_LINEAR}" forcerange="-{_FORCE_LIMIT} {_FORCE_LIMIT}"/>
    <velocity name="drive_yaw" joint="base_yaw" kv="{_KV_ANGULAR}" forcerange="-{_TORQUE_LIMIT} {_TORQUE_LIMIT}"/>
  </actuator>
</mujoco>
"""


def _import_mujoco() -> Any:
    """Import MuJoCo, choosing headless EGL rendering when nothing else was asked for and no display exists."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    import mujoco

    return mujoco


class SimWorld:
    """The simulated room and robot. Not thread-safe: one owner calls step/render/scan/pointcloud in turn."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self.config.validate()
        self._mj = _import_mujoco()
        self.objects = _generate_objects(self.config.seed, self.config.object_jitter)
        mj = self._mj
        self.model = mj.MjModel.from_xml_string(build_mjcf(self.config, self.objects))
        self.data = mj.MjData(self.model)
        self._robot_body = self.model.body("base_link").id
        self._lidar_site = self.model.site("lidar_link").id
        self._qpos = [self.model.jnt_qposadr[self.model.joint(n).id] for n in ("base_x", "base_y", "base_yaw")]
        self._qvel = [self.model.jnt_dofadr[self.model.joint(n).id] for n in ("base_x", "base_y", "base_yaw")]
        self._renderer: Any = None
        self._multiray_has_normal = "normal" in (mj.mj_multiRay.__doc__ or "").split("\n", 1)[0]
        self._scan_dirs = self._build_scan_directions()  # (beams, 3) in the lidar frame
        self._cloud_dirs = self._build_cloud_directions()  # (rings * columns, 3) in the lidar frame
        self._target_time = 0.0
        mj.mj_forward(self.model, self.data)
        x, y, yaw = self.config.initial_pose
        self.set_pose(x, y, yaw)

    # -- geometry ----------------------------------------------------------------------------------------
    @property
    def scan_geometry(self) -> ScanGeometry:
        cfg = self.config
        increment = 2 * math.pi / cfg.scan_beams
        angle_min = -math.pi + increment / 2
        return ScanGeometry(angle_min, angle_min + increment * (cfg.scan_beams - 1), increment,
                            cfg.scan_range_min, cfg.scan_range_max)

    def _build_scan_directions(self) -> np.ndarray:
        angles = self.scan_geometry.angles
        return np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)

    @property
    def cloud_elevations(self) -> np.ndarray:
        """(rings,) ring elevation angles in radians, top ring first."""
        cfg = self.config
        if cfg.cloud_rings == 1:
            return np.zeros(1)
        return np.radians(np.linspace(cfg.cloud_fov_up_deg, cfg.cloud_fov_down_deg, cfg.cloud_rings))

    @property
    def cloud_azimuths(self) -> np.ndarray:
        """(columns,) column azimuths: the centres of equal bins from -pi, counter-clockwise."""
        cols = self.config.cloud_columns
        return -math.pi + (np.arange(cols) + 0.5) * (2 * math.pi / cols)

    def _build_cloud_directions(self) -> np.ndarray:
        elev = self.cloud_elevations[:, None]  # (rings, 1)
        azim = self.cloud_azimuths[None, :]  # (1, cols)
        dirs = np.stack(np.broadcast_arrays(np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim),
                                            np.sin(elev)), axis=-1)  # (rings, cols, 3)
        return dirs.reshape(-1, 3)

    # -- state -------------------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """Simulated time in seconds since the world was built."""
        return float(self.data.time)

    def pose(self) -> Pose2D:
        """Ground-truth pose of base_link in the odom (world) frame; yaw wrapped to (-pi, pi]."""
        qpos = self.data.qpos
        yaw = wrap_angle(float(qpos[self._qpos[2]]))
        return Pose2D(float(qpos[self._qpos[0]]), float(qpos[self._qpos[1]]), yaw)

    def velocity(self) -> Velocity2D:
        """Ground-truth velocity of base_link, expressed in base_link."""
        qvel = self.data.qvel
        vx, vy, wz = (float(qvel[i]) for i in self._qvel)
        yaw = float(self.data.qpos[self._qpos[2]])
        c, s = math.cos(yaw), math.sin(yaw)
        return Velocity2D(c * vx + s * vy, -s * vx + c * vy, wz)

    def set_pose(self, x: float, y: float, yaw: float) -> None:
        """Place the robot at rest at (x, y, yaw); raise ConfigError when that is outside the room or in an object."""
        if not all(math.isfinite(v) for v in (x, y, yaw)):
            raise ConfigError(f"pose must be finite numbers, got ({x}, {y}, {yaw})")
        if clearance(x, y, ()) < 0:
            limit = ROOM_HALF_SIZE - ROBOT_RADIUS
            raise ConfigError(f"pose ({x:.2f}, {y:.2f}) is outside the room: |x| and |y| must be <= {limit:.2f} m")
        for obj in self.objects:
            if clearance(x, y, (obj,)) < 0:
                raise ConfigError(f"pose ({x:.2f}, {y:.2f}) overlaps {obj.name} at ({obj.x:.2f}, {obj.y:.2f})")
        qpos = self.data.qpos
        qpos[self._qpos[0]] = x
        qpos[self._qpos[1]] = y
        qpos[self._qpos[2]] = yaw
        self.data.qvel[:] = 0.0
        self.data.ctrl[:] = 0.0
        self._mj.mj_forward(self.model, self.data)

    def clearance(self, x: float, y: float) -> float:
        """Free distance (m) from a robot-sized disc at (x, y) to the nearest wall or object footprint (< 0:
        collision): vae_ros.sim.geometry.clearance for this room's objects."""
        return clearance(x, y, self.objects)

    # -- motion ------------------------------------------------------------------------------------------
    def step(self, linear: float, angular: float, dt: float) -> None:
        """Drive with (linear m/s, angular rad/s), clamped to the base's limits, for dt seconds of physics.

        Physics runs in PHYSICS_TIMESTEP steps; `time` stays within half a step of the sum of all dt.
        """
        if not (math.isfinite(linear) and math.isfinite(angular)):
            raise InputError(f"velocity command must be finite, got ({linear}, {angular})")
        if not (math.isfinite(dt) and dt > 0):
            raise InputError(f"dt must be a positive number of seconds, got {dt}")
        cfg = self.config
        linear = min(max(linear, -cfg.max_linear), cfg.max_linear)
        angular = min(max(angular, -cfg.max_angular), cfg.max_angular)
        # Physics advances in whole steps; aiming at an accumulated target time keeps the clock exact in the
        # long run when dt is not a multiple of the physics step (each call lands within half a step).
        self._target_time += dt
        steps = max(0, int(round((self._target_time - self.data.time) / PHYSICS_TIMESTEP)))
        qpos, ctrl = self.data.qpos, self.data.ctrl
        yaw_adr = self._qpos[2]
        mj_step = self._mj.mj_step
        for _ in range(steps):
            yaw = qpos[yaw_adr]
            # World-frame velocity of a differential drive: no commanded sideways motion.
            ctrl[0] = linear * math.cos(yaw)
            ctrl[1] = linear * math.sin(yaw)
            ctrl[2] = angular
            mj_step(self.model, self.data)

    # -- sensors -----------------------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """(image_height, image_width, 3) uint8 RGB from the forward camera."""
        if self._renderer is None:
            self._renderer = self._mj.Renderer(self.model, self.config.image_height, self.config.image_width)
        self._renderer.update_scene(self.data, camera="front")
        return np.asarray(self._renderer.render(), dtype=np.uint8)

    def _lidar_origin(self) -> tuple[np.ndarray, np.ndarray]:
        pos = np.array(self.data.site_xpos[self._lidar_site], dtype=np.float64)  # (3,)
        rot = np.array(self.data.site_xmat[self._lidar_site], dtype=np.float64).reshape(3, 3)  # lidar -> world
        return pos, rot

    def _cast(self, dirs_local: np.ndarray, cutoff: float) -> np.ndarray:
        """Distances along unit rays from the lidar origin (lidar frame directions); -1 for no hit."""
        pos, rot = self._lidar_origin()
        vec = np.ascontiguousarray((dirs_local @ rot.T).reshape(-1))  # (n * 3,) world frame
        n = dirs_local.shape[0]
        geomid = np.empty(n, dtype=np.int32)
        dist = np.empty(n, dtype=np.float64)
        if self._multiray_has_normal:
            self._mj.mj_multiRay(self.model, self.data, pos, vec, None, 1, self._robot_body, geomid, dist,
                                 None, n, cutoff)
        else:  # MuJoCo < 3.3 has no `normal` argument
            self._mj.mj_multiRay(self.model, self.data, pos, vec, None, 1, self._robot_body, geomid, dist,
                                 n, cutoff)
        return dist

    def scan(self) -> np.ndarray:
        """(scan_beams,) float32 ranges in metres at scan_geometry.angles; +inf no return, -inf too close."""
        cfg = self.config
        dist = self._cast(self._scan_dirs, cfg.scan_range_max)
        ranges = dist.astype(np.float32)
        ranges[(dist < 0) | (dist > cfg.scan_range_max)] = np.inf
        ranges[(dist >= 0) & (dist < cfg.scan_range_min)] = -np.inf
        return ranges

    def pointcloud(self) -> np.ndarray:
        """(rings * columns, 3) float32 points in lidar_link, ring-major (top ring first); NaN for no return.

        The order makes it an organised cloud of height `cloud_rings` and width `cloud_columns`.
        """
        cfg = self.config
        dist = self._cast(self._cloud_dirs, cfg.cloud_range_max)
        points = (self._cloud_dirs * dist[:, None]).astype(np.float32)  # (N, 3)
        points[(dist < 0) | (dist > cfg.cloud_range_max)] = np.nan
        return points

    def close(self) -> None:
        """Release the renderer (its GL context). The world can still step and cast rays afterwards."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> SimWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
