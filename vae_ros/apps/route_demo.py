"""`vae-ros demo --route`: teach and repeat over real ROS 2 with the packaged control model.

sim_node (wheel odometry with its typical error, `odom_error` 1) and an encoder_node on the packaged control
model (LaserScan -> `vae/latent_stamped`) run as processes over DDS, as route.launch.py starts them, for one
robot in namespace robot1 and then, in the same world, for another of the same model in namespace robot2.
Teach: a scripted teacher drives robot1 along a 3.3 m path with a 90 deg turn while `vae-ros record` records
`/robot1/vae/latent_stamped` and `/robot1/odom`; the route is taught from that bag by `vae-ros teach` itself.
Repeat: robot2 starts 0.15 m beside the route's start, turned 10 deg (sim_node's `initial_pose`), and its
route_follower_node repeats robot1's route from robot2's own latents and odometry until it says `done` (its
/diagnostics `state`) or the time is up. Judged by `ground_truth/odom`, which only this demo reads, never the follower, with
eval-route's rule (vae_ros.control.evaluation.routes): the end within 0.10 m / 5 deg of the last keyframe's true
pose, never more than 0.3 m off the taught (true) path, 98 % of it driven, nothing touched. Writes summary.json,
demo_route.png (taught and repeated true paths, the odometry of both runs, the distance from the taught path over
time), the teach bag, the route and the nodes' logs.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.apps.route_session import FOLLOWER, RouteSession, RouteSessionConfig
from vae_ros.control.evaluation.routes import (
    MAX_PATH_ERROR_M,
    MIN_COVERAGE,
    SUCCESS_POSITION_M,
    SUCCESS_YAW_RAD,
    Teaching,
    densify,
    judge,
    path_distance,
    succeeded,
)
from vae_ros.core.errors import ConfigError, RosError
from vae_ros.ros import interface
from vae_ros.sim.geometry import wrap_angle

# The taught path (m, the room's frame): 1.7 m along x, a 90 deg left turn, 1.6 m along y; at least
# PATH_CLEARANCE_M clear of walls and objects (0.7 m in world seed 0; checked at start for the chosen world).
WAYPOINTS = ((-1.2, -0.6), (0.5, -0.6), (0.5, 1.0))
PATH_CLEARANCE_M = 0.25
# Where the repeat starts, in the frame of the route's (true) start: 0.15 m to the left, turned 10 deg
# (eval-route's displaced starts are up to this far off).
START_OFFSET = (0.0, 0.15, math.radians(10.0))
REPEAT_TIMEOUT_S = 60.0  # simulated seconds for the repeat (it takes about 15)
SETTLE_S = 0.5  # simulated seconds recorded after the robot stopped, before and after the repeat
BAG_DIR = "teach_bag"  # in OUT: the teach run's bag (vae-ros record)
ROUTE_DIR = "route"  # in OUT: the route (vae-ros teach --out)
PNG = "demo_route.png"
RECORDER = "recorder"
# One robot teaches, another of the same model repeats: a route is shared between robots as latents.
TEACHER, REPEATER = "robot1", "robot2"


@dataclass
class RouteDemoConfig:
    out: Path = Path("demo_out")
    seed: int = 0
    rate: float = 10.0
    backend: str = "auto"
    odom_error: float = 1.0  # sim_node's wheel-odometry error: 1 = the documented typical error
    timeout: float = REPEAT_TIMEOUT_S
    startup_timeout: float = 90.0
    progress: bool = True

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.timeout > 0 and self.startup_timeout > 0):
            raise ConfigError("--rate, --timeout and --startup-timeout must be positive")
        if not (math.isfinite(self.odom_error) and self.odom_error >= 0):
            raise ConfigError(f"--odom-error must be a number >= 0, got {self.odom_error}")


def route_start() -> tuple[float, float, float]:
    """Where the teacher starts: the first waypoint, facing the second."""
    (x0, y0), (x1, y1) = WAYPOINTS[0], WAYPOINTS[1]
    return (x0, y0, math.atan2(y1 - y0, x1 - x0))


def offset_pose(pose: tuple[float, float, float], offset: tuple[float, float, float]) -> tuple[float, float, float]:
    """`offset` (dx ahead, dy to the left, dyaw) in the frame of `pose`, as a pose in pose's frame."""
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    return (x + c * offset[0] - s * offset[1], y + s * offset[0] + c * offset[1], wrap_angle(yaw + offset[2]))


