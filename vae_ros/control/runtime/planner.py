"""Model-predictive control in latent space (ROS-free, pure): the cross-entropy method over a learned model.

Over 500 lines: the planner's parts (costs, look-around, detour, hand-over) share MpcConfig and MpcState.

Each step plans a sequence of `horizon` differential-drive commands (v, w), one per model step (the
dynamics' dt), that brings the predicted latent to the goal latent, and executes the first one
(receding horizon). The plan is found by the cross-entropy method (Rubinstein 1999; as in PlaNet, Hafner
et al. 2019): sample `samples` sequences from a Gaussian, roll them out through the ensemble in one batch,
refit the Gaussian to the `elites` cheapest, `iterations` times. The mean is warm-started from the last
plan shifted by one step, and the sampled first command respects the acceleration limits from the
command sent last. Candidates are split evenly across ensemble members (each member rolls out its share;
PETS' trajectory sampling), so every member's view of the dynamics is represented at the cost of one.

Cost of a sequence: mean squared latent distance to the goal over the horizon (the last step weighted by
`terminal_weight`), a small effort term, and, when obstacle points from the latest LiDAR scan are given
(robot frame), a collision penalty on the poses the commands reach by unicycle kinematics.

Shaped for a differential drive (`differential_drive_config`, README "World model"): the pose cost through
the control model's head, an imagined look-around for goals out of the head's range, goals disproved on
arrival (a place whose scan aliases the goal's) and looked for elsewhere, a waypoint on a grid path round
what blocks the straight way, short manoeuvres that stop and a rule that a stalled plan must move (turning
in place towards a goal behind it first), and `safe_command`, a LiDAR fail-safe on every command sent (the
servo law's after the hand-over too). The look-around can also turn the robot's own scan or the goal's
instead of imagining the turn (`localiser`; docs/CONTROL.md, issue 21 section 2, has what each gave).

State is passed explicitly: `plan_step(state, z, z_goal, config[, obstacles]) -> (state, (v, w))`, one call per
model step; world_model_node and closed-loop evaluation (vae_ros.control.evaluation.episodes) both call it.
Convergence and LOST follow the servo's rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vae_ros.control.runtime.dynamics import LatentDynamics
from vae_ros.control.runtime.safety import SafetyConfig, guard_command
from vae_ros.control.runtime.servo import (
    CONVERGED,
    LOST,
    SERVOING,
    ServoConfig,
    ServoState,
    limit_command,
    servo_step,
    unicycle_command,
    verdict,
)
from vae_ros.core.errors import ConfigError, InputError
from vae_ros.sim.geometry import wrap_angle, wrap_angles

COSTS = ("latent", "pose")
LOCALISERS = ("imagined", "turned_goal", "both", "turned_scan")
PLAN, SERVO = "plan", "servo"


@dataclass(frozen=True)
class MpcConfig:
    """The model and the planner's settings. Units: m, rad, s; `tolerance` in latent units."""

    dynamics: LatentDynamics = field(repr=False)
    horizon: int = 12  # model steps (each dynamics.dt seconds)
    samples: int = 400  # candidate sequences per iteration
    iterations: int = 4  # CEM refits per plan
    elites: int = 40  # cheapest candidates the Gaussian is refitted to
    max_linear: float = 0.3  # m/s
    max_angular: float = 0.8  # rad/s
    max_linear_accel: float = 0.8  # m/s^2
    max_angular_accel: float = 3.0  # rad/s^2
    init_std: float = 0.5  # initial sampling std, as a fraction of the speed limits
    min_std: float = 0.05  # floor of the refitted std, same units
    smoothing: float = 0.1  # share of the previous mean/std kept at each refit
    terminal_weight: float = 5.0
    effort_weight: float = 0.01  # per step, on commands normalised by the limits
    collision_radius: float = 0.3  # m: robot radius plus margin to any obstacle point
    collision_weight: float = 100.0
    tolerance: float = 1.0  # latent error norm that counts as converged
    settle_steps: int = 3
    resume_factor: float = 1.5
    lost_after_s: float = 20.0
    seed: int = 0
    # Shaped for a differential drive (see the module docstring): cost "pose" scores predicted latents
    # through the control model's relative-pose head (`head`, a vae_ros.control.runtime.pose_head.PoseHeadNumpy).
    cost: str = "latent"  # "latent": squared latent distance to the goal; "pose": the head's goal pose
    head: Any = field(default=None, repr=False)
    action_repeat: int = 1  # model steps each planned command is held: horizon / repeat decisions
    heading_weight: float = 0.5  # m per rad: far from the goal, the bearing to it (forwards or backwards)
    yaw_weight: float = 0.3  # m per rad: the goal's yaw
    near_radius: float = 0.3  # m: the bearing term fades out between 2x and 1x this distance
    servo: ServoConfig | None = field(default=None, repr=False)  # the servo law: a candidate, and inside ...
    handover_distance: float = 0.0  # m: ... this estimated goal distance it drives (0: never hand over)
    handover_yaw: float = math.radians(60.0)  # and within this estimated yaw error
    handover_near: float = 0.0  # m: and within this estimated distance whatever the yaw error (0: no)
    # Where the goal is, when the head cannot tell from here (it is trained on goals within ~70 deg of yaw):
    # look around in imagination (see look_around) and carry the belief through the executed commands.
    localise: bool = False
    look_steps: int = 40  # model steps of imagined turning in place, each way
    # localiser: "imagined" (the model imagines turning), "turned_goal" (the goal's full-turn scan turned
    # instead: decoded, rolled to goal_turns headings round the circle and encoded again by `goal_turner`,
    # (D,) goal latent, (T,) turns rad -> (T, D), e.g. ControlModel.goal_turner; once per goal), "both" (the
    # imagined and the turned-goal readings in one vote) or "turned_scan" (the current LiDAR scan turned to
    # the goal_turns headings and encoded: what the robot would see turning in place, with no model; plan_step's
    # `turned_scan`, e.g. ControlModel.turned_scan_latents). See look_around and docs/CONTROL.md.
    localiser: str = "imagined"
    goal_turner: Any = field(default=None, repr=False)
    goal_turns: int = 18  # turned views round the circle (20 deg apart; 10 deg gave about the same offline)
    relocalise_every: int = 10  # plans between two look-arounds
    # A believed goal is disproved on arrival: the belief puts the goal here (within arrive_radius and
    # arrive_yaw) but the latent error stays above reject_factor tolerances and has not improved (by 5 %)
    # for reject_after_s (a place whose scan aliases the goal's). It is then excluded (within reject_radius)
    # and the robot looks around again. Looser (0.15 m, any yaw, 3 s) it gave up true goals where the servo
    # law aligned slowly: 80 % on the servo's episodes (measured).
    reject_factor: float = 0.0  # 0: never reject
    reject_after_s: float = 1.5
    # ... but only for an alternative that at least this many imagined views agree on (weighed by support:
    # the head can also miss the true goal by 9 cm at 2.5 tolerances, and the views then agree on little else)
    reject_min_support: int = 8
    arrive_radius: float = 0.06  # m
    arrive_yaw: float = math.radians(6.0)
    # Stalled: the plan has held the robot still for stall_after_s away from the goal; the next plan must move
    # (the cheapest candidate that does; the fail-safe still applies). 0: never.
    stall_after_s: float = 0.0
    # ... and where the believed goal is then farther than handover_distance and more than 60 deg off the
    # heading, the robot turns in place towards it (at stall_turn_rate x max_angular) until it is within
    # stall_turn_ahead of straight ahead, and plans again from there; the belief's support is reset, so the
    # next look-around (now from views facing the goal) replaces it. Backing towards a goal behind it, the
    # robot stopped at a wall, and the 3 s horizon never saw a half turn pay off (measured, docs/CONTROL.md).
    stall_turn: bool = False
    stall_turn_ahead: float = math.radians(20.0)
    stall_turn_rate: float = 0.75
    reject_radius: float = 0.4  # m
    # Fail-safe on the LiDAR points (with obstacles given, in the servo hand-over too): the linear speed is cut
    # until the command, held safety_time, keeps the robot's centre robot_radius + safety_margin from every
    # point (or, already closer, does not bring it closer). Turning in place is always allowed (a disc).
    fail_safe: bool = True
    robot_radius: float = 0.2  # m
    safety_margin: float = 0.05  # m
    safety_time: float = 0.6  # s
    collision_speed_margin: float = 0.0  # s: the collision cost's radius grows by |v| times this
    # Round what blocks the way: with obstacle points and the straight way to the believed goal blocked, the
    # shortest path to it on a grid round the points (inflated by collision_radius) gives a waypoint
    # detour_lookahead along it, and the plan drives there (kinematic distance) instead of scoring the goal.
    detour: bool = False
    detour_lookahead: float = 0.7  # m
    detour_cell: float = 0.1  # m
    detour_extent: float = 3.0  # m: the grid spans +-this round the robot
    # Short manoeuvres that end standing still (arcs held 1, 2 or 4 decisions; turn in place, then drive)
    # compete in the first CEM iteration: in a cramped spot nearly every random 3 s sequence touches
    # something, and standing still won (measured).
    primitives: bool = False
    # Where the candidates are scored: None = here, in NumPy (sequence_costs); a
    # vae_ros.control.runtime.plan_torch.TorchPlanCosts = on its torch device (a GPU), the CEM staying here.
    device_costs: Any = field(default=None, repr=False)

    def validate(self) -> None:
        for name in ("horizon", "samples", "iterations", "elites", "settle_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"planner {name} must be >= 1, got {getattr(self, name)}")
        if self.elites > self.samples:
            raise ConfigError(f"planner elites ({self.elites}) must not exceed samples ({self.samples})")
        for name in ("max_linear", "max_angular", "max_linear_accel", "max_angular_accel", "init_std", "min_std",
                     "tolerance", "lost_after_s", "collision_radius"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"planner {name} must be a positive number, got {value}")
        for name in ("terminal_weight", "effort_weight", "collision_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"planner {name} must be >= 0, got {value}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"planner smoothing must be in [0, 1), got {self.smoothing}")
        if self.resume_factor < 1:
            raise ConfigError("planner resume_factor must be >= 1")
        if self.cost not in COSTS:
            raise ConfigError(f"planner cost must be one of {', '.join(COSTS)}, got {self.cost!r}")
        if (self.cost == "pose" or self.servo is not None) and self.head is None:
            raise ConfigError("the pose cost and the servo candidate need the control model's relative-pose head")
        if self.action_repeat < 1 or self.action_repeat > self.horizon:
            raise ConfigError(f"planner action_repeat must be in [1, horizon], got {self.action_repeat}")
        for name in ("heading_weight", "yaw_weight", "near_radius", "handover_distance", "handover_yaw", "handover_near",
                     "reject_factor", "reject_after_s", "arrive_radius", "arrive_yaw", "reject_radius",
                     "stall_after_s", "reject_min_support", "stall_turn_ahead", "stall_turn_rate",
                     "robot_radius", "safety_margin", "safety_time", "collision_speed_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"planner {name} must be >= 0, got {value}")
        for name in ("detour_cell", "detour_extent", "detour_lookahead"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"planner {name} must be a positive number, got {value}")
        if self.localiser not in LOCALISERS:
            raise ConfigError(f"planner localiser must be one of {', '.join(LOCALISERS)}, got {self.localiser!r}")
        if self.localiser != "imagined" and self.goal_turns < 2:
            raise ConfigError(f"planner goal_turns must be >= 2 with the {self.localiser!r} localiser, got "
                              f"{self.goal_turns}")
        if self.handover_distance > 0 and self.servo is None:
            raise ConfigError("planner handover_distance needs the servo law (servo)")

    @property
    def limits(self) -> np.ndarray:
        return np.array([self.max_linear, self.max_angular], np.float32)


@dataclass(frozen=True)
class MpcState:
    """What the planner carries from step to step (the node owns it)."""

    status: str = SERVOING
    command: tuple[float, float] = (0.0, 0.0)  # last (v, w) sent
    plan: np.ndarray | None = field(default=None, repr=False)  # (H, 2) mean of the last plan
    predicted: np.ndarray | None = field(default=None, repr=False)  # (H, D) latents the plan predicts
    cost: float = math.inf  # cost of the executed plan
    step: int = 0  # plans made (seeds the sampling: the step is reproducible)
    settled: int = 0
    best_error: float = math.inf
    since_progress: float = 0.0
    error: float = math.inf  # latent error norm at the last step
    mode: str = PLAN  # PLAN (the MPC drives) or SERVO (handed over to the servo law near the goal)
    servo: ServoState | None = field(default=None, repr=False)  # the servo law's own state in SERVO mode
    estimate: tuple[float, float, float] | None = None  # the head's goal pose estimate (robot frame) now
    belief: tuple[float, float, float] | None = None  # localise: the goal pose believed (robot frame)
    support: int = 0  # imagined views that agreed on the belief at the last look-around
    rejected: tuple[tuple[float, float], ...] = ()  # disproved goal positions (robot frame, carried along)
    arrived: int = 0  # consecutive steps at the believed goal with the latent error too high
    safety_stops: int = 0  # steps the fail-safe cut the linear speed
    stalled: int = 0  # consecutive plans that held the robot still
    turning: int = 0  # stall_turn: +1 / -1 while turning in place towards the believed goal (left / right), else 0
    # The goal turned round the circle (turned_goal_views): (goal latent they were made of (D,), views (T, D));
    # made once per goal, None where the localiser does not turn the goal or the model cannot.
    goal_views: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)


def differential_drive_config(dynamics: LatentDynamics, head: Any, tolerance: float, **overrides: Any) -> MpcConfig:
    """The planner as measured for a differential drive on the control model (README, World model): pose cost
    through the head over 3 s of commands held 0.5 s, the servo law as a candidate and near the goal, the
    imagined look-around, goals disproved on arrival, the LiDAR fail-safe with a 0.2 m margin (the scan plane
    sees a post under an overhanging sphere and box faces inside the footprints: README, World model) and the
    detour cost, and the turn in place towards a goal behind a stalled plan (stall_turn). `overrides` replace
    any field."""
    settings: dict[str, Any] = {
        "horizon": 30, "samples": 150, "iterations": 3, "elites": 15, "action_repeat": 5, "cost": "pose",
        "terminal_weight": 1.0, "localise": True, "handover_distance": 0.8, "handover_yaw": math.radians(50.0),
        "lost_after_s": 30.0, "reject_factor": 1.8, "safety_margin": 0.2, "collision_speed_margin": 0.3,
        "detour": True, "handover_near": 0.5, "primitives": True, "stall_after_s": 2.0, "stall_turn": True}
    settings.update(overrides)
    servo = settings.pop("servo", None) or ServoConfig(tolerance=tolerance)
    config = MpcConfig(dynamics=dynamics, head=head, tolerance=tolerance, servo=servo, **settings)
    config.validate()
    return config


def _kinematic_positions(actions: np.ndarray, dt: float) -> np.ndarray:
    """(N, H, 2) commands -> (N, H, 2) robot-frame positions after each step (unicycle, from the origin)."""
    yaw = np.cumsum(actions[..., 1], axis=1) * dt  # heading after each step
    heading = yaw - actions[..., 1] * dt * 0.5  # mid-step heading
    dx = actions[..., 0] * np.cos(heading) * dt
    dy = actions[..., 0] * np.sin(heading) * dt
    return np.stack([np.cumsum(dx, axis=1), np.cumsum(dy, axis=1)], axis=-1)


def pose_cost(config: MpcConfig, estimate: np.ndarray) -> np.ndarray:
    """Cost of being where the goal lies at `estimate` (..., 3) = (dx, dy, dyaw) in the robot frame: (...).

    The servo's coarse-to-fine shape: the distance and the yaw error, plus far from the goal the bearing to
    it (forwards or backwards, whichever is nearer), faded out between 2x and 1x `near_radius`. The yaw term
    holds everywhere so that the cost falls all the way in (with it only near the goal, a robot turned the
    wrong way stops at the edge of the near zone: measured).
    """
    dx, dy, dyaw = estimate[..., 0], estimate[..., 1], estimate[..., 2]
    rho = np.hypot(dx, dy)
    bearing = np.abs(np.arctan2(dy, dx))
    bearing_error = np.minimum(bearing, np.pi - bearing)  # backwards is as good as forwards
    r = max(config.near_radius, 1e-6)
    far = np.clip((rho - r) / r, 0.0, 1.0)
    return rho + config.heading_weight * far * bearing_error + config.yaw_weight * np.abs(dyaw)


def _goal_in_frames(goal: np.ndarray, actions: np.ndarray, dt: float, steps: np.ndarray) -> np.ndarray:
    """A goal pose (3,) in the robot frame, seen after each of `steps` of command sequences (N, H, 2) by
    unicycle kinematics: (N, S, 3)."""
    pos = _kinematic_positions(actions, dt)[:, steps]  # (N, S, 2)
    yaw = (np.cumsum(actions[..., 1], axis=1) * dt)[:, steps]  # (N, S)
    rel = goal[:2] - pos
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1],
                     wrap_angles(goal[2] - yaw)], axis=-1)


