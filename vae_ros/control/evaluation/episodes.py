"""Closed-loop servo episodes in the simulator, in-process and faster than real time (ROS-free).

An episode places the robot at a goal pose, records the goal observation, moves the robot to a start
pose and runs the same control law the latent_servo_node runs (vae_ros.control.runtime.servo) on what the robot
senses, stepping MuJoCo physics between control steps, until the servo declares convergence or gives up
(LOST, or the time limit). It is judged by the simulator's ground truth: success means within 0.10 m and
5 deg of the goal. Episodes are sampled with a seed: starts 0.3-1.0 m and up to 45 deg from the goal,
with a free straight path, goals away from walls and objects (`sample_episodes`), or hard ones where a
local servo fails (`sample_hard_episodes`): the goal behind the robot and turned 90-180 deg from it,
1-2 m away, a share of them with the straight path blocked by an object.

The controller is the servo law by default; `WorldModelController` runs the world model's MPC instead
(vae_ros.control.runtime.planner, what world_model_node runs), with the LaserScan collision cost. Every command
goes through the scan safety layer the nodes run (vae_ros.control.runtime.safety.guard_command on the robot's own
LaserScan; `safety`, on by default) before it reaches the base. Every episode records whether the robot
touched anything (ground truth), how close it came, how often the layer slowed or stopped it and how long
each control step took.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from vae_ros.control.runtime.control_model import ControlModel
from vae_ros.control.runtime.planner import SERVO, MpcConfig, MpcState, plan_step, scan_obstacles
from vae_ros.control.runtime.safety import SLOWED, STOPPED, SafetyConfig, guard_command, scan_points
from vae_ros.control.runtime.servo import CONVERGED, LOST, ServoConfig, ServoState, servo_step
from vae_ros.control.training.metric import SUCCESS_POSITION_M, SUCCESS_YAW_RAD
from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import wrap_angle


@dataclass(frozen=True)
class Episode:
    """One start/goal pair in one world (poses x, y, yaw in the odom frame)."""

    seed: int
    start: tuple[float, float, float]
    goal: tuple[float, float, float]

    @property
    def start_distance(self) -> float:
        return math.hypot(self.start[0] - self.goal[0], self.start[1] - self.goal[1])

    @property
    def start_yaw_error(self) -> float:
        return abs(wrap_angle(self.start[2] - self.goal[2]))


@dataclass
class EpisodeResult:
    episode: Episode
    success: bool
    converged: bool  # the servo declared convergence (it may be wrong: success is ground truth)
    status: str
    final_position_error: float  # m
    final_yaw_error: float  # rad
    time_s: float  # simulated seconds until convergence or the end
    path_length: float  # m driven
    path_ratio: float  # path length / straight-line start-goal distance
    trajectory: list[tuple[float, float, float]] = field(default_factory=list, repr=False)  # (x, y, yaw)
    latent_error: list[float] = field(default_factory=list, repr=False)  # per control step
    collided: bool = False  # the robot's disc touched a wall or an object (ground truth)
    min_clearance: float = math.inf  # m: closest the robot came to anything
    step_ms: list[float] = field(default_factory=list, repr=False)  # controller time per control step
    handover_s: float | None = None  # world model: simulated s when the servo law took over (None: never)
    safety_slowed: int = 0  # control steps the scan safety layer slowed the robot
    safety_stopped: int = 0  # control steps it stopped the robot's linear motion

    def to_dict(self, with_traces: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out.pop("step_ms")
        if self.step_ms:
            out["step_ms_p50"] = float(np.median(self.step_ms))
            out["step_ms_p90"] = float(np.percentile(self.step_ms, 90))
        if not with_traces:
            out.pop("trajectory")
            out.pop("latent_error")
        return out


def pose_error(pose: tuple[float, float, float], goal: tuple[float, float, float]) -> tuple[float, float]:
    """(position error m, absolute yaw error rad)."""
    return math.hypot(pose[0] - goal[0], pose[1] - goal[1]), abs(wrap_angle(pose[2] - goal[2]))


def path_is_free(world: Any, a: tuple[float, float], b: tuple[float, float], margin: float = 0.05) -> bool:
    """True when a robot-sized disc moving straight from a to b keeps `margin` from everything."""
    samples = max(2, int(math.hypot(b[0] - a[0], b[1] - a[1]) / 0.02) + 1)
    return all(world.clearance(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])) >= margin
               for t in np.linspace(0.0, 1.0, samples))


def sample_episodes(world: Any, count: int, rng: np.random.Generator, min_distance: float = 0.3,
                    max_distance: float = 1.0, max_yaw: float = math.radians(45.0),
                    goal_clearance: float = 0.35) -> list[Episode]:
    """`count` start/goal pairs in `world` (a SimWorld): free goals, starts at the given distance and yaw."""
    episodes: list[Episode] = []
    attempts = 0
    while len(episodes) < count:
        attempts += 1
        if attempts > 200 * count + 1000:
            raise ConfigError(f"could not place {count} episodes in world seed {world.config.seed}")
        gx, gy = rng.uniform(-2.5, 2.5, size=2)
        if world.clearance(gx, gy) < goal_clearance:
            continue
        gyaw = float(rng.uniform(-math.pi, math.pi))
        dist = min_distance + (max_distance - min_distance) * math.sqrt(rng.uniform())
        bearing = rng.uniform(-math.pi, math.pi)
        sx, sy = gx + dist * math.cos(bearing), gy + dist * math.sin(bearing)
        if world.clearance(sx, sy) < 0.05 or not path_is_free(world, (sx, sy), (gx, gy)):
            continue
        syaw = wrap_angle(gyaw + float(rng.uniform(-max_yaw, max_yaw)))
        episodes.append(Episode(int(world.config.seed), (float(sx), float(sy), syaw), (float(gx), float(gy), gyaw)))
    return episodes


def sample_hard_episodes(world: Any, count: int, rng: np.random.Generator, min_distance: float = 1.0,
                         max_distance: float = 2.0, min_yaw: float = math.radians(90.0),
                         blocked_share: float = 1.0 / 3.0, goal_clearance: float = 0.35,
                         start_clearance: float = 0.1) -> list[Episode]:
    """`count` starts where a local servo fails: the goal lies behind the robot (bearing from its heading
    90-180 deg) and is turned min_yaw-180 deg from it, 1-2 m away; every 1/blocked_share-th episode has its
    straight path blocked by an object, the others a free one."""
    episodes: list[Episode] = []
    attempts = 0
    every = round(1.0 / blocked_share) if blocked_share > 0 else 0
    while len(episodes) < count:
        attempts += 1
        if attempts > 2000 * count + 1000:
            raise ConfigError(f"could not place {count} hard episodes in world seed {world.config.seed}")
        blocked = bool(every) and len(episodes) % every == every - 1
        gx, gy = rng.uniform(-2.5, 2.5, size=2)
        if world.clearance(gx, gy) < goal_clearance:
            continue
        gyaw = float(rng.uniform(-math.pi, math.pi))
        dist = float(rng.uniform(min_distance, max_distance))
        bearing = rng.uniform(-math.pi, math.pi)  # of the start, seen from the goal
        sx, sy = gx + dist * math.cos(bearing), gy + dist * math.sin(bearing)
        if abs(sx) > 2.7 or abs(sy) > 2.7 or world.clearance(sx, sy) < start_clearance:
            continue
        if path_is_free(world, (sx, sy), (gx, gy)) == blocked:
            continue
        # The goal behind the robot: the start heading points 90-180 deg away from the goal's direction.
        to_goal = math.atan2(gy - sy, gx - sx)
        syaw = wrap_angle(to_goal + math.pi + float(rng.uniform(-math.pi / 2, math.pi / 2)))
        if abs(wrap_angle(syaw - gyaw)) < min_yaw:
            continue
        episodes.append(Episode(int(world.config.seed), (float(sx), float(sy), syaw), (float(gx), float(gy), gyaw)))
    return episodes


@dataclass(frozen=True)
class EpisodeConfig:
    control_rate: float = 10.0  # Hz: the camera / LiDAR rate the node runs at
    time_limit: float = 40.0  # simulated seconds
    settle_after_converged: float = 0.5  # s of physics after convergence so the robot has stopped


class ServoModel(Protocol):
    """What an episode needs of any representation: the current observation's latent and the goal estimate.

    vae_ros.control.evaluation.baselines.BaselineEstimator is one (baseline representations with their own head).
    """

    def latent(self, world: Any) -> np.ndarray:
        """(D,) latent of what the robot in `world` (a SimWorld) senses now."""
        ...

    def estimate(self, z: np.ndarray, z_goal: np.ndarray) -> np.ndarray:
        """(3,) the goal's (dx, dy, dyaw) in the robot frame."""
        ...