# -- the demo ------------------------------------------------------------------------------------------------
def run_route_demo(config: RouteDemoConfig) -> dict[str, Any]:
    """Teach by driving, teach the route from the bag, repeat it from a displaced start; judge, plot; returns the
    summary (also written to OUT/summary.json)."""
    from vae_ros.apps.demo import clear_previous_run
    from vae_ros.ros.route_file import load_route

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    clear_previous_run(out)
    say: Callable[[str], None] = print if config.progress else (lambda _line: None)
    wall = time.monotonic()
    waypoints = np.array(WAYPOINTS, dtype=np.float64)
    world_objects = _check_path_clear(config.seed, waypoints)
    bag, route_dir = out / BAG_DIR, out / ROUTE_DIR
    say(f"{TEACHER}: starting sim_node (world seed {config.seed}, odom_error {config.odom_error:g}) and the "
        "control encoder")
    teacher = RouteSessionConfig(seed=config.seed, rate=config.rate, backend=config.backend,
                                 odom_error=config.odom_error, initial_pose=route_start(), log_dir=out / "logs" / TEACHER,
                                 startup_timeout=config.startup_timeout, namespace=TEACHER)
    with RouteSession(teacher) as session:
        # 1. Teach: robot1 records latents and odometry while the teacher drives it.
        topics = (session.topic(interface.LATENT_STAMPED_TOPIC), session.topic(interface.ODOM_TOPIC))
        say(f"{TEACHER}: nodes up after {time.monotonic() - wall:.1f} s; recording {topics[0]} and {topics[1]} "
            f"(vae-ros record) while the teacher drives {_length(waypoints):.1f} m with a turn")
        recorder = session.nodes.start(RECORDER, "vae_ros.apps.cli", [
            "record", "--out", str(bag), *topics, "--use-sim-time", "--quiet"])
        session.wait("vae-ros record to subscribe", lambda: session.subscribed(f"vae_ros_record_{recorder.pid}", topics),
                     config.startup_timeout)
        session.wait_sim("the recording to begin with the robot standing", SETTLE_S)
        teach_start = session.sim_time
        teach_end = session.drive(waypoints)
        session.wait_sim("the robot to stop at the end of the path", SETTLE_S)
        code = session.nodes.stop(RECORDER)
        if code != 0:
            raise RosError(f"vae-ros record exited with code {code}; see {out / 'logs' / TEACHER / RECORDER}.log")
        # From the start: the bag's first latents may be older than teach_start (the robot stood still then).
        (teach_truth, teach_odom), _ = session.records(0.0, session.mark())
    say(f"{TEACHER}: taught by driving: {teach_end - teach_start:.1f} s simulated; its nodes stopped; teaching the "
        "route from its bag (vae-ros teach)")
    # 2. The route, from robot1's bag, by `vae-ros teach` itself.
    _teach(bag, route_dir, config.progress)
    route = load_route(route_dir)
    # 3. robot2 (another robot of the same model, in its own namespace) repeats it from a displaced start.
    truth_start = _pose_at(teach_truth, route.stamps_ns[0] * 1e-9)
    start = offset_pose(truth_start, START_OFFSET)
    say(f"{REPEATER}: starting at {_fmt_pose(start)}, {math.hypot(*START_OFFSET[:2]):.2f} m beside the route's "
        f"start and turned {math.degrees(START_OFFSET[2]):.0f} deg; its {FOLLOWER} repeats {TEACHER}'s route")
    repeater = replace(teacher, initial_pose=start, log_dir=out / "logs" / REPEATER, namespace=REPEATER)
    with RouteSession(repeater) as session:
        mark = session.mark()
        repeat_start = session.sim_time
        session.nodes.start_node(FOLLOWER, f"vae_ros.ros.nodes.{FOLLOWER}", [
            *session.node_args(), "-p", f"route:={route_dir}", "-p", "use_sim_time:=true",
            "-p", "diagnostics_period:=0.2"])
        session.wait(f"{FOLLOWER}'s diagnostics", lambda: bool(session.follower_state(repeat_start)),
                     config.startup_timeout)
        follow_start = session.sim_time
        said = [""]

        def finished() -> bool:
            state = session.follower_state(follow_start)
            if state and state != said[0]:
                said[0] = state
                say(f"  {session.sim_time - follow_start:5.1f} s  {REPEATER}'s {FOLLOWER}: {state}")
            return state == "done" or session.sim_time - follow_start > config.timeout

        session.wait(f"{FOLLOWER} to finish the route", finished, config.timeout * 5 + 60)
        status = "done" if session.follower_state(follow_start) == "done" else "timeout"
        repeat_end = session.sim_time
        session.wait_sim("the robot to stop after the repeat", SETTLE_S)
        _, (repeat_truth, repeat_odom) = session.records(0.0, mark)
        follower, states = session.follower_record()
    summary = _judge(config, route, teach_truth, teach_odom, repeat_truth, repeat_odom, start, status,
                     repeat_end - follow_start, follower, states, world_objects)
    summary["taught_by"], summary["repeated_by"] = TEACHER, REPEATER
    summary["wall_time_s"] = time.monotonic() - wall
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _plot(out / PNG, summary, route, teach_truth, repeat_truth, repeat_odom)
    return summary