def goal_turn_angles(config: MpcConfig) -> np.ndarray:
    """(T,) the turns (rad) of the goal's views for the turned localiser: goal_turns evenly round the circle,
    0 (the goal itself) first."""
    return np.asarray(wrap_angles(np.arange(config.goal_turns) * (2.0 * math.pi / config.goal_turns)), np.float64)


def turned_goal_views(config: MpcConfig, z_goal: np.ndarray) -> np.ndarray | None:
    """(T, D) the latents of the goal's place seen turned by goal_turn_angles (the goal's yaw + each turn), from
    the config's goal_turner; None where the localiser is the imagined one or there is no turner."""
    if config.localiser not in ("turned_goal", "both") or config.goal_turner is None:
        return None
    views = np.asarray(config.goal_turner(np.asarray(z_goal, np.float32), goal_turn_angles(config)), np.float32)
    if views.shape != (config.goal_turns, z_goal.size) or not np.all(np.isfinite(views)):
        raise InputError(f"goal_turner gave {views.shape} latents for {config.goal_turns} turns of a "
                         f"{z_goal.size}-D goal, or values that are not finite")
    return views


def _imagined_goals(config: MpcConfig, z: np.ndarray, z_goal: np.ndarray,
                    command: tuple[float, float]) -> np.ndarray:
    """(1 + 2 look_steps, 3) the goal pose (robot frame now) as the head reads it from each view imagined
    turning in place left and right for look_steps (and from here)."""
    dyn, dt, n = config.dynamics, config.dynamics.dt, config.look_steps
    turns = np.zeros((2, n, 2), np.float32)
    turns[0, :, 1], turns[1, :, 1] = config.max_angular, -config.max_angular
    turns = rate_limit(turns, command, config)
    pred = dyn.rollout(np.repeat(np.asarray(z, np.float32)[None], 2, axis=0), turns)  # (2, n, D)
    latents = np.concatenate([np.asarray(z, np.float32)[None], pred.reshape(-1, pred.shape[-1])])
    readings = config.head.estimate_batch(latents, z_goal)  # (1 + 2n, 3) in each imagined frame
    pos = np.concatenate([np.zeros((1, 2), np.float32), _kinematic_positions(turns, dt).reshape(-1, 2)])
    yaw = np.concatenate([[0.0], (np.cumsum(turns[..., 1], axis=1) * dt).reshape(-1)])
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([pos[:, 0] + c * readings[:, 0] - s * readings[:, 1],
                     pos[:, 1] + s * readings[:, 0] + c * readings[:, 1], yaw + readings[:, 2]], axis=1)