class WorldModelController:
    """The world model's MPC as an episode's controller: plan_step on the latent, with the collision cost
    from the robot's own LaserScan when `collision` (as world_model_node runs it)."""

    def __init__(self, config: MpcConfig, collision: bool = True, model: ControlModel | None = None) -> None:
        config.validate()
        self.config = config
        self.collision = collision
        self.model = model  # encodes the turned scan for the "turned_scan" localiser

    def step(self, state: MpcState | None, z: np.ndarray, z_goal: np.ndarray,
             world: Any) -> tuple[MpcState, tuple[float, float]]:
        obstacles = None
        geo = world.scan_geometry
        if self.collision:
            obstacles = scan_obstacles(world.scan(), geo.angle_min, geo.angle_increment)
        turned_scan = None
        if self.model is not None and self.config.localiser == "turned_scan":
            model = self.model

            def turned_scan(turns: np.ndarray) -> np.ndarray:
                return model.turned_scan_latents(world.scan(), geo.angle_min, geo.angle_increment, geo.range_min,
                                                 geo.range_max, turns)
        return plan_step(state if state is not None else MpcState(), z, z_goal, self.config, obstacles, turned_scan)


def run_episode(world: Any, model: ControlModel | ServoModel, episode: Episode, servo: ServoConfig,
                config: EpisodeConfig = EpisodeConfig(), keep_traces: bool = True,
                controller: WorldModelController | None = None,
                safety: SafetyConfig = SafetyConfig()) -> EpisodeResult:
    """Servo from episode.start to the goal observation in `world` (already built for episode.seed).

    `model` is a ControlModel (the LaserScan latent, as latent_servo_node runs it) or any ServoModel; a
    camera representation needs `world` built with the image size it was trained on. With `controller`
    the world model's MPC drives instead of the servo law (`servo` is then unused). Each command passes the
    scan safety layer (`safety`; SafetyConfig(enabled=False) sends it unchecked), and the controller's state
    carries the command that was sent, as in the nodes.
    """

    def latent() -> np.ndarray:
        return model.latent(world)

    world.set_pose(*episode.goal)
    z_goal = latent()
    world.set_pose(*episode.start)
    dt = 1.0 / config.control_rate
    state: Any = ServoState() if controller is None else None
    trajectory: list[tuple[float, float, float]] = []
    errors: list[float] = []
    step_ms: list[float] = []
    path = 0.0
    t = 0.0
    handover_s = None
    slowed = stopped = 0
    pose = world.pose()
    min_clearance = world.clearance(pose.x, pose.y)
    while t < config.time_limit:
        trajectory.append((pose.x, pose.y, pose.yaw))
        z = latent()
        # A representation that moves the robot itself first (fused_goal's `align+look` looking around before
        # its goal is known): its command, through the safety layer below; the servo waits.
        override = model.command_override() if controller is None and hasattr(model, "command_override") else None
        started = time.perf_counter()
        if override is not None:
            v, w = override
            state = replace(state, command=(v, w))
        else:
            # A fused model that lost a sensor compares with the goal as the remaining sensors saw it.
            goal = model.goal_latent(z_goal) if hasattr(model, "goal_latent") else z_goal
            if controller is None:
                state, (v, w) = servo_step(state, z, goal, model.estimate(z, goal), dt, servo)
            else:
                state, (v, w) = controller.step(state, z, goal, world)
                if handover_s is None and state.mode == SERVO:
                    handover_s = t
        step_ms.append((time.perf_counter() - started) * 1e3)
        errors.append(state.error)
        if state.status in (CONVERGED, LOST):
            break
        if safety.enabled and getattr(model, "scan_missing", lambda: False)():
            # The LiDAR was cut (a fused model going on from the camera): with the safety layer on, no scan
            # means stop, as in the nodes.
            v, w = 0.0, 0.0
            state = replace(state, command=(v, w))
            stopped += 1
        elif safety.enabled:
            geo = world.scan_geometry
            verdict = guard_command((v, w), scan_points(world.scan(), geo.angle_min, geo.angle_increment,
                                                        geo.range_min, geo.range_max), safety)
            if verdict.cut:
                v, w = verdict.command
                state = replace(state, command=(v, w))
            slowed += verdict.state == SLOWED
            stopped += verdict.state == STOPPED
        world.step(v, w, dt)
        t += dt
        new = world.pose()
        path += math.hypot(new.x - pose.x, new.y - pose.y)
        min_clearance = min(min_clearance, world.clearance(new.x, new.y))
        pose = new
    # Let the base come to rest (the servo commands zero from here on).
    world.step(0.0, 0.0, config.settle_after_converged)
    pose = world.pose()
    trajectory.append((pose.x, pose.y, pose.yaw))
    pos_err, yaw_err = pose_error((pose.x, pose.y, pose.yaw), episode.goal)
    straight = max(episode.start_distance, 1e-6)
    return EpisodeResult(
        episode=episode,
        success=pos_err <= SUCCESS_POSITION_M and yaw_err <= SUCCESS_YAW_RAD,
        converged=state.status == CONVERGED,
        status=state.status,
        final_position_error=pos_err,
        final_yaw_error=yaw_err,
        time_s=t,
        path_length=path,
        path_ratio=path / straight,
        trajectory=trajectory if keep_traces else [],
        latent_error=errors if keep_traces else [],
        collided=min_clearance < 0.0,
        min_clearance=float(min_clearance),
        step_ms=step_ms,
        handover_s=handover_s,
        safety_slowed=slowed,
        safety_stopped=stopped,
    )