def _teach(bag: Path, route_dir: Path, progress: bool) -> None:
    """`vae-ros teach --bag BAG --out ROUTE --force` (its parser and run, in this process)."""
    import argparse

    from vae_ros.apps.cli import teach

    parser = argparse.ArgumentParser(prog="vae-ros teach")
    teach.register(parser)
    args = parser.parse_args(["--bag", str(bag), "--out", str(route_dir), "--force"])
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        teach.run(args)
    if progress:
        print(output.getvalue(), end="")


def _check_path_clear(seed: int, waypoints: np.ndarray) -> list[Any]:
    """The world's objects; ConfigError when the taught path passes closer than PATH_CLEARANCE_M to one."""
    from vae_ros.sim.world import SimConfig, SimWorld

    world = SimWorld(SimConfig(seed=seed, image_width=16, image_height=16))
    try:
        dense, _ = densify(waypoints, step=0.05)
        closest = min(world.clearance(float(x), float(y)) for x, y in dense)
        objects = list(world.objects)
    finally:
        world.close()
    if closest < PATH_CLEARANCE_M:
        raise ConfigError(f"the route demo's path passes {closest:.2f} m from an object in world seed {seed} (it needs "
                          f"{PATH_CLEARANCE_M:g} m): use --seed 0")
    return objects


def _length(xy: np.ndarray) -> float:
    return float(np.sum(np.hypot(*np.diff(np.asarray(xy)[:, :2], axis=0).T))) if len(xy) > 1 else 0.0


def _pose_at(samples: list[tuple[float, float, float, float]], t: float) -> tuple[float, float, float]:
    """The (x, y, yaw) of the sample nearest in time to t; RosError when none is within 0.2 s."""
    if not samples:
        raise RosError("no ground truth received from sim_node")
    times = np.array([p[0] for p in samples])
    i = int(np.argmin(np.abs(times - t)))
    if abs(times[i] - t) > 0.2:
        raise RosError(f"no ground truth near simulated time {t:.2f} s (nearest {times[i]:.2f} s)")
    return samples[i][1], samples[i][2], samples[i][3]


def _fmt_pose(pose: tuple[float, float, float]) -> str:
    return f"({pose[0]:.2f} m, {pose[1]:.2f} m, {math.degrees(pose[2]):.0f} deg)"


