"""`vae-ros demo --route`: teach and repeat over real ROS 2 with the packaged control model.

sim_node (wheel odometry with its typical error, `odom_error` 1) and an encoder_node on the packaged control
model (LaserScan -> `vae/latent_stamped`) run as processes over DDS, as route.launch.py starts them. Teach: a
scripted teacher drives the robot along a 3.3 m path with a 90 deg turn while `vae-ros record` records
`vae/latent_stamped` and `odom`; the route is taught from that bag by `vae-ros teach` itself. Repeat: the robot
is put down 0.15 m beside the route's start and turned 10 deg (sim_node's `initial_pose`) and
route_follower_node repeats the route from its own latents and odometry until it says `done` (its /diagnostics
`state`) or the time is up. Judged by `ground_truth/odom`, which only this demo reads, never the follower, with
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.apps.node_processes import NodeProcesses
from vae_ros.control.evaluation.routes import (
    MAX_PATH_ERROR_M,
    MIN_COVERAGE,
    SUCCESS_POSITION_M,
    SUCCESS_YAW_RAD,
    TEACH_SPEED,
    Teaching,
    densify,
    judge,
    path_distance,
    succeeded,
    teacher_step,
)
from vae_ros.core.errors import ConfigError, RosError, RosTimeoutError
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
FOLLOWER = "route_follower_node"
RECORDER = "recorder"


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


# -- the nodes and the probe -------------------------------------------------------------------------------
class RouteSession:
    """sim_node + the control encoder as processes, and a probe node that teaches (drives on ground truth),
    places the robot and records what happens. Use as a context manager: every process started is stopped on
    exit, also after an error."""

    def __init__(self, config: RouteDemoConfig, log_dir: Path, say: Callable[[str], None]) -> None:
        self.config = config
        self.nodes = NodeProcesses(log_dir)
        self.say = say
        self._lock = threading.Lock()
        self.truth: list[tuple[float, float, float, float]] = []  # (t, x, y, yaw) on ground_truth/odom
        self.odom: list[tuple[float, float, float, float]] = []  # (t, x, y, yaw) on odom (the drifting one)
        self._latent_stamps: list[int] = []
        self._clock_ns = 0
        self.follower: dict[str, str] = {}  # route_follower_node's newest /diagnostics key-values
        self._follower_stamp_ns = 0
        self.follower_states: list[tuple[float, str]] = []  # (sim time, state) at each change
        # The teacher: (dense path (M, 2), its arc length (M,), progress m) while it drives; None otherwise.
        self._teacher: tuple[np.ndarray, np.ndarray, float] | None = None
        self.teach_end: float | None = None  # sim time the teacher stopped
        self.node: Any = None
        self._executor: Any = None
        self._cmd_pub: Any = None
        self._set_params: Any = None

    # -- start and stop -------------------------------------------------------------------------------------
    def __enter__(self) -> RouteSession:
        import os

        from vae_ros.control.runtime.control_model import control_model_dir
        from vae_ros.ros.kit.run import use_large_data_profile

        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        use_large_data_profile()
        cfg = self.config
        x, y, yaw = route_start()
        try:
            self.nodes.start_node("sim_node", "vae_ros.ros.nodes.sim_node", [
                "-p", f"rate:={float(cfg.rate)}", "-p", f"seed:={cfg.seed}", "-p", "lidar:=scan",
                "-p", f"odom_error:={float(cfg.odom_error)}", "-p", f"initial_pose:=[{x:.6f}, {y:.6f}, {yaw:.6f}]"])
            # As route.launch.py: the encoder of the route's model (the packaged control model, a scan model).
            self.nodes.start_node("control_encoder_node", "vae_ros.ros.nodes.encoder_node", [
                "-p", "modality:=scan", "-p", f"model:={control_model_dir('')}", "-p", f"backend:={cfg.backend}",
                "-p", "use_sim_time:=true"])
            self._start_probe()
            self.wait("the first latent, odometry and ground truth", lambda: bool(
                self._latent_stamps and self.odom and self.truth), cfg.startup_timeout)
            self.wait("sim_node's parameter service", self._set_params.service_is_ready, cfg.startup_timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._cmd_pub is not None and self._teacher is not None:
                self._teacher = None
                self._publish(0.0, 0.0)
            if self._executor is not None:
                self._executor.shutdown()
            if self.node is not None:
                self.node.destroy_node()
        finally:
            self.nodes.stop_all()

    def _start_probe(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from nav_msgs.msg import Odometry
        from rcl_interfaces.srv import SetParameters
        from rclpy.executors import SingleThreadedExecutor
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image

        from vae_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, LATENT_QOS, STATE_QOS

        if not rclpy.ok():
            rclpy.init()
        node = rclpy.create_node("vae_ros_route_demo_probe")
        self.node = node
        node.create_subscription(Clock, interface.CLOCK_TOPIC, self._on_clock, STATE_QOS)
        # Ground truth: the teacher steers on it (it stands in for a human with a joystick, who sees where the
        # robot is) and the demo judges by it. The follower never reads it.
        node.create_subscription(Odometry, interface.GROUND_TRUTH_ODOM_TOPIC, self._on_truth, STATE_QOS)
        node.create_subscription(Odometry, interface.ODOM_TOPIC, self._on_odom, STATE_QOS)
        node.create_subscription(Image, interface.LATENT_STAMPED_TOPIC, self._on_latent, LATENT_QOS)
        node.create_subscription(DiagnosticArray, interface.DIAGNOSTICS_TOPIC, self._on_diagnostics, DIAGNOSTICS_QOS)
        self._cmd_pub = node.create_publisher(Twist, interface.CMD_TOPIC, COMMAND_QOS)
        self._twist = Twist
        self._set_params = node.create_client(SetParameters, "sim_node/set_parameters")
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(node)
        threading.Thread(target=self._executor.spin, daemon=True).start()

    # -- callbacks ------------------------------------------------------------------------------------------
    def _on_clock(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import stamp_ns

        with self._lock:
            self._clock_ns = stamp_ns(msg.clock)

    def _on_truth(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import planar_pose, stamp_ns

        pose = planar_pose(msg.pose.pose)
        with self._lock:
            self.truth.append((stamp_ns(msg.header.stamp) * 1e-9, *pose))
            teacher = self._teacher
        if teacher is None:
            return
        dense, arc, progress = teacher
        progress, command = teacher_step(dense, arc, progress, pose, TEACH_SPEED)
        with self._lock:
            if command is None:
                self._teacher = None
                self.teach_end = stamp_ns(msg.header.stamp) * 1e-9
            else:
                self._teacher = (dense, arc, progress)
        self._publish(*(command or (0.0, 0.0)))

    def _on_odom(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import planar_pose, stamp_ns

        with self._lock:
            self.odom.append((stamp_ns(msg.header.stamp) * 1e-9, *planar_pose(msg.pose.pose)))

    def _on_latent(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import stamp_ns

        with self._lock:
            self._latent_stamps.append(stamp_ns(msg.header.stamp))

    def _on_diagnostics(self, msg: Any) -> None:
        from vae_ros.core.conversions.common import stamp_ns

        for status in msg.status:
            if status.name.endswith(f"{FOLLOWER}: route follower"):
                values = {kv.key: kv.value for kv in status.values}
                with self._lock:
                    self.follower = values
                    self._follower_stamp_ns = stamp_ns(msg.header.stamp)
                    state = values.get("state", "")
                    if not self.follower_states or self.follower_states[-1][1] != state:
                        self.follower_states.append((self._follower_stamp_ns * 1e-9, state))

    def _publish(self, linear: float, angular: float) -> None:
        msg = self._twist()
        msg.linear.x, msg.angular.z = float(linear), float(angular)
        self._cmd_pub.publish(msg)

    # -- waiting and acting ---------------------------------------------------------------------------------
    def wait(self, what: str, condition: Callable[[], object], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.nodes.check_alive()
            if time.monotonic() > deadline:
                raise RosTimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; logs in "
                                      f"{self.nodes.log_dir}")
            time.sleep(0.02)

    @property
    def sim_time(self) -> float:
        with self._lock:
            return self._clock_ns * 1e-9

    def wait_sim(self, what: str, seconds: float) -> None:
        """Until `seconds` of simulated time have passed and a latent stamped after that has arrived."""
        until = int((self.sim_time + seconds) * 1e9)
        self.wait(what, lambda: self._latent_stamps[-1] >= until, seconds * 10 + 20)

    def subscribed(self, node_name: str, topics: tuple[str, ...]) -> bool:
        """Whether the node `node_name` subscribes to every one of `topics` (by the ROS graph)."""
        return all(any(info.node_name == node_name for info in self.node.get_subscriptions_info_by_topic(
            "/" + topic.lstrip("/"))) for topic in topics)

    def drive(self, waypoints: np.ndarray) -> float:
        """The teacher drives the robot along `waypoints` (pure pursuit on ground truth) until it stops at the end;
        the simulated time it stopped."""
        dense, arc = densify(waypoints)
        start = self.sim_time
        with self._lock:
            self.teach_end = None
            self._teacher = (dense, arc, 0.0)
        limit = float(arc[-1]) / TEACH_SPEED * 4 + 30  # simulated seconds (drive_teach's bound)
        self.wait("the teacher to reach the end of the path",
                  lambda: self.teach_end is not None or self.sim_time - start > limit, limit * 5 + 60)
        if self.teach_end is None:
            raise RosError(f"the teacher did not reach the end of the path in {limit:.0f} simulated seconds; logs in "
                           f"{self.nodes.log_dir}")
        return self.teach_end

    def place(self, pose: tuple[float, float, float]) -> None:
        """Put the robot at `pose` (sim_node's initial_pose; its odometry starts again there) and wait for a
        latent from there."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        request = SetParameters.Request()
        request.parameters = [Parameter(name="initial_pose", value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[float(v) for v in pose]))]
        future = self._set_params.call_async(request)
        self.wait("sim_node to place the robot", future.done, 10.0)
        result = future.result()
        if not result.results[0].successful:
            raise RosError(f"sim_node refused the pose {pose}: {result.results[0].reason}")
        self.wait_sim("a latent after placing the robot", 0.3)

    def mark(self) -> tuple[int, int]:
        """Where the ground truth and odometry records stand now (for records())."""
        with self._lock:
            return len(self.truth), len(self.odom)

    def records(self, since: float, mark: tuple[int, int]) -> tuple[tuple[list[Any], list[Any]], tuple[list[Any], list[Any]]]:
        """((ground truth, odometry) from simulated time `since` to `mark`, (both after `mark`)): (t, x, y, yaw)."""
        with self._lock:
            before = ([p for p in self.truth[:mark[0]] if p[0] >= since], [p for p in self.odom[:mark[1]] if p[0] >= since])
            return before, (self.truth[mark[0]:], self.odom[mark[1]:])

    def follower_record(self) -> tuple[dict[str, str], list[tuple[float, str]]]:
        """(the follower's newest /diagnostics values, its states with the simulated time each began)."""
        with self._lock:
            return dict(self.follower), list(self.follower_states)

    def follower_state(self, since: float) -> str:
        """The follower's state in diagnostics stamped after `since` (sim time), '' before any."""
        with self._lock:
            return self.follower.get("state", "") if self._follower_stamp_ns * 1e-9 > since else ""


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
    say(f"starting sim_node (world seed {config.seed}, odom_error {config.odom_error:g}) and the control encoder")
    with RouteSession(config, out / "logs", say) as session:
        # 1. Teach: record latents and odometry while the teacher drives.
        say(f"nodes up after {time.monotonic() - wall:.1f} s; recording {interface.LATENT_STAMPED_TOPIC} and "
            f"{interface.ODOM_TOPIC} (vae-ros record) while the teacher drives {_length(waypoints):.1f} m with a turn")
        recorder = session.nodes.start(RECORDER, "vae_ros.apps.cli", [
            "record", "--out", str(bag), interface.LATENT_STAMPED_TOPIC, interface.ODOM_TOPIC, "--use-sim-time",
            "--quiet"])
        session.wait("vae-ros record to subscribe", lambda: session.subscribed(
            f"vae_ros_record_{recorder.pid}", (interface.LATENT_STAMPED_TOPIC, interface.ODOM_TOPIC)),
            config.startup_timeout)
        session.wait_sim("the recording to begin with the robot standing", SETTLE_S)
        teach_start = session.sim_time
        teach_end = session.drive(waypoints)
        session.wait_sim("the robot to stop at the end of the path", SETTLE_S)
        code = session.nodes.stop(RECORDER)
        if code != 0:
            raise RosError(f"vae-ros record exited with code {code}; see {out / 'logs' / RECORDER}.log")
        say(f"taught by driving: {teach_end - teach_start:.1f} s simulated; teaching the route from the bag "
            "(vae-ros teach)")
        # 2. The route, from the bag, by `vae-ros teach` itself.
        _teach(bag, route_dir, config.progress)
        route = load_route(route_dir)
        # 3. Repeat from a displaced start.
        truth_start = _pose_at(session.truth, route.stamps_ns[0] * 1e-9)
        start = offset_pose(truth_start, START_OFFSET)
        say(f"placing the robot at {_fmt_pose(start)}, {math.hypot(*START_OFFSET[:2]):.2f} m beside the route's start "
            f"and turned {math.degrees(START_OFFSET[2]):.0f} deg; {FOLLOWER} repeats the route")
        session.place(start)
        mark = session.mark()
        repeat_start = session.sim_time
        session.nodes.start_node(FOLLOWER, f"vae_ros.ros.nodes.{FOLLOWER}", [
            "-p", f"route:={route_dir}", "-p", "use_sim_time:=true", "-p", "diagnostics_period:=0.2"])
        session.wait(f"{FOLLOWER}'s diagnostics", lambda: bool(session.follower_state(repeat_start)),
                     config.startup_timeout)
        follow_start = session.sim_time
        said = [""]

        def finished() -> bool:
            state = session.follower_state(follow_start)
            if state and state != said[0]:
                said[0] = state
                say(f"  {session.sim_time - follow_start:5.1f} s  {FOLLOWER}: {state}")
            return state == "done" or session.sim_time - follow_start > config.timeout

        session.wait(f"{FOLLOWER} to finish the route", finished, config.timeout * 5 + 60)
        status = "done" if session.follower_state(follow_start) == "done" else "timeout"
        repeat_end = session.sim_time
        session.wait_sim("the robot to stop after the repeat", SETTLE_S)
        # From the start: the bag's first latents may be older than teach_start (the robot stood still then).
        (teach_truth, teach_odom), (repeat_truth, repeat_odom) = session.records(0.0, mark)
        follower, states = session.follower_record()
    summary = _judge(config, route, teach_truth, teach_odom, repeat_truth, repeat_odom, start, status,
                     repeat_end - follow_start, follower, states, world_objects)
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