def summarise(results: list[EpisodeResult]) -> dict[str, Any]:
    """Success rate, final errors (median, p90), time and path ratio over episodes."""
    if not results:
        return {"episodes": 0}
    pos = np.array([r.final_position_error for r in results])
    yaw = np.degrees([r.final_yaw_error for r in results])
    ok = [r for r in results if r.success]
    return {
        "episodes": len(results),
        "success_rate": len(ok) / len(results),
        "converged_rate": sum(r.converged for r in results) / len(results),
        "false_convergence": sum(r.converged and not r.success for r in results),
        "final_position_error_m": {"median": float(np.median(pos)), "p90": float(np.percentile(pos, 90))},
        "final_yaw_error_deg": {"median": float(np.median(yaw)), "p90": float(np.percentile(yaw, 90))},
        "time_s_median_success": float(np.median([r.time_s for r in ok])) if ok else None,
        "path_ratio_median_success": float(np.median([r.path_ratio for r in ok])) if ok else None,
        "collisions": sum(r.collided for r in results),
        "min_clearance_m": float(min(r.min_clearance for r in results)),
        "safety_slowed_episodes": sum(r.safety_slowed > 0 for r in results),
        "safety_stopped_episodes": sum(r.safety_stopped > 0 for r in results),
        "step_ms": _percentiles([ms for r in results for ms in r.step_ms]),
    }


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 99)} | {"max": float(np.max(values))}