def _judge(config: RouteDemoConfig, route: Any, teach_truth: list[tuple[float, float, float, float]],
           teach_odom: list[tuple[float, float, float, float]], repeat_truth: list[tuple[float, float, float, float]],
           repeat_odom: list[tuple[float, float, float, float]], start: tuple[float, float, float], status: str,
           repeat_time: float, follower: dict[str, str], states: list[tuple[float, str]],
           objects: list[Any]) -> dict[str, Any]:
    """eval-route's judge (vae_ros.control.evaluation.routes) on the ground truth of both runs."""
    from vae_ros.sim.geometry import clearances

    first, last = route.stamps_ns[0] * 1e-9, route.stamps_ns[-1] * 1e-9
    taught = np.array([p[1:] for p in teach_truth if first - 0.05 <= p[0] <= last + 0.05])  # (N, 3) true poses
    if len(taught) < 2 or not repeat_truth:
        raise RosError("too little ground truth recorded to judge the repeat")
    end_truth = _pose_at(teach_truth, last)
    taught = np.vstack([taught, end_truth])  # the last keyframe's true pose is the end to reach
    teaching = Teaching(true_poses=taught, odom_poses=np.zeros((0, 3)), stamps_ns=np.zeros(0, np.int64), latents={},
                        dense_path=taught[:, :2])
    trajectory = [(p[1], p[2], p[3]) for p in repeat_truth]
    judged = judge({}, trajectory, teaching)
    collided = bool(np.min(clearances(np.array([p[:2] for p in trajectory]), objects)) < 0.0)
    lost = sum(b[0] - a[0] for a, b in zip(states, states[1:], strict=False) if a[1] == "lost")
    teach_drift = _drift(teach_odom, teach_truth, last)
    repeat_drift = _drift(repeat_odom, repeat_truth, repeat_truth[-1][0])
    truth_start = _pose_at(teach_truth, first)
    return {
        "mode": "route",
        "world_seed": config.seed,
        "odom_error": config.odom_error,
        "waypoints": [list(p) for p in WAYPOINTS],
        "keyframes": len(route),
        "route_length_m": float(route.length),  # along the keyframes' odometry poses
        "taught_path_length_m": _length(taught),  # ground truth
        "teach_time_s": float(last - first),
        "route_start": list(truth_start),
        "start": list(start),
        "start_offset_m": math.hypot(start[0] - truth_start[0], start[1] - truth_start[1]),
        "start_offset_deg": math.degrees(abs(wrap_angle(start[2] - truth_start[2]))),
        "follower_status": status,
        "follower_states": [state for _, state in states],
        "lost_s": lost,
        "repeat_time_s": repeat_time,
        "repeated_path_length_m": _length(np.array(trajectory)),
        "route_end": list(end_truth),
        "final_pose": list(trajectory[-1]),
        "final_position_error_m": judged["final_position_error"],
        "final_yaw_error_deg": math.degrees(judged["final_yaw_error"]),
        "max_path_error_m": judged["max_path_error"],
        "mean_path_error_m": judged["mean_path_error"],
        "coverage": judged["coverage"],
        "collided": collided,
        "odometry_drift_teach_m": teach_drift,  # odometry vs ground truth where the teacher stopped
        "odometry_drift_repeat_m": repeat_drift,  # ... and where the repeat ended
        "follower_keyframe": follower.get("keyframe"),
        "follower_distance_left_m": _number(follower.get("distance_left")),
        "success": succeeded(judged, collided),
        "success_rule": {"position_m": SUCCESS_POSITION_M, "yaw_deg": math.degrees(SUCCESS_YAW_RAD),
                         "max_path_error_m": MAX_PATH_ERROR_M, "min_coverage": MIN_COVERAGE},
    }


def _drift(odom: list[tuple[float, float, float, float]], truth: list[tuple[float, float, float, float]],
           t: float) -> float | None:
    """Distance (m) between the odometry and the true pose at simulated time t (both start where the robot
    was placed: sim_node's odometry starts at the true pose)."""
    if not odom:
        return None
    o, g = _pose_at(odom, t), _pose_at(truth, t)
    return math.hypot(o[0] - g[0], o[1] - g[1])


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _plot(path: Path, summary: dict[str, Any], route: Any, teach_truth: list[tuple[float, float, float, float]],
          repeat_truth: list[tuple[float, float, float, float]],
          repeat_odom: list[tuple[float, float, float, float]]) -> None:
    """Left: the taught and repeated true paths, the route's keyframes (the teach run's odometry) and the repeat's
    odometry, in the room's frame (both odometries start at the true pose). Right: the repeat's distance from the
    taught path over time, with the 0.3 m limit."""
    from matplotlib.patches import Circle

    from vae_ros.core.plots import _figure, _save

    teach_s, last = summary["teach_time_s"], route.stamps_ns[-1] * 1e-9
    taught = np.array([p[1:] for p in teach_truth if p[0] <= last + 0.05])
    repeat = np.array([p[1:] for p in repeat_truth])
    odom = np.array([p[1:] for p in repeat_odom]) if repeat_odom else np.zeros((0, 3))
    keys = np.asarray(route.poses, dtype=np.float64)
    fig = _figure(12, 5.2)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1.0]})
    left.plot(taught[:, 0], taught[:, 1], "-", color="black", linewidth=3.0, alpha=0.3, label="taught (ground truth)")
    left.plot(keys[:, 0], keys[:, 1], ".", color="#8c8c8c", markersize=6,
              label=f"route keyframes ({len(keys)}, teach odometry)")
    left.plot(repeat[:, 0], repeat[:, 1], "-", color="#2e9d4a", linewidth=1.6, label="repeated (ground truth)")
    if len(odom):
        left.plot(odom[:, 0], odom[:, 1], "--", color="#d0342c", linewidth=1.0, label="repeat's odometry (drifting)")
    start, end = summary["start"], summary["route_end"]
    for pose, colour, marker, label in ((summary["route_start"], "black", "o", "route start"),
                                        (start, "#2e9d4a", "s", "repeat start"), (end, "black", "*", "route end")):
        left.plot([pose[0]], [pose[1]], marker=marker, color=colour, markersize=9, linestyle="none",
                  markerfacecolor="none" if marker == "o" else colour, label=label)
        left.annotate("", xy=(pose[0] + 0.2 * math.cos(pose[2]), pose[1] + 0.2 * math.sin(pose[2])),
                      xytext=(pose[0], pose[1]), arrowprops={"arrowstyle": "->", "color": colour})
    left.add_patch(Circle(end[:2], SUCCESS_POSITION_M, fill=False, linestyle=":", color="grey"))
    left.set_aspect("equal", adjustable="datalim")
    left.set_xlabel("x (m, the room's frame)")
    left.set_ylabel("y (m)")
    left.grid(alpha=0.3)
    left.legend(fontsize=7, loc="upper left")
    verdict = "success" if summary["success"] else "failure"
    left.set_title(f"{summary['follower_status']}, {verdict}: end {summary['final_position_error_m'] * 100:.1f} cm / "
                   f"{summary['final_yaw_error_deg']:.1f} deg off the last keyframe", fontsize=9)
    if len(repeat) > 1:
        t = np.array([p[0] for p in repeat_truth]) - repeat_truth[0][0]
        distance = [path_distance(taught[:, :2], p[:2]) for p in repeat]
        right.plot(t, np.array(distance) * 100, "-", color="#2e9d4a", label="distance from the taught path")
    right.axhline(MAX_PATH_ERROR_M * 100, color="#d0342c", linestyle="--", linewidth=1,
                  label=f"limit {MAX_PATH_ERROR_M * 100:.0f} cm")
    right.set_xlabel("simulated time of the repeat (s)")
    right.set_ylabel("cm (ground truth)")
    right.set_ylim(bottom=0)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    right.set_title(f"max {summary['max_path_error_m'] * 100:.1f} cm, mean {summary['mean_path_error_m'] * 100:.1f} cm "
                    f"off the taught path", fontsize=9)
    fig.suptitle(f"vae-ros demo --route: taught by driving {summary['taught_path_length_m']:.1f} m ({teach_s:.0f} s), "
                 f"{summary['keyframes']} keyframes; repeated by {FOLLOWER} from "
                 f"{summary['start_offset_m']:.2f} m / {summary['start_offset_deg']:.0f} deg off the start, "
                 f"odom_error {summary['odom_error']:g}", fontsize=9)
    _save(fig, path)