def turned_look(config: MpcConfig, z: np.ndarray, views: np.ndarray) -> np.ndarray:
    """(T, 3) the goal pose (robot frame) as the head reads it against each turned view of the goal: a view
    turned by t is the goal's place with its yaw + t, so the reading's yaw less t is the goal's. Where t
    brings the goal's yaw into the head's range (~70 deg) the readings agree; one head pass, no model."""
    readings = config.head.estimate_batch(np.repeat(np.asarray(z, np.float32)[None], len(views), 0), views)
    return np.stack([readings[:, 0], readings[:, 1], readings[:, 2] - goal_turn_angles(config)], axis=1)


def turned_scan_look(config: MpcConfig, here: np.ndarray, z_goal: np.ndarray) -> np.ndarray:
    """(T, 3) the goal pose (robot frame) as the head reads it from the latents `here` (T, D) of the current
    scan turned by goal_turn_angles (the robot's own view turned in place by t, turned back by t)."""
    turns = goal_turn_angles(config)
    readings = config.head.estimate_batch(np.asarray(here, np.float32), z_goal)
    c, s = np.cos(turns), np.sin(turns)
    return np.stack([c * readings[:, 0] - s * readings[:, 1], s * readings[:, 0] + c * readings[:, 1],
                     readings[:, 2] + turns], axis=1)


