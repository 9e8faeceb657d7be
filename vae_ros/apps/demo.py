"""`vae-ros demo`: goal-reaching latent servoing over real ROS 2 with the packaged models.

sim_node, an encoder_node on the packaged control model (LaserScan -> `vae/latent_stamped`), a camera
encoder_node + decoder_node (for the pictures) and the controller run as separate processes
(vae_ros.apps.servo_session): latent_servo_node, or with `controller` "world_model" world_model_node (the
world model's MPC on the packaged dynamics, models/control_default/dynamics), from a start the servo
cannot handle (the goal 1.1 m away behind the robot, which is turned 102 deg from the goal's heading); the demo then also records every
plan (`world_model/planned_latents`) and writes demo_plans.png. The demo captures the goal where the robot
stands (`servo/set_goal`, and the camera frame seen there), moves the robot away with the controller idle,
gives the goal as that camera image (`servo/goal_image`: the controller finds it among the camera views it
remembers and takes the LaserScan latent seen with it) and lets the controller bring the robot back. It prints the final pose error (simulator
ground truth), the time to converge and whether it succeeded (within 0.10 m and 5 deg), and writes
summary.json, demo_trajectory.png (path, heading, latent error over time) and demo_frames.png (goal,
start and final camera frames beside their reconstructions). World seed 0 is one the control model
never saw in training.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.evaluation.episodes import pose_error
from vae_ros.control.training.metric import SUCCESS_POSITION_M, SUCCESS_YAW_RAD
from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import wrap_angle

SUCCESS_YAW_DEG = math.degrees(SUCCESS_YAW_RAD)


# Per controller: (goal in the odom frame, where the robot is moved to in the goal's frame, simulated seconds).
# servo: behind, to the left, turned right. world_model: a hard start (vae_ros.control.evaluation.episodes
# sample_hard_episodes) where the world model succeeds in-process (eval-control --controller world_model --hard).
DEFAULTS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float]] = {
    "servo": ((0.0, 0.0, 0.0), (-0.6, -0.4, -0.4), 40.0),
    # Hard episode 0 of `eval-control --controller world_model --hard --seeds 0` (rounded): the goal 1.12 m
    # away, behind the robot (to its right rear), the robot turned 102 deg from the goal's heading.
    "world_model": ((-1.0, -0.39, -2.96), (-0.70, -0.88, -1.79), 60.0),
}


@dataclass
class DemoConfig:
    out: Path = Path("demo_out")
    seed: int = 0
    rate: float = 10.0
    backend: str = "auto"
    controller: str = "servo"  # servo (latent_servo_node) or world_model (world_model_node's MPC)
    dynamics: str = ""  # world_model: dynamics directory; empty: the control model's packaged dynamics
    goal: tuple[float, float, float] | None = None  # None: the controller's default (DEFAULTS)
    offset: tuple[float, float, float] | None = None  # where the robot is moved to, in the goal's frame
    timeout: float | None = None  # simulated seconds for the controller
    startup_timeout: float = 90.0
    progress: bool = True
    start: tuple[float, float, float] = field(init=False, default=(0.0, 0.0, 0.0))

    @property
    def goal_pose(self) -> tuple[float, float, float]:
        """The goal, resolved in __post_init__ (the controller's default when none was given)."""
        if self.goal is None:
            raise ConfigError("the demo's goal is not set")
        return self.goal

    @property
    def time_limit(self) -> float:
        """The controller's time limit, resolved in __post_init__."""
        if self.timeout is None:
            raise ConfigError("the demo's timeout is not set")
        return self.timeout

    def __post_init__(self) -> None:
        if self.controller not in DEFAULTS:
            raise ConfigError(f"--controller must be one of {', '.join(DEFAULTS)}, got {self.controller!r}")
        goal, offset, timeout = DEFAULTS[self.controller]
        self.goal = goal if self.goal is None else self.goal
        self.offset = offset if self.offset is None else self.offset
        self.timeout = timeout if self.timeout is None else self.timeout
        if not (self.rate > 0 and self.timeout > 0 and self.startup_timeout > 0):
            raise ConfigError("--rate, --timeout and --startup-timeout must be positive")
        gx, gy, gyaw = self.goal
        c, s = math.cos(gyaw), math.sin(gyaw)
        ox, oy, oyaw = self.offset
        self.start = (gx + c * ox - s * oy, gy + s * ox + c * oy, wrap_angle(gyaw + oyaw))


def _pose_error(pose: tuple[float, float, float], goal: tuple[float, float, float]) -> tuple[float, float]:
    """(position error m, yaw error deg)."""
    position, yaw = pose_error(pose, goal)
    return position, math.degrees(yaw)


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Teach, displace, servo back; analyse, plot; returns the summary (also written to OUT/summary.json)."""
    import time

    from vae_ros.apps.servo_session import ServoSession, SessionConfig

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    clear_previous_run(out)
    wall = time.monotonic()
    session_config = SessionConfig(seed=config.seed, rate=config.rate, backend=config.backend, camera_views=True,
                                   goal_image=True,
                                   log_dir=out / "logs", startup_timeout=config.startup_timeout,
                                   initial_pose=config.goal_pose, controller=config.controller, dynamics=config.dynamics)
    say = print if config.progress else (lambda *_a, **_k: None)
    with ServoSession(session_config) as session:
        say(f"nodes up after {time.monotonic() - wall:.1f} s; teaching the goal at {_fmt_pose(config.goal_pose)}")
        session.teach_at(config.goal_pose)
        goal_latent = session.goal_latent
        goal_views = session.frame_near(session.sim_time - 0.2)
        say(f"moving the robot away to {_fmt_pose(config.start)}; {session.controller_node} drives it back")
        session.start_from(config.start)
        start_views = session.frame_near(session.sim_time - 0.2)
        run = session.servo(timeout=config.time_limit)
        final_views = session.frame_near(session.sim_time - 0.2)
        diagnostics = dict(session.controller_values)
    tolerance = _number(diagnostics.get("tolerance"))  # the controller's convergence tolerance (latent)
    position_error, yaw_error = _pose_error(run.final_pose, config.goal_pose)
    start_error = _pose_error(config.start, config.goal_pose)
    xy = np.array([(x, y) for _, x, y, _ in run.poses]) if run.poses else np.zeros((0, 2))
    summary = {
        "controller": config.controller,
        "goal_source": diagnostics.get("goal_source"),  # the goal image and the NCC of the view it matched
        "world_seed": config.seed,
        "goal": list(config.goal_pose),
        "start": list(config.start),
        "start_error_m": start_error[0],
        "start_error_deg": start_error[1],
        "servo_status": run.status,
        "time_to_converge_s": run.time_s if run.status == "converged" else None,
        "final_pose": list(run.final_pose),
        "final_position_error_m": position_error,
        "final_yaw_error_deg": yaw_error,
        "success": bool(position_error <= SUCCESS_POSITION_M and yaw_error <= SUCCESS_YAW_DEG),
        "path_length_m": float(np.sum(np.hypot(*np.diff(xy, axis=0).T))) if len(xy) > 1 else 0.0,
        "latent_error_first": run.errors[0][1] if run.errors else None,
        "latent_error_last": run.errors[-1][1] if run.errors else None,
        "commands": len(run.errors),
        "plans": len(run.plans),
        "tolerance": tolerance,
        # world model: its time per CEM planning step (p50 / p99 over its last 500 planning steps, /diagnostics;
        # not the servo law's steps near the goal nor the steps after it settled, which take ~0 ms)
        "plan_time_p50_ms": _number(diagnostics.get("plan_time_p50_ms")),
        "plan_time_p99_ms": _number(diagnostics.get("plan_time_p99_ms")),
        "plan_time_count": _number(diagnostics.get("plan_time_count")),
        "wall_time_s": time.monotonic() - wall,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _plot_trajectory(out / "demo_trajectory.png", config, run, tolerance)
    if config.controller == "world_model" and goal_latent is not None:
        _plot_plans(out / "demo_plans.png", config, run, goal_latent)
    _plot_frames(out / "demo_frames.png", [("goal", goal_views), ("start", start_views), ("final", final_views)])
    return summary


# What a demo writes into OUT (beside logs/<node>.log, and the route demo's teach bag and route): a previous
# demo's copies are removed first, so that OUT never mixes two runs (a servo demo after a world-model one left
# its plans plot and node logs behind).
DEMO_FILES = ("summary.json", "demo_trajectory.png", "demo_plans.png", "demo_frames.png", "demo_route.png")


def clear_previous_run(out: Path) -> None:
    """Remove a previous demo's files from OUT: DEMO_FILES, logs/*.log, logs/robot1|2/*.log and the route demo's teach bag and route
    (vae_ros.apps.route_demo.remove_route_outputs), nothing else."""
    from vae_ros.apps.route_demo import remove_route_outputs

    remove_route_outputs(out)
    for name in DEMO_FILES:
        (out / name).unlink(missing_ok=True)
    logs = out / "logs"
    if logs.is_dir():
        for log in (*logs.glob("*.log"), *logs.glob("robot[12]/*.log")):  # the route demo's robots' logs too
            log.unlink(missing_ok=True)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _fmt_pose(pose: tuple[float, float, float]) -> str:
    return f"({pose[0]:.2f} m, {pose[1]:.2f} m, {math.degrees(pose[2]):.0f} deg)"


def _plot_trajectory(path: Path, config: DemoConfig, run: Any, tolerance: float | None) -> None:
    from vae_ros.core.plots import _figure, _save

    goal = config.goal_pose
    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    poses = np.array(run.poses) if run.poses else np.zeros((0, 4))
    if len(poses):
        left.plot(poses[:, 1], poses[:, 2], "-", color="#1f77b4", label="robot (odometry)")
        for _t, x, y, yaw in poses[:: max(1, len(poses) // 12)]:
            left.annotate("", xy=(x + 0.08 * math.cos(yaw), y + 0.08 * math.sin(yaw)), xytext=(x, y),
                          arrowprops={"arrowstyle": "->", "color": "#1f77b4", "linewidth": 0.8})
    for pose, colour, label in ((goal, "black", "goal"), (config.start, "#d0342c", "start")):
        left.plot([pose[0]], [pose[1]], marker="*" if label == "goal" else "o", color=colour, markersize=10,
                  label=label, linestyle="none")
        left.annotate("", xy=(pose[0] + 0.2 * math.cos(pose[2]), pose[1] + 0.2 * math.sin(pose[2])),
                      xytext=(pose[0], pose[1]), arrowprops={"arrowstyle": "->", "color": colour})
    from matplotlib.patches import Circle

    left.add_patch(Circle(goal[:2], SUCCESS_POSITION_M, fill=False, linestyle=":", color="grey"))
    left.set_aspect("equal")
    left.set_xlabel("x (m)")
    left.set_ylabel("y (m)")
    left.set_title(f"{config.controller.replace('_', ' ')} {run.status}: path back to the goal")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    if run.errors:
        errors = np.array(run.errors)
        right.plot(errors[:, 0] - errors[0, 0], errors[:, 1], "-", color="#2e9d4a", label="latent error")
        right.set_yscale("log")
    if tolerance is not None:  # converged: the error stays below it (and the robot within the success region)
        right.axhline(tolerance, color="black", linestyle="--", linewidth=1, label=f"tolerance {tolerance:.3f}")
        right.legend(fontsize=8)
    right.set_xlabel("simulated time (s)")
    right.set_ylabel("latent error |z - z*|" + (" (servo/error)" if config.controller == "servo" else ""))
    right.set_title("latent error over time")
    right.grid(alpha=0.3)
    _save(fig, path)


def _plan_poses(head: Any, plan: np.ndarray, goal_latent: np.ndarray,
                goal: tuple[float, float, float]) -> np.ndarray:
    """Planned latents (H, D) -> the robot poses (H, 3) in the odom frame they stand for, read through the
    control model's relative-pose head (the goal's pose in the robot frame) from the known goal pose."""
    est = head.estimate_batch(plan, goal_latent)  # (H, 3): goal (dx, dy, dyaw) in the robot frame
    yaw = goal[2] - est[:, 2]
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([goal[0] - (c * est[:, 0] - s * est[:, 1]), goal[1] - (s * est[:, 0] + c * est[:, 1]), yaw], 1)


# A plan's pose reading is drawn only where the head reads its first planned latent within these of the pose
# odometry gives for that time (the planner's own agreement gate in look_around); elsewhere the goal is out of
# the head's range and its readings of the whole plan are meaningless.
HEAD_READ_M = 0.25
HEAD_READ_DEG = 25.0


def _pose_at(poses: list[tuple[float, float, float, float]], t: float) -> tuple[float, float, float] | None:
    """The odometry pose (x, y, yaw) nearest in time to t, if one is within 0.2 s."""
    if not poses:
        return None
    times = np.array([p[0] for p in poses])
    i = int(np.argmin(np.abs(times - t)))
    return (poses[i][1], poses[i][2], poses[i][3]) if abs(times[i] - t) <= 0.2 else None


def _readable(first: np.ndarray, actual: tuple[float, float, float] | None) -> bool:
    """Whether a plan's first planned pose (the head's reading) is where odometry put the robot."""
    if actual is None:
        return False
    gap = math.hypot(float(first[0]) - actual[0], float(first[1]) - actual[1])
    turn = abs(math.degrees(math.remainder(float(first[2]) - actual[2], math.tau)))
    return gap <= HEAD_READ_M and turn <= HEAD_READ_DEG


def _plot_plans(path: Path, config: DemoConfig, run: Any, goal_latent: np.ndarray) -> None:
    """The world model's plans beside what was executed: each plan's predicted latent error to the goal over
    its horizon, and the planned path in pose terms (the head's reading of each planned latent) for the plans
    whose first step the head reads where odometry put the robot (HEAD_READ_M, HEAD_READ_DEG)."""
    import matplotlib

    from vae_ros.control.runtime.control_model import control_model_dir
    from vae_ros.control.runtime.dynamics import load_dynamics_dir
    from vae_ros.control.runtime.pose_head import PoseHeadNumpy
    from vae_ros.core.model_dir import DYNAMICS_DIR
    from vae_ros.core.plots import _figure, _save

    model_dir = control_model_dir("")
    dynamics_dir = Path(config.dynamics).expanduser() if config.dynamics else model_dir / DYNAMICS_DIR
    dt = load_dynamics_dir(dynamics_dir).dt
    head = PoseHeadNumpy.load(model_dir, goal_latent.size)
    goal = config.goal_pose
    fig = _figure(12, 4.8)
    left, right = fig.subplots(1, 2)
    t0 = run.poses[0][0] if run.poses else (run.plans[0][0] if run.plans else 0.0)
    cmap = matplotlib.colormaps["viridis"]
    span = max(1e-6, (run.plans[-1][0] - run.plans[0][0]) if run.plans else 1.0)
    shown = run.plans[:: max(1, len(run.plans) // 25)]
    for stamp, plan in shown:
        times = stamp - t0 + dt * np.arange(1, len(plan) + 1)
        left.plot(times, np.linalg.norm(plan - goal_latent, axis=1), "-", color=cmap((stamp - run.plans[0][0]) / span),
                  lw=0.8, alpha=0.8)
    readable = []
    for stamp, plan in run.plans:
        poses = _plan_poses(head, plan, goal_latent, goal)
        if _readable(poses[0], _pose_at(run.poses, stamp + dt)):
            readable.append((stamp, poses))
    drawn = readable[:: max(1, len(readable) // 25)]
    for stamp, poses in drawn:
        right.plot(poses[:, 0], poses[:, 1], "-", color=cmap((stamp - run.plans[0][0]) / span), lw=0.8, alpha=0.8)
    if run.errors:
        errors = np.array(run.errors)
        left.plot(errors[:, 0] - t0, errors[:, 1], "-", color="#d0342c", lw=2.0, label="executed (encoded scans)")
    left.plot([], [], "-", color=cmap(0.5), lw=0.8, label="planned (world model), by plan time")
    left.set_xlabel("simulated time (s)")
    left.set_ylabel("latent error |z - z*| to the goal")
    left.set_title(f"{len(run.plans)} plans of {len(shown[0][1]) if shown else 0} steps ({len(shown)} drawn)",
                   fontsize=10)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    poses = np.array(run.poses) if run.poses else np.zeros((0, 4))
    if len(poses):
        right.plot(poses[:, 1], poses[:, 2], "-", color="#d0342c", lw=2.0, label="executed (odometry)")
    right.plot([], [], "-", color=cmap(0.5), lw=0.8, label="planned (head's reading of the planned latents)")
    for pose, colour, label in ((goal, "black", "goal"), (config.start, "#1f77b4", "start")):
        right.plot([pose[0]], [pose[1]], marker="*" if label == "goal" else "o", color=colour, markersize=10,
                   label=label, linestyle="none")
        right.annotate("", xy=(pose[0] + 0.2 * math.cos(pose[2]), pose[1] + 0.2 * math.sin(pose[2])),
                       xytext=(pose[0], pose[1]), arrowprops={"arrowstyle": "->", "color": colour})
    if not readable:
        right.text(0.5, 0.97, f"no plan's first step read within {HEAD_READ_M:.2f} m / {HEAD_READ_DEG:.0f} deg\n"
                   "of odometry: no planned path in pose terms", transform=right.transAxes, ha="center",
                   va="top", fontsize=8, color="grey")
    right.set_aspect("equal", adjustable="datalim")
    right.set_xlabel("x (m)")
    right.set_ylabel("y (m)")
    right.set_title(f"planned paths in pose terms: {len(readable)} of {len(run.plans)} plans\nreadable by the head "
                    f"({len(drawn)} drawn)", fontsize=10)
    right.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.suptitle("world model MPC: planned latent trajectories (thin, early purple -> late yellow) and the executed "
                 "one (red); none while the servo law drives near the goal.\nA plan's poses are the head's reading "
                 f"of its latents, drawn only where the head reads its first step within {HEAD_READ_M:.2f} m and "
                 f"{HEAD_READ_DEG:.0f} deg of odometry (elsewhere the goal is outside the head's range)", fontsize=8)
    _save(fig, path)


def _plot_frames(path: Path, views: list[tuple[str, tuple[Any, Any]]]) -> None:
    from vae_ros.core.plots import _figure, _save

    fig = _figure(3 * len(views), 6.2)
    axes = fig.subplots(2, len(views))
    for col, (name, (frame, recon)) in enumerate(views):
        for row, (image, label) in enumerate(((frame, "camera"), (recon, "reconstruction"))):
            ax = axes[row, col]
            ax.axis("off")
            if image is None:
                ax.set_title(f"{name}: no {label}", fontsize=9)
                continue
            ax.imshow(np.asarray(image))
            ax.set_title(f"{name}: {label}", fontsize=9)
    fig.suptitle("camera frames at the goal, the start and the end, beside the image VAE's reconstructions")
    _save(fig, path)


def format_summary(summary: dict[str, Any]) -> str:
    converge = summary["time_to_converge_s"]
    rows = [
        ("world seed (never used in training)", f"{summary['world_seed']}"),
        ("start distance from the goal", f"{summary['start_error_m']:.2f} m, {summary['start_error_deg']:.1f} deg"),
        ("controller", summary["controller"]),
        (f"{summary['controller'].replace('_', ' ')} verdict", summary["servo_status"]),
        ("time to converge (simulated)", "-" if converge is None else f"{converge:.1f} s"),
        ("final position error (ground truth)", f"{summary['final_position_error_m'] * 100:.1f} cm"),
        ("final yaw error (ground truth)", f"{summary['final_yaw_error_deg']:.2f} deg"),
        ("success (<= 0.10 m and 5 deg)", "yes" if summary["success"] else "no"),
        ("path length", f"{summary['path_length_m']:.2f} m"),
        ("latent error first -> last", f"{summary['latent_error_first'] or float('nan'):.3f} -> "
                                        f"{summary['latent_error_last'] or float('nan'):.3f}"),
        ("wall time", f"{summary['wall_time_s']:.1f} s"),
    ]
    if summary["controller"] == "world_model":
        rows.insert(-1, ("plans (world_model/planned_latents)", str(summary["plans"])))
        p50, p99, count = summary["plan_time_p50_ms"], summary["plan_time_p99_ms"], summary.get("plan_time_count")
        if p50 is not None and p99 is not None:
            over = f"{count:.0f} planning steps" if count is not None else "planning steps"
            rows.insert(-1, (f"plan time p50 / p99 ({over})", f"{p50:.0f} / {p99:.0f} ms"))
    return "\n".join(f"  {name:<40} {value}" for name, value in rows)