def format_route_summary(summary: dict[str, Any]) -> str:
    rows = [
        ("world seed / odom_error", f"{summary['world_seed']} / {summary['odom_error']:g}"),
        ("taught by / repeated by", f"{summary['taught_by']} / {summary['repeated_by']} (namespaces)"),
        ("taught by driving (ground truth)", f"{summary['taught_path_length_m']:.2f} m in {summary['teach_time_s']:.1f} s"),
        ("route (vae-ros teach)", f"{summary['keyframes']} keyframes, {summary['route_length_m']:.2f} m of odometry"),
        ("repeat start off the route's start", f"{summary['start_offset_m']:.2f} m, {summary['start_offset_deg']:.0f} deg"),
        ("follower verdict", f"{summary['follower_status']} after {summary['repeat_time_s']:.1f} s (simulated)"),
        ("final position error (ground truth)", f"{summary['final_position_error_m'] * 100:.1f} cm"),
        ("final yaw error (ground truth)", f"{summary['final_yaw_error_deg']:.2f} deg"),
        ("off the taught path max / mean", f"{summary['max_path_error_m'] * 100:.1f} / "
                                           f"{summary['mean_path_error_m'] * 100:.1f} cm"),
        ("taught path driven (within 0.3 m)", f"{summary['coverage'] * 100:.0f} %"),
        ("odometry drift teach / repeat", f"{_cm(summary['odometry_drift_teach_m'])} / "
                                          f"{_cm(summary['odometry_drift_repeat_m'])}"),
        ("success (0.10 m, 5 deg, 0.3 m off)", "yes" if summary["success"] else "no"),
        ("wall time", f"{summary['wall_time_s']:.1f} s"),
    ]
    return "\n".join(f"  {name:<40} {value}" for name, value in rows)


def _cm(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} cm"


def remove_route_outputs(out: Path) -> None:
    """A previous route demo's teach bag and route in OUT (only those: a folder there holding anything else
    is refused, not deleted)."""
    bag = out / BAG_DIR
    if bag.is_dir():
        foreign = [p.name for p in bag.iterdir() if not (p.name == "metadata.yaml" or p.suffix in (".mcap", ".db3"))]
        if foreign:
            raise ConfigError(f"{bag} holds files that are not a bag's ({', '.join(sorted(foreign)[:3])}); move it away")
        shutil.rmtree(bag)
    route = out / ROUTE_DIR
    if route.exists():
        from vae_ros.ros.route_file import check_route_target

        check_route_target(route, force=True)  # refuses a folder that is not a route
        shutil.rmtree(route)