def look_around(config: MpcConfig, z: np.ndarray, z_goal: np.ndarray, command: tuple[float, float],
                exclude: np.ndarray | None = None, views: np.ndarray | None = None,
                here: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Where the goal is, from views imagined turning in place: -> (goal pose (3,) robot frame, support).

    The model predicts the latents of turning left and right for `look_steps`; the head reads the goal from
    each and the reading is turned back into the current frame. Readings from headings where the goal is
    within the head's range agree with each other, those from outside it scatter: the belief is the mean of
    the largest group that agrees within 0.25 m and 25 deg, and `support` its size. With the goal's turned
    `views` (turned_goal_views) and the localiser "turned_goal", their readings (turned_look) take the
    imagined ones' place; with "both" they vote beside them. With the current scan's turned latents `here`
    and the localiser "turned_scan", theirs (turned_scan_look) do. Without what the localiser needs, the
    imagined look-around. Readings within `reject_radius` of an `exclude` position (K, 2), robot frame
    (disproved goals), do not count; with none left, support is 0.
    """
    parts = []
    if views is not None and config.localiser in ("turned_goal", "both"):
        parts.append(turned_look(config, z, views))
    if here is not None and config.localiser == "turned_scan":
        parts.append(turned_scan_look(config, here, z_goal))
    if not parts or config.localiser == "both":
        parts.append(_imagined_goals(config, z, z_goal, command))
    goals = np.concatenate(parts)
    if exclude is not None and len(exclude):
        far = np.hypot(goals[:, None, 0] - exclude[None, :, 0], goals[:, None, 1] - exclude[None, :, 1])
        goals = goals[(far >= config.reject_radius).all(1)]
        if not len(goals):
            return np.zeros(3), 0
    gap = np.hypot(goals[:, None, 0] - goals[None, :, 0], goals[:, None, 1] - goals[None, :, 1])
    turn = np.abs(np.angle(np.exp(1j * (goals[:, None, 2] - goals[None, :, 2]))))
    agree = (gap < 0.25) & (turn < math.radians(25.0))  # (V, V)
    best = int(np.argmax(agree.sum(1)))
    group = goals[agree[best]]
    belief = np.array([group[:, 0].mean(), group[:, 1].mean(),
                       math.atan2(np.sin(group[:, 2]).mean(), np.cos(group[:, 2]).mean())])
    return belief, int(agree[best].sum())


def _carry(belief: tuple[float, float, float], command: tuple[float, float], dt: float) -> np.ndarray:
    """The goal pose belief (robot frame) after the robot drove `command` for dt."""
    moved = _goal_in_frames(np.asarray(belief, np.float32), np.asarray(command, np.float32)[None, None], dt,
                            np.array([0]))
    return moved[0, 0].astype(np.float64)


def _carry_points(points: tuple[tuple[float, float], ...], command: tuple[float, float],
                  dt: float) -> tuple[tuple[float, float], ...]:
    """Fixed world positions (robot frame) after the robot drove `command` for dt."""
    out = []
    for x, y in points:
        moved = _carry((x, y, 0.0), command, dt)
        out.append((float(moved[0]), float(moved[1])))
    return tuple(out)


def safe_command(command: tuple[float, float], obstacles: np.ndarray | None,
                 config: MpcConfig) -> tuple[tuple[float, float], bool]:
    """The fail-safe: -> ((v, w), whether v was cut). The scan safety layer every controller runs
    (vae_ros.control.runtime.safety.guard_command) on obstacle points (P, 2), robot frame, with the planner's
    robot_radius, safety_margin and safety_time: the linear speed is cut until the command held safety_time
    keeps the robot's centre robot_radius + safety_margin from every point or, where it already is closer,
    brings it no closer. w is kept: a disc turning in place touches nothing. Without points (no scan, or the
    collision cost off) the command is kept: the controller's own layer then decides."""
    if not config.fail_safe or obstacles is None or not len(obstacles):
        return command, False
    verdict = guard_command(command, obstacles, safety_config(config))
    return verdict.command, verdict.cut


def safety_config(config: MpcConfig) -> SafetyConfig:
    """The scan safety layer's settings as the planner's fail-safe uses them."""
    return SafetyConfig(enabled=config.fail_safe, robot_radius=config.robot_radius, margin=config.safety_margin,
                        lookahead_s=config.safety_time)


_NEIGHBOURS = ((-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0),
               (-1, -1, math.sqrt(2.0)), (-1, 1, math.sqrt(2.0)), (1, -1, math.sqrt(2.0)), (1, 1, math.sqrt(2.0)))


def detour_field(obstacles: np.ndarray, goal: np.ndarray, config: MpcConfig) -> np.ndarray | None:
    """Shortest-path distance (m) to `goal` (2,) robot frame from every cell of a grid of detour_cell
    spanning +-detour_extent round the robot, through cells farther than collision_radius (or 0.9 of the
    nearest point's distance, if less) from every obstacle point (P, 2): (G, G), inf where blocked or cut off; None when the straight way from the
    robot to the goal is free (nothing to go round) or the goal is off the grid.

    A vectorised wavefront (Bellman-Ford sweeps over the 8 neighbours of every cell, until nothing changes);
    the side of an object the LiDAR cannot see counts as free."""
    cell, extent = config.detour_cell, config.detour_extent
    g = 2 * int(round(extent / cell)) + 1
    gi = np.round((np.asarray(goal, np.float64)[:2] + extent) / cell).astype(int)
    if not (0 <= gi[0] < g and 0 <= gi[1] < g):
        return None
    if len(obstacles) == 0:
        return None
    # Inflated by collision_radius, but never over the robot itself (it may stand closer than that).
    radius = min(collision_cost_radius(config), 0.9 * float(np.sqrt((np.asarray(obstacles) ** 2).sum(1).min())))
    line = np.linspace(0.0, 1.0, max(2, int(math.hypot(*goal[:2]) / (0.5 * cell)) + 1))[:, None] * goal[None, :2]
    if np.sqrt(((line[:, None] - obstacles[None]) ** 2).sum(-1)).min() >= radius:
        return None
    axis = np.arange(g) * cell - extent  # cell centres; index [i, j] is (x = axis[i], y = axis[j])
    blocked = np.zeros((g, g), bool)
    reach = int(math.ceil(radius / cell))
    offsets = np.arange(-reach, reach + 1)
    for p in np.asarray(obstacles, np.float64):  # stamp a disc round each point
        ci, cj = int(round((p[0] + extent) / cell)), int(round((p[1] + extent) / cell))
        ii, jj = np.clip(ci + offsets, 0, g - 1), np.clip(cj + offsets, 0, g - 1)
        near = ((axis[ii][:, None] - p[0]) ** 2 + (axis[jj][None, :] - p[1]) ** 2) < radius**2
        blocked[np.ix_(ii, jj)] |= near
    dist = np.full((g, g), np.inf)
    blocked[gi[0], gi[1]] = False
    dist[gi[0], gi[1]] = 0.0
    for _ in range(4 * g):
        padded = np.pad(dist, 1, constant_values=np.inf)
        best = dist.copy()
        for di, dj, step in _NEIGHBOURS:
            np.minimum(best, padded[1 + di: 1 + di + g, 1 + dj: 1 + dj + g] + step * cell, out=best)
        best[blocked] = np.inf
        if np.array_equal(best, dist):
            break
        dist = best
    return dist


def detour_waypoint(field: np.ndarray, goal: np.ndarray, config: MpcConfig) -> np.ndarray | None:
    """Where to drive round what blocks the way: (2,) robot frame, detour_lookahead along the shortest path
    (steepest descent of `field` from the robot's cell), or the goal when the path is shorter; None when the
    robot's cell is cut off from the goal."""
    cell, extent = config.detour_cell, config.detour_extent
    g = field.shape[0]
    i = j = g // 2
    if not np.isfinite(field[i, j]):
        return None
    travelled = 0.0
    while travelled < config.detour_lookahead and field[i, j] > 0:
        best = (field[i, j], i, j, 0.0)
        for di, dj, step in _NEIGHBOURS:
            ni, nj = i + di, j + dj
            if 0 <= ni < g and 0 <= nj < g and field[ni, nj] < best[0]:
                best = (field[ni, nj], ni, nj, step * cell)
        if best[1] == i and best[2] == j:
            break
        _, i, j, step_m = best
        travelled += step_m
    if field[i, j] <= 0:
        return np.asarray(goal[:2], np.float64)
    return np.array([i * cell - extent, j * cell - extent])


def collision_cost_radius(config: MpcConfig) -> float:
    """The collision cost's radius: collision_radius, or what the fail-safe keeps if more (a plan the
    fail-safe would stop is no plan: with less, the robot stood still at the edge, measured)."""
    if config.fail_safe:
        return max(config.collision_radius, config.robot_radius + config.safety_margin)
    return config.collision_radius


def step_weights(config: MpcConfig, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(model steps scored, their weights): every step for the latent cost; for the pose cost the end of
    every held command (the head costs a thousand times the dynamics), the last one weighted terminal."""
    if config.cost == "pose":
        steps = np.unique(np.r_[np.arange(config.action_repeat - 1, h, config.action_repeat), h - 1])
    else:
        steps = np.arange(h)
    weights = np.ones(steps.size, np.float32)
    weights[-1] = config.terminal_weight
    return steps, weights / weights.sum()


def sequence_costs(config: MpcConfig, z: np.ndarray, z_goal: np.ndarray, actions: np.ndarray,
                   obstacles: np.ndarray | None = None, belief: np.ndarray | None = None,
                   waypoint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cost of each candidate and its predicted latents: actions (N, H, 2) -> ((N,), (N, H, D)).

    Candidates are split across ensemble members (candidate i rolls out with member i mod E). `belief`: the
    goal pose (robot frame) believed now (cost "pose" with `localise`). `waypoint` (2,) robot frame: score
    the kinematic distance to it instead (a detour round what blocks the way).
    """
    dyn = config.dynamics
    n, h = actions.shape[:2]
    pred = dyn.rollout_split(z, actions)  # (N, H, D)
    steps, weights = step_weights(config, h)
    if config.cost == "pose":
        scored = pred[:, steps].reshape(-1, pred.shape[-1])  # (N * S, D)
        readings = config.head.estimate_batch(scored, z_goal).reshape(n, steps.size, 3)
        if belief is not None:
            # Trust the head on a predicted view where it agrees with the belief carried along the
            # candidate's path, the belief elsewhere (views from where the goal is out of the head's range).
            carried = _goal_in_frames(np.asarray(belief, np.float32), actions, dyn.dt, steps)
            agree = ((np.hypot(*(readings[..., :2] - carried[..., :2]).transpose(2, 0, 1)) < 0.3)
                     & (np.abs(np.angle(np.exp(1j * (readings[..., 2] - carried[..., 2])))) < math.radians(30.0)))
            readings = np.where(agree[..., None], readings, carried)
        per_step = pose_cost(config, readings)
        if waypoint is not None:  # round what blocks the way: drive to the waypoint
            pos = _kinematic_positions(actions, dyn.dt)[:, steps]
            per_step = np.hypot(pos[..., 0] - waypoint[0], pos[..., 1] - waypoint[1])
    else:
        per_step = ((pred[:, steps] - z_goal.astype(np.float32)) ** 2).sum(-1)  # (N, S)
    cost = (per_step * weights).sum(1)
    cost += config.effort_weight * ((actions / config.limits) ** 2).sum((1, 2))
    if obstacles is not None and len(obstacles):
        # Only points the robot could touch within the horizon matter.
        reach = h * dyn.dt * config.max_linear + collision_cost_radius(config) + config.collision_speed_margin
        near = obstacles[(obstacles**2).sum(1) <= reach**2]
        if len(near):
            pos = _kinematic_positions(actions, dyn.dt)  # (N, H, 2)
            # |p - q|^2 = |p|^2 + |q|^2 - 2 p.q: one matmul instead of an (N, H, P, 2) difference array.
            cross = pos.reshape(-1, 2) @ (-2.0 * near.T)  # (N * H, P)
            cross += (near**2).sum(1)
            gap2 = np.maximum(cross.min(1).reshape(pos.shape[:2]) + (pos**2).sum(-1), 0.0)  # (N, H) squared
            gap = np.sqrt(gap2)
            base = collision_cost_radius(config)
            radius = base + config.collision_speed_margin * np.abs(actions[..., 0])  # (N, H)
            # The speed margin is for approaching: never more than the robot's distance now (else driving
            # away from something close costs more than standing beside it: measured, the robot froze).
            radius = np.minimum(radius, max(base, float(np.sqrt((near**2).sum(1).min()))))
            cost += config.collision_weight * (np.maximum(0.0, 1.0 - gap / radius) ** 2).sum(1)
    return cost, pred


def rate_limit(targets: np.ndarray, command: tuple[float, float], config: MpcConfig) -> np.ndarray:
    """Commands a rate-limited base executes for target sequences: (N, H, 2) -> (N, H, 2), from `command`."""
    limits = config.limits
    step = config.dynamics.dt * np.array([config.max_linear_accel, config.max_angular_accel], np.float32)
    out = np.empty_like(targets)
    prev = np.broadcast_to(np.asarray(command, np.float32), targets[:, 0].shape)
    for t in range(targets.shape[1]):
        prev = np.clip(np.clip(targets[:, t], -limits, limits), prev - step, prev + step)
        out[:, t] = prev
    return out


def servo_rollout(config: MpcConfig, z: np.ndarray, z_goal: np.ndarray, command: tuple[float, float],
                  servo_state: ServoState | None = None) -> np.ndarray:
    """The servo law's commands over the horizon, imagined through the model: (H, 2).

    At each step the head estimates the goal from the predicted latent, the servo law turns that into a
    command (with its limits) and the ensemble mean predicts the next latent. As a CEM candidate it makes
    the plan never worse than the servo, as far as the model can tell.
    """
    servo = config.servo if config.servo is not None else ServoConfig()
    dyn, dt = config.dynamics, config.dynamics.dt
    fine = servo_state.fine if servo_state is not None else False
    backwards = servo_state.backwards if servo_state is not None else False
    v, w = command
    cur = np.asarray(z, np.float32)[None]
    out = np.empty((config.horizon, 2), np.float32)
    for t in range(config.horizon):
        estimate = config.head.estimate_batch(cur, z_goal)[0]
        tv, tw, fine, backwards = unicycle_command(estimate, fine, backwards, servo)
        v = limit_command(tv, v, min(servo.max_linear, config.max_linear), config.max_linear_accel, dt)
        w = limit_command(tw, w, min(servo.max_angular, config.max_angular), config.max_angular_accel, dt)
        out[t] = (v, w)
        if t + 1 < config.horizon:
            cur, _ = dyn.predict(cur, out[t : t + 1])
    return out


def motion_primitives(config: MpcConfig) -> np.ndarray:
    """(K, H, 2) command sequences (before the rate limits) that move a little and stop: arcs (v = +-max,
    w in {-0.75, 0, 0.75} x max) held 1, 2 or 4 decisions; turning in place (+-max) for 1-3 decisions, then
    driving straight (+-max) for 2."""
    h, k, vmax, wmax = config.horizon, config.action_repeat, config.max_linear, config.max_angular
    out = []
    for v in (vmax, -vmax):
        for w in (-0.75 * wmax, 0.0, 0.75 * wmax):
            for held in (1, 2, 4):
                seq = np.zeros((h, 2), np.float32)
                seq[: held * k] = (v, w)
                out.append(seq)
        for w in (wmax, -wmax):
            for turn in (1, 2, 3):
                seq = np.zeros((h, 2), np.float32)
                seq[: turn * k, 1] = w
                seq[turn * k: (turn + 2) * k, 0] = v
                out.append(seq)
    return np.stack(out)


def plan(config: MpcConfig, z: np.ndarray, z_goal: np.ndarray, warm: np.ndarray | None,
         command: tuple[float, float], rng: np.random.Generator, obstacles: np.ndarray | None = None,
         extra: np.ndarray | None = None, belief: np.ndarray | None = None,
         waypoint: np.ndarray | None = None, must_move: bool = False) -> tuple[np.ndarray, float, np.ndarray]:
    """CEM: -> (plan (H, 2), its cost, its predicted latents (H, D)).

    The Gaussian is over horizon / action_repeat decisions, each held for action_repeat model steps; every
    candidate is rate-limited from `command` as the base would execute it. `extra` (K, H, 2) are further
    whole sequences (the servo's) that compete with the sampled ones. `must_move`: candidates that stand
    still over the first decision are out of the race.
    """
    h, limits, k = config.horizon, config.limits, config.action_repeat
    m = -(-h // k)  # decisions
    mean = np.zeros((m, 2), np.float32)
    if warm is not None:  # shift the last plan by one model step, repeating its final command
        shifted = np.concatenate([warm[1:h], np.repeat(warm[-1:], max(1, h - warm.shape[0] + 1), axis=0)])[:h]
        mean = shifted[::k][:m].astype(np.float32)
    std = np.broadcast_to(config.init_std * limits, (m, 2)).astype(np.float32)
    best = (math.inf, np.zeros((h, 2), np.float32), np.zeros((h, config.dynamics.latent_dim), np.float32))
    score = sequence_costs if config.device_costs is None else config.device_costs.sequence_costs
    for iteration in range(config.iterations):
        eps = rng.standard_normal((config.samples, m, 2)).astype(np.float32)
        cand = mean + std * eps
        cand[0] = mean  # keep the current mean in the race
        cand[1] = 0.0  # and standing still
        cand = np.clip(cand, -limits, limits)
        executed = rate_limit(np.repeat(cand, k, axis=1)[:, :h], command, config)
        if iteration == 0 and extra is not None and len(extra):
            executed = np.concatenate([executed, rate_limit(np.asarray(extra, np.float32), command, config)])
        cost, pred = score(config, z, z_goal, executed, obstacles, belief, waypoint)  # pred: (N, H, D) rows
        if must_move:
            first = np.abs(executed[:, :k] / limits).max((1, 2))
            cost = np.where(first < 0.2, np.inf, cost)
        order = np.argsort(cost)
        if cost[order[0]] < best[0]:
            best = (float(cost[order[0]]), executed[order[0]].copy(), np.array(pred[order[0]]))
        sampled = order[order < config.samples][: config.elites]
        elites = cand[sampled]
        new_mean = elites.mean(0)
        new_std = np.maximum(elites.std(0), config.min_std * limits)
        mean = config.smoothing * mean + (1 - config.smoothing) * new_mean
        std = config.smoothing * std + (1 - config.smoothing) * new_std
    return best[1], best[0], best[2]


def _handover(state: MpcState, estimate: np.ndarray, config: MpcConfig) -> bool:
    """True while the servo law should drive: inside handover_distance and handover_yaw of the goal (head
    estimate), left again only beyond 1.5x the distance or 20 deg more yaw (hysteresis); or inside
    handover_near whatever the yaw (left beyond 1.5x): there the plan would have to turn, drive and turn
    back within its horizon, and CEM settled for standing still (measured), while the servo law turns to the
    goal in place."""
    if config.handover_distance <= 0:
        return False
    rho, yaw = math.hypot(estimate[0], estimate[1]), abs(wrap_angle(float(estimate[2])))
    if state.mode == SERVO:
        return ((rho <= 1.5 * config.handover_distance and yaw <= config.handover_yaw + math.radians(20.0))
                or rho <= 1.5 * config.handover_near)
    return (rho <= config.handover_distance and yaw <= config.handover_yaw) or rho <= config.handover_near


def plan_step(state: MpcState, z: np.ndarray, z_goal: np.ndarray, config: MpcConfig,
              obstacles: np.ndarray | None = None,
              turned_scan: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[MpcState, tuple[float, float]]:
    """One receding-horizon step: (state, latent, goal latent, config[, obstacle points (P, 2) robot frame,
    turned_scan]) -> (state, (v, w)). Assumes one call per model step (config.dynamics.dt seconds).
    `turned_scan`: (T,) turns rad -> (T, D) latents of the current scan turned by them, for the localiser
    "turned_scan" (called only when it looks round; without it the imagined look-around stands in)."""
    dyn = config.dynamics
    z = np.asarray(z, np.float32).reshape(-1)
    z_goal = np.asarray(z_goal, np.float32).reshape(-1)
    if z.shape != (dyn.latent_dim,) or z_goal.shape != (dyn.latent_dim,):
        raise InputError(f"latent and goal must have the dynamics model's {dyn.latent_dim} dimensions, got "
                         f"{z.size} and {z_goal.size}")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(z_goal))):
        raise InputError("latent or goal latent holds NaN or inf")
    if obstacles is not None:
        obstacles = np.asarray(obstacles, np.float32).reshape(-1, 2)
    error = float(np.linalg.norm(z - z_goal))
    dt = dyn.dt
    status, settled, best, since = verdict(state, error, dt, config)
    common: dict[str, Any] = {"settled": settled, "best_error": best, "since_progress": since, "error": error,
              "step": state.step + 1}
    estimate = None if config.head is None else config.head.estimate_batch(z[None], z_goal)[0]
    if estimate is not None:
        common["estimate"] = (float(estimate[0]), float(estimate[1]), float(estimate[2]))
    if status in (CONVERGED, LOST):
        return replace(state, status=status, command=(0.0, 0.0), plan=None, **common), (0.0, 0.0)
    belief: np.ndarray | None = None
    rejected = _carry_points(state.rejected, state.command, dt) if state.rejected else ()
    arrived = 0
    goal_views = state.goal_views
    if config.localise and estimate is not None and config.localiser in ("turned_goal", "both"):
        if goal_views is None or not np.array_equal(goal_views[0], z_goal):
            made = turned_goal_views(config, z_goal)
            goal_views = None if made is None else (z_goal.copy(), made)
        common["goal_views"] = goal_views
    views = None if goal_views is None else goal_views[1]

    def here() -> np.ndarray | None:
        if config.localiser != "turned_scan" or turned_scan is None:
            return None
        latents = np.asarray(turned_scan(goal_turn_angles(config)), np.float32)
        if latents.shape != (config.goal_turns, dyn.latent_dim) or not np.all(np.isfinite(latents)):
            raise InputError(f"turned_scan gave {latents.shape} latents for {config.goal_turns} turns, or values "
                             "that are not finite")
        return latents
    if config.localise and estimate is not None:
        support = state.support
        if state.belief is not None:
            belief = _carry(state.belief, state.command, dt)
            near = (math.hypot(belief[0] - estimate[0], belief[1] - estimate[1]) < 0.3
                    and abs(wrap_angle(float(belief[2] - estimate[2]))) < math.radians(30.0))
            if near:  # the head sees the goal where it is believed: follow the sensor
                belief = np.array([0.5 * (belief[0] + estimate[0]), 0.5 * (belief[1] + estimate[1]),
                                   math.atan2(math.sin(belief[2]) + math.sin(estimate[2]),
                                              math.cos(belief[2]) + math.cos(estimate[2]))])
        exclude = np.asarray(rejected, np.float32).reshape(-1, 2) if rejected else None
        looked = None
        if state.belief is None or state.step % config.relocalise_every == 0:
            looked = look_around(config, z, z_goal, state.command, exclude, views, here())
        if looked is not None and looked[1] > 0 and (belief is None or looked[1] >= support):
            belief, support = looked
        if belief is not None and config.reject_factor > 0:
            at_goal = (math.hypot(belief[0], belief[1]) <= config.arrive_radius
                       and abs(wrap_angle(float(belief[2]))) <= config.arrive_yaw)
            arrived = state.arrived + 1 if at_goal and error > config.reject_factor * config.tolerance else 0
            if arrived * dt >= config.reject_after_s and since >= config.reject_after_s:
                # here may not be the goal: look for it elsewhere, and go there if enough views agree on it
                spot = (float(belief[0]), float(belief[1]))
                other, other_support = look_around(config, z, z_goal, state.command,
                                                   np.asarray((*rejected, spot), np.float32).reshape(-1, 2), views,
                                                   here())
                arrived = 0
                if other_support >= config.reject_min_support:
                    rejected = (*rejected, spot)
                    belief, support = other, other_support
                    common.update(best_error=math.inf, since_progress=0.0)
        if belief is not None:  # always, from the first look-around on
            common["belief"] = (float(belief[0]), float(belief[1]), float(belief[2]))
            common["support"] = support
            estimate = belief
    common.update(rejected=rejected, arrived=arrived)
    if estimate is not None and config.servo is not None and _handover(state, estimate, config):
        servo_state = state.servo if state.mode == SERVO and state.servo is not None else ServoState(
            command=state.command)
        servo_state, (v, w) = servo_step(servo_state, z, z_goal, estimate, dt, config.servo)
        _, cut = safe_command((v, w), obstacles, config)
        if not cut:
            return replace(state, status=status, command=(v, w), plan=None, predicted=None, mode=SERVO,
                           servo=servo_state, **common), (v, w)
        # The servo law would drive into something: the planner, with its collision cost, drives this step.
    must_move = config.stall_after_s > 0 and state.stalled * dt >= config.stall_after_s
    if config.stall_turn and estimate is not None:
        turn = _stall_turn(state, estimate, must_move, config)
        if turn:
            w = float(rate_limit(np.array([[[0.0, turn * config.stall_turn_rate * config.max_angular]]], np.float32),
                                 state.command, config)[0, 0, 1])
            if not state.turning:
                common["support"] = 0  # whatever a look-around finds from the new heading replaces the belief
            return replace(state, status=status, command=(0.0, w), plan=None, predicted=None, mode=PLAN,
                           servo=None, stalled=0, turning=turn, **common), (0.0, w)
    rng = np.random.default_rng((config.seed, state.step))
    extras = []
    if config.servo is not None:
        extras.append(servo_rollout(config, z, z_goal, state.command)[None])
    if config.primitives:
        extras.append(motion_primitives(config))
    extra = np.concatenate(extras) if extras else None
    waypoint = None
    if config.detour and config.cost == "pose" and obstacles is not None and estimate is not None:
        goal = np.asarray(estimate[:2], np.float64)
        field = detour_field(obstacles, goal, config)
        waypoint = None if field is None else detour_waypoint(field, goal, config)
    sequence, cost, predicted = plan(config, z, z_goal, state.plan, state.command, rng, obstacles, extra, belief,
                                     waypoint, must_move)
    (v, w), cut = safe_command((float(sequence[0, 0]), float(sequence[0, 1])), obstacles, config)
    still = abs(v) < 0.01 * config.max_linear and abs(w) < 0.05 * config.max_angular
    stalled = 0 if must_move or not still else state.stalled + 1
    return replace(state, status=status, command=(v, w), plan=sequence, predicted=predicted, cost=cost,
                   mode=PLAN, servo=None, safety_stops=state.safety_stops + int(cut), stalled=stalled, turning=0,
                   **common), (v, w)


def _stall_turn(state: MpcState, estimate: np.ndarray, must_move: bool, config: MpcConfig) -> int:
    """stall_turn: +1 / -1 to turn in place left / right towards the believed goal this step, 0 to plan. A turn
    starts when the plan has stalled with the goal far and more than 60 deg off the heading, and goes on until
    the goal is within stall_turn_ahead of straight ahead (or the hand-over's distance)."""
    rho = math.hypot(float(estimate[0]), float(estimate[1]))
    bearing = math.atan2(float(estimate[1]), float(estimate[0]))
    if rho <= config.handover_distance:
        return 0
    towards = 1 if bearing > 0 else -1
    if state.turning:  # towards the goal as now believed (a look-around on the way may move it)
        return towards if abs(bearing) > config.stall_turn_ahead else 0
    return towards if must_move and abs(bearing) > math.radians(60.0) else 0


def scan_obstacles(ranges: np.ndarray, angle_min: float, angle_increment: float, max_range: float = 1.5,
                   max_points: int = 90) -> np.ndarray:
    """Obstacle points (P, 2) in the sensor frame from a LaserScan's ranges: returns closer than max_range,
    thinned to at most max_points (the collision cost compares every rollout pose with every point)."""
    r = np.asarray(ranges, np.float32)
    angles = angle_min + angle_increment * np.arange(r.size, dtype=np.float32)
    keep = np.isfinite(r) & (r > 0) & (r < max_range)
    pts = np.stack([r[keep] * np.cos(angles[keep]), r[keep] * np.sin(angles[keep])], axis=1)
    if pts.shape[0] > max_points:
        pts = pts[np.linspace(0, pts.shape[0] - 1, max_points).astype(int)]
    return pts
