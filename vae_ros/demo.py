"""`vae-ros demo`: goal-reaching latent servoing over real ROS 2 with the packaged models.

sim_node, an encoder_node on the packaged control model (LaserScan -> `vae/latent_stamped`), a camera
encoder_node + decoder_node (for the pictures) and latent_servo_node run as separate processes
(vae_ros.servo_session). The demo teaches the goal where the robot stands (`servo/set_goal`: the current
observation becomes the goal) and keeps the camera frame seen there, moves the robot away through
sim_node's `initial_pose`, and lets the servo bring it back. It prints the final pose error (simulator
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

from vae_ros.control.episodes import pose_error
from vae_ros.control.metric import SUCCESS_POSITION_M, SUCCESS_YAW_RAD
from vae_ros.core.errors import ConfigError

SUCCESS_YAW_DEG = math.degrees(SUCCESS_YAW_RAD)


@dataclass
class DemoConfig:
    out: Path = Path("demo_out")
    seed: int = 0
    rate: float = 10.0
    backend: str = "auto"
    goal: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # Where the robot is moved to, in the goal's frame: behind, to the left, turned right.
    offset: tuple[float, float, float] = (-0.6, -0.4, -0.4)
    timeout: float = 40.0  # simulated seconds for the servo
    startup_timeout: float = 90.0
    progress: bool = True
    start: tuple[float, float, float] = field(init=False, default=(0.0, 0.0, 0.0))

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.timeout > 0 and self.startup_timeout > 0):
            raise ConfigError("--rate, --timeout and --startup-timeout must be positive")
        gx, gy, gyaw = self.goal
        c, s = math.cos(gyaw), math.sin(gyaw)
        ox, oy, oyaw = self.offset
        self.start = (gx + c * ox - s * oy, gy + s * ox + c * oy, gyaw + oyaw)


def _pose_error(pose: tuple[float, float, float], goal: tuple[float, float, float]) -> tuple[float, float]:
    """(position error m, yaw error deg)."""
    position, yaw = pose_error(pose, goal)
    return position, math.degrees(yaw)


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Teach, displace, servo back; analyse, plot; returns the summary (also written to OUT/summary.json)."""
    import time

    from vae_ros.servo_session import ServoSession, SessionConfig

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    wall = time.monotonic()
    session_config = SessionConfig(seed=config.seed, rate=config.rate, backend=config.backend, camera_views=True,
                                   log_dir=out / "logs", startup_timeout=config.startup_timeout,
                                   initial_pose=config.goal)
    say = print if config.progress else (lambda *_a, **_k: None)
    with ServoSession(session_config) as session:
        say(f"nodes up after {time.monotonic() - wall:.1f} s; teaching the goal at {_fmt_pose(config.goal)}")
        session.teach_at(config.goal)
        goal_views = session.frame_near(session.sim_time - 0.2)
        say(f"moving the robot away to {_fmt_pose(config.start)}; servoing back")
        session.place(config.start)
        start_views = session.frame_near(session.sim_time - 0.2)
        run = session.servo(timeout=config.timeout)
        final_views = session.frame_near(session.sim_time - 0.2)
    position_error, yaw_error = _pose_error(run.final_pose, config.goal)
    start_error = _pose_error(config.start, config.goal)
    xy = np.array([(x, y) for _, x, y, _ in run.poses]) if run.poses else np.zeros((0, 2))
    summary = {
        "world_seed": config.seed,
        "goal": list(config.goal),
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
        "wall_time_s": time.monotonic() - wall,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _plot_trajectory(out / "demo_trajectory.png", config, run)
    _plot_frames(out / "demo_frames.png", [("goal", goal_views), ("start", start_views), ("final", final_views)])
    return summary


def _fmt_pose(pose: tuple[float, float, float]) -> str:
    return f"({pose[0]:.2f} m, {pose[1]:.2f} m, {math.degrees(pose[2]):.0f} deg)"


def _plot_trajectory(path: Path, config: DemoConfig, run: Any) -> None:
    from vae_ros.core.plots import _figure, _save

    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    poses = np.array(run.poses) if run.poses else np.zeros((0, 4))
    if len(poses):
        left.plot(poses[:, 1], poses[:, 2], "-", color="#1f77b4", label="robot (odometry)")
        for _t, x, y, yaw in poses[:: max(1, len(poses) // 12)]:
            left.annotate("", xy=(x + 0.08 * math.cos(yaw), y + 0.08 * math.sin(yaw)), xytext=(x, y),
                          arrowprops={"arrowstyle": "->", "color": "#1f77b4", "linewidth": 0.8})
    for pose, colour, label in ((config.goal, "black", "goal"), (config.start, "#d0342c", "start")):
        left.plot([pose[0]], [pose[1]], marker="*" if label == "goal" else "o", color=colour, markersize=10,
                  label=label, linestyle="none")
        left.annotate("", xy=(pose[0] + 0.2 * math.cos(pose[2]), pose[1] + 0.2 * math.sin(pose[2])),
                      xytext=(pose[0], pose[1]), arrowprops={"arrowstyle": "->", "color": colour})
    from matplotlib.patches import Circle

    left.add_patch(Circle(config.goal[:2], SUCCESS_POSITION_M, fill=False, linestyle=":", color="grey"))
    left.set_aspect("equal")
    left.set_xlabel("x (m)")
    left.set_ylabel("y (m)")
    left.set_title(f"servo {run.status}: path back to the goal")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    if run.errors:
        errors = np.array(run.errors)
        right.plot(errors[:, 0] - errors[0, 0], errors[:, 1], "-", color="#2e9d4a")
        right.set_yscale("log")
    right.set_xlabel("simulated time (s)")
    right.set_ylabel("latent error |z - z*| (servo/error)")
    right.set_title("latent error over time")
    right.grid(alpha=0.3)
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
        ("servo verdict", summary["servo_status"]),
        ("time to converge (simulated)", "-" if converge is None else f"{converge:.1f} s"),
        ("final position error (ground truth)", f"{summary['final_position_error_m'] * 100:.1f} cm"),
        ("final yaw error (ground truth)", f"{summary['final_yaw_error_deg']:.2f} deg"),
        ("success (<= 0.10 m and 5 deg)", "yes" if summary["success"] else "no"),
        ("path length", f"{summary['path_length_m']:.2f} m"),
        ("latent error first -> last", f"{summary['latent_error_first'] or float('nan'):.3f} -> "
                                        f"{summary['latent_error_last'] or float('nan'):.3f}"),
        ("wall time", f"{summary['wall_time_s']:.1f} s"),
    ]
    return "\n".join(f"  {name:<40} {value}" for name, value in rows)
