"""latent_servo_node over real ROS 2, asserting what arrives on the topics.

Two sets of processes, started together once for the module (start-up dominates the run time):
- closed loop (root namespace): sim_node (world seed 0, LaserScan, no camera) + encoder_node (scan,
  models/control_default) + latent_servo_node, all on the simulator's clock. A goal taught with
  servo/set_goal is reached again from a start 0.5 m / 20 deg away, judged by the simulator's odometry.
- alone (/lone): a latent_servo_node on the wall clock fed by this test with stamped latents of the same
  control model (computed here from the simulator's scans at two poses), so stamps, bad messages and
  goal latents are under the test's control: stale input, rejected latents, parameters, shutdown. Beside
  each latent it gets a LaserScan stamped alike (free, or a wall the test puts in front of the robot) for the
  scan safety layer.
  Goal images: the /lone servo also gets camera frames stamped like the latents, remembers them (view
  memory) and takes a goal image's latent from the frame it matches.
Plus two start-up failures (an unreadable goal_image, a negative max_linear).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest
from node_helpers import Probe, node_env, param_args, scan_msg, start_node, stop_node

from vae_ros.control.evaluation.episodes import SUCCESS_POSITION_M, SUCCESS_YAW_RAD, pose_error
from vae_ros.core.conversions.common import planar_pose
from vae_ros.core.conversions.latent import latent_to_msg, latent_to_stamped_msg

pytestmark = pytest.mark.ros

LONE = "/lone"
SILENT = "/silent"  # a servo whose only latent publisher (this test's) never publishes
SERVO_STATUS = "/latent_servo_node: latent servo"
LONE_STATUS = f"{LONE}/latent_servo_node: latent servo"
GOAL_POSE = (0.0, 0.0, 0.0)  # sim_node's initial pose: the goal is taught where the robot starts
# In-process, vae_ros.control.evaluation.episodes.run_episode converges from here in 4 s (0.9 cm, 0.8 deg).
START_POSE = (-0.5, 0.0, math.radians(20.0))
STALE_TIMEOUT = 0.5
STARTUP_S = 180.0  # six processes start together; a loaded machine took more than 90 s once
# Servos that must refuse to start: (namespace = name) -> parameters.
BAD_START = {"goal_image": {"goal_image": "/some/file.png"}, "negative_max_linear": {"max_linear": -1.0}}
THIRD_POSE = (1.0, -0.8, math.radians(120.0))  # a view the /lone servo is shown only later


def _control_latents() -> tuple[np.ndarray, np.ndarray, int]:
    """Latents of the packaged control model at GOAL_POSE and START_POSE in world seed 0, and D."""
    from vae_ros.control.runtime.control_model import ControlModel, control_model_dir
    from vae_ros.sim.world import SimConfig, SimWorld

    model = ControlModel(control_model_dir(""), "auto", "cpu")
    with SimWorld(SimConfig(seed=0, image_width=16, image_height=16)) as world:
        geo = world.scan_geometry
        scans = []
        for pose in (GOAL_POSE, START_POSE):
            world.set_pose(*pose)
            scans.append(world.scan())
    z = model.scan_latents(np.stack(scans), geo.angle_min, geo.angle_increment, geo.range_min, geo.range_max)
    return z[0].astype(np.float32), z[1].astype(np.float32), model.latent_dim


def _start_closed_loop_servo() -> subprocess.Popen[str]:
    return start_node("latent_servo_node", *param_args(use_sim_time=True, diagnostics_period=0.2,
                                                       stale_timeout=STALE_TIMEOUT))


@pytest.fixture(scope="module")
def procs() -> Any:
    from vae_ros.control.runtime.control_model import control_model_dir

    model = str(control_model_dir(""))
    started: dict[str, subprocess.Popen[str]] = {}
    try:
        started["sim"] = start_node("sim_node", *param_args(seed=0, lidar="scan", publish_camera=False, rate=10.0))
        started["encoder"] = start_node("encoder_node", *param_args(
            modality="scan", model=model, use_sim_time=True, publish_anomaly_score=False))
        started["servo"] = _start_closed_loop_servo()
        started["lone"] = start_node("latent_servo_node", "-r", f"__ns:={LONE}", *param_args(
            diagnostics_period=0.2, stale_timeout=STALE_TIMEOUT))
        started["silent"] = start_node("latent_servo_node", "-r", f"__ns:={SILENT}", *param_args(diagnostics_period=0.5))
        for name, params in BAD_START.items():  # they end on their own; started now to overlap the waits
            started[name] = subprocess.Popen(
                [sys.executable, "-m", "vae_ros.ros.nodes.latent_servo_node", "--ros-args", "-r", f"__ns:=/{name}",
                 *param_args(**params)], env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        yield started
    finally:
        for name, proc in reversed(started.items()):  # the servos before their inputs
            if name in BAD_START:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
                continue
            output = stop_node(proc)
            if proc.returncode not in (0, -2):
                print(f"--- {name} exited {proc.returncode}:\n{output}")


class ServoProbe(Probe):
    """Probe with the servo's topics recorded and a 10 Hz stamped-latent feed for the /lone servo."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from nav_msgs.msg import Odometry
        from rcl_interfaces.srv import SetParameters
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float32, Float32MultiArray
        from std_srvs.srv import Trigger

        from vae_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, LATENT_QOS

        super().__init__("latent_servo_test_probe")
        for ns in ("", LONE):
            self.record(Twist, f"{ns}/cmd_vel", COMMAND_QOS)
            self.record(Float32, f"{ns}/servo/error", LATENT_QOS)
        self.record(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.record(Odometry, "/odom", 10)
        self.record(Image, "/vae/latent_stamped", LATENT_QOS)
        self.record(Clock, "/clock", 10)
        self.set_goal = self.node.create_client(Trigger, "/servo/set_goal")
        self.lone_clear_goal = self.node.create_client(Trigger, f"{LONE}/servo/clear_goal")
        self.sim_params = self.node.create_client(SetParameters, "/sim_node/set_parameters")
        self.lone_params = self.node.create_client(SetParameters, f"{LONE}/latent_servo_node/set_parameters")
        self.latent_pub = self.node.create_publisher(Image, f"{LONE}/vae/latent_stamped", LATENT_QOS)
        self.silent_pub = self.node.create_publisher(Image, f"{SILENT}/vae/latent_stamped", LATENT_QOS)
        self.goal_pub = self.node.create_publisher(Float32MultiArray, f"{LONE}/servo/goal_latent", LATENT_QOS)
        from vae_ros.ros.qos import SENSOR_QOS

        self.camera_pub = self.node.create_publisher(Image, f"{LONE}/camera/image_raw", SENSOR_QOS)
        from sensor_msgs.msg import LaserScan

        self.scan_pub = self.node.create_publisher(LaserScan, f"{LONE}/scan", SENSOR_QOS)
        # The scan sent before each fed latent: ("free" | a wall this many m ahead | None: none sent)
        self.scan: str | float | None = "free"
        self.goal_image_pub = self.node.create_publisher(Image, f"{LONE}/servo/goal_image", LATENT_QOS)
        self.feed: tuple[np.ndarray, float] | None = None  # (latent, age of its stamp in s) sent at 10 Hz
        self.frame: np.ndarray | None = None  # a camera frame sent before each fed latent, with its stamp
        self.sent = 0  # stamped latents published to the /lone servo, fed or not
        self.node.create_timer(0.1, self._on_feed)

    def _on_feed(self) -> None:
        with self.lock:
            feed = self.feed
        if feed is None:
            return
        z, age = feed
        header = self.header("lidar_link", -int(age * 1e9))
        with self.lock:
            scan = self.scan
        if scan is not None:
            self.scan_pub.publish(scan_msg(header, None if scan == "free" else float(scan)))
        if self.frame is not None:
            from vae_ros.ros.sim_messages import image_msg

            self.camera_pub.publish(image_msg(self.frame, header.stamp))
        self.publish_latent(latent_to_stamped_msg(z, None, header))

    def publish_latent(self, msg: Any) -> None:
        self.latent_pub.publish(msg)
        with self.lock:
            self.sent += 1

    def set_feed(self, z: np.ndarray | None, age: float = 0.0, frame: np.ndarray | None = None) -> None:
        with self.lock:
            self.feed = None if z is None else (z, age)
            self.frame = frame

    def set_scan(self, scan: str | float | None) -> None:
        with self.lock:
            self.scan = scan

    def call(self, client: Any, request: Any, timeout: float = 20.0) -> Any:
        assert self.wait_for(client.service_is_ready, timeout), f"{client.srv_name} not available"
        future = client.call_async(request)
        assert self.wait_for(future.done, timeout), f"{client.srv_name} did not answer"
        return future.result()

    def set_parameter(self, client: Any, name: str, value: Any) -> Any:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.call(client, request).results[0]

    def statuses(self, name: str) -> list[tuple[int, dict[str, str]]]:
        """(stamp ns, values) of every /diagnostics status called `name`, in arrival order."""
        return [(found.stamp_ns, found.values) for found in self.diagnostics(name)]

    def latest(self, name: str) -> dict[str, str]:
        found = self.statuses(name)
        return found[-1][1] if found else {}

    def sim_time(self) -> float:
        clocks = self.messages("/clock")
        return clocks[-1].clock.sec + clocks[-1].clock.nanosec * 1e-9 if clocks else 0.0

    def pose(self) -> tuple[float, float, float, float]:
        """(stamp s, x, y, yaw) of the newest odometry."""
        msg = self.messages("/odom")[-1]
        return (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, *planar_pose(msg.pose.pose))


@pytest.fixture(scope="module")
def probe(procs: Any) -> Any:
    probe = ServoProbe()
    yield probe
    probe.set_feed(None)
    probe.close()


@pytest.fixture(scope="module")
def latents() -> tuple[np.ndarray, np.ndarray, int]:
    return _control_latents()


def _alive(procs: Any, *names: str) -> None:
    for name in names:
        assert procs[name].poll() is None, f"{name} exited:\n{stop_node(procs[name])}"


def _wait(probe: ServoProbe, procs: Any, names: tuple[str, ...], condition: Any, what: str,
          timeout: float = 20.0) -> None:
    def check() -> bool:
        _alive(procs, *names)
        return bool(condition())

    assert probe.wait_for(check, timeout), f"timed out waiting for {what}; {_seen(probe)}"


def _seen(probe: ServoProbe) -> str:
    """What has arrived so far, for a failure message: messages per topic, the servos' latest diagnostics."""
    counts = ", ".join(f"{topic} {len(probe.messages(topic))}" for topic in probe.recorded)
    return f"received: {counts}; {SERVO_STATUS}: {probe.latest(SERVO_STATUS)}; {LONE_STATUS}: {probe.latest(LONE_STATUS)}"


def _moving(msg: Any) -> bool:
    return msg.linear.x != 0.0 or msg.angular.z != 0.0


def _is_zero(msg: Any) -> bool:
    return (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z) == (0.0,) * 6


def _rejected(probe: ServoProbe, name: str) -> int:
    values = probe.latest(name)
    return int(values["rejected"]) if "rejected" in values else -1


def _received(probe: ServoProbe, name: str) -> int:
    values = probe.latest(name)
    return int(values["received"]) if "received" in values else -1


# -- the closed loop --------------------------------------------------------------------------------------
CLOSED_LOOP = ("sim", "encoder", "servo")
# The encoder's latents have reached this probe this many times while the servo, up and publishing its
# diagnostics, has counted none: the DDS link from the encoder to the servo is silent (see closed_loop).
SILENT_LINK_LATENTS = 300


@pytest.fixture(scope="module")
def closed_loop(probe: ServoProbe, procs: Any) -> None:
    """The closed loop running: odometry here, and the encoder's latents counted by the servo.

    Once in CI (a machine loaded to half speed), the servo got the simulator's /clock but not one of the
    encoder's latents in six minutes, while this probe got them all: a Fast DDS link that stayed silent,
    most likely a shared-memory port recreated under a CPU-starved listener (config/fastdds_large_data.xml).
    The servo is then restarted once, with a note in the output; a second silent start fails the tests.
    """

    def silent_link() -> bool:
        return (len(probe.messages("/vae/latent_stamped")) >= SILENT_LINK_LATENTS
                and _received(probe, SERVO_STATUS) == 0)

    ready = lambda: bool(probe.messages("/odom")) and _received(probe, SERVO_STATUS) > 0  # noqa: E731
    _wait(probe, procs, CLOSED_LOOP, lambda: ready() or silent_link(), "odometry, and latents at the servo",
          STARTUP_S)
    if not ready():
        print(f"closed loop: the servo counted no latent while {len(probe.messages('/vae/latent_stamped'))} "
              f"reached this probe; restarting it once. {_seen(probe)}")
        print(stop_node(procs["servo"]))
        probe.clear("/diagnostics")
        procs["servo"] = _start_closed_loop_servo()
        _wait(probe, procs, CLOSED_LOOP, ready, "odometry, and latents at the restarted servo", STARTUP_S)


def test_without_a_goal_the_command_is_zero(probe: ServoProbe, procs: Any, closed_loop: None) -> None:
    # Latents reach the servo (counted in its diagnostics) and each is answered with a zero command.
    _wait(probe, procs, CLOSED_LOOP, lambda: _received(probe, SERVO_STATUS) >= 5, "latents at the servo")
    _wait(probe, procs, CLOSED_LOOP, lambda: len(probe.messages("/cmd_vel")) >= 5, "the servo's commands")
    assert all(_is_zero(m) for m in probe.messages("/cmd_vel"))
    assert probe.latest(SERVO_STATUS)["state"] == "idle"
    assert probe.latest(SERVO_STATUS)["goal_source"] == "none"


def test_closed_loop_reaches_the_taught_goal(probe: ServoProbe, procs: Any, closed_loop: None) -> None:
    from std_srvs.srv import Trigger

    _, *at = probe.pose()
    assert pose_error(tuple(at), GOAL_POSE)[0] < 0.01  # sim_node starts at the goal
    response = probe.call(probe.set_goal, Trigger.Request())
    assert response.success, response.message
    _wait(probe, procs, CLOSED_LOOP, lambda: probe.latest(SERVO_STATUS).get("state") == "converged",
          "convergence at the taught goal")

    placed_at = probe.sim_time()
    result = probe.set_parameter(probe.sim_params, "initial_pose", [float(v) for v in START_POSE])
    assert result.successful, result.reason
    errors_before = len(probe.messages("/servo/error"))

    def servoing_then_converged() -> bool:
        states = [v["state"] for stamp, v in probe.statuses(SERVO_STATUS) if stamp > placed_at * 1e9]
        return "servoing" in states and "converged" in states[states.index("servoing"):]

    _wait(probe, procs, CLOSED_LOOP, servoing_then_converged, "servoing, then converged again", 60.0)
    converged_at = probe.sim_time()
    _wait(probe, procs, CLOSED_LOOP, lambda: probe.pose()[0] > converged_at + 0.5, "the robot to come to rest")
    _, *final = probe.pose()
    position_error, yaw_error = pose_error(tuple(final), GOAL_POSE)
    assert position_error <= SUCCESS_POSITION_M, final
    assert yaw_error <= SUCCESS_YAW_RAD, final

    # The latent error jumped at the placement and came down to under the tolerance.
    errors = [m.data for m in probe.messages("/servo/error")[errors_before:]]
    tolerance = float(probe.latest(SERVO_STATUS)["tolerance"])
    jump = next(i for i, e in enumerate(errors) if e > 5 * tolerance)
    run = errors[jump:]
    assert len(run) >= 10, run
    assert run[-1] < tolerance < run[0]
    thirds = len(run) // 3
    assert np.mean(run[:thirds]) > np.mean(run[thirds:2 * thirds]) > np.mean(run[2 * thirds:]), run
    # The robot is held still once there: the servo's commands are zero.
    assert _is_zero(probe.messages("/cmd_vel")[-1])
    # /diagnostics said which phase of the law drove: it approached from 0.5 m away.
    phases = {v["phase"] for stamp, v in probe.statuses(SERVO_STATUS) if stamp > placed_at * 1e9}
    assert "approaching" in phases and phases <= {"approaching", "aligning yaw", "backing off"}, phases


# -- the servo alone, fed by the test ---------------------------------------------------------------------
LONE_ONLY = ("lone",)


def _drive(probe: ServoProbe, procs: Any, latents: Any) -> None:
    """Feed the start latent, send the goal latent, and wait until the /lone servo commands motion."""
    z_goal, z_start, _ = latents
    probe.set_feed(z_start)
    _wait(probe, procs, LONE_ONLY, lambda: probe.goal_pub.get_subscription_count() > 0
          and _received(probe, LONE_STATUS) > 0, "the /lone servo to take latents and goals", STARTUP_S)
    probe.clear(f"{LONE}/cmd_vel")
    probe.goal_pub.publish(latent_to_msg(z_goal))
    _wait(probe, procs, LONE_ONLY, lambda: any(_moving(m) for m in probe.messages(f"{LONE}/cmd_vel")[-3:]),
          "the /lone servo to command motion", STARTUP_S)


def test_goal_latent_topic_drives_and_a_wrong_size_goal_is_rejected(probe: ServoProbe, procs: Any,
                                                                     latents: Any) -> None:
    z_goal, z_start, dim = latents
    probe.set_feed(z_start)
    _wait(probe, procs, LONE_ONLY, lambda: _received(probe, LONE_STATUS) >= 3, "latents at the /lone servo",
          STARTUP_S)
    _wait(probe, procs, LONE_ONLY, lambda: len(probe.messages(f"{LONE}/cmd_vel")) >= 3, "its commands")
    assert all(_is_zero(m) for m in probe.messages(f"{LONE}/cmd_vel"))  # latents, but no goal yet
    assert probe.latest(LONE_STATUS)["state"] == "idle"

    _drive(probe, procs, latents)
    _wait(probe, procs, LONE_ONLY, lambda: probe.latest(LONE_STATUS).get("goal_source") == "servo/goal_latent"
          and probe.latest(LONE_STATUS).get("state") == "servoing"
          and probe.latest(LONE_STATUS).get("latent_error") != "none",  # "none" until a latent meets the goal
          "state servoing from servo/goal_latent")
    assert float(probe.latest(LONE_STATUS)["latent_error"]) == pytest.approx(
        float(np.linalg.norm(z_start - z_goal)), rel=1e-3)
    errors = probe.messages(f"{LONE}/servo/error")
    assert errors and errors[-1].data == pytest.approx(float(np.linalg.norm(z_start - z_goal)), rel=1e-3)

    before = _rejected(probe, LONE_STATUS)
    probe.goal_pub.publish(latent_to_msg(np.zeros(dim + 2, np.float32)))
    _wait(probe, procs, LONE_ONLY, lambda: _rejected(probe, LONE_STATUS) == before + 1,
          "the wrong-size goal latent to be counted as rejected")
    # Still running on the old goal.
    probe.clear(f"{LONE}/cmd_vel")
    _wait(probe, procs, LONE_ONLY, lambda: any(_moving(m) for m in probe.messages(f"{LONE}/cmd_vel")),
          "commands toward the old goal")
    assert probe.latest(LONE_STATUS)["goal_source"] == "servo/goal_latent"

    # clear_goal: idle again, and only zero commands from then on.
    from std_srvs.srv import Trigger

    assert probe.call(probe.lone_clear_goal, Trigger.Request()).success
    _wait(probe, procs, LONE_ONLY, lambda: probe.latest(LONE_STATUS).get("state") == "idle", "state idle")
    probe.clear(f"{LONE}/cmd_vel")
    _wait(probe, procs, LONE_ONLY, lambda: len(probe.messages(f"{LONE}/cmd_vel")) >= 3, "commands after clearing")
    assert all(_is_zero(m) for m in probe.messages(f"{LONE}/cmd_vel"))


def _views() -> dict[tuple[float, float, float], tuple[np.ndarray, np.ndarray]]:
    """Camera frame (64 x 64 RGB) and control latent at GOAL_POSE, START_POSE and THIRD_POSE in world seed 0."""
    from vae_ros.control.runtime.control_model import ControlModel, control_model_dir
    from vae_ros.sim.world import SimConfig, SimWorld

    model = ControlModel(control_model_dir(""), "auto", "cpu")
    out = {}
    with SimWorld(SimConfig(seed=0, image_width=64, image_height=64)) as world:
        geo = world.scan_geometry
        for pose in (GOAL_POSE, START_POSE, THIRD_POSE):
            world.set_pose(*pose)
            z = model.scan_latents(world.scan()[None], geo.angle_min, geo.angle_increment, geo.range_min,
                                   geo.range_max)[0]
            out[pose] = (world.render(), z.astype(np.float32))
    return out


def test_goal_image_selects_the_remembered_view_or_waits_for_it(probe: ServoProbe, procs: Any) -> None:
    from vae_ros.ros.sim_messages import image_msg

    views = _views()
    goal_frame, z_goal = views[GOAL_POSE]
    start_frame, z_start = views[START_POSE]
    third_frame, z_third = views[THIRD_POSE]
    # The servo sees the goal place first (frames paired with latents by stamp), then the start.
    probe.set_feed(z_goal, frame=goal_frame)
    _wait(probe, procs, LONE_ONLY, lambda: int(probe.latest(LONE_STATUS).get("remembered_views", "0")) >= 3,
          "the /lone servo to remember camera views", STARTUP_S)
    probe.set_feed(z_start, frame=start_frame)
    _wait(probe, procs, LONE_ONLY, lambda: probe.goal_image_pub.get_subscription_count() > 0, "servo/goal_image")
    stamp = probe.header("lidar_link").stamp

    # A goal image of a place it has seen: the latent seen with that frame is the goal.
    probe.goal_image_pub.publish(image_msg(goal_frame, stamp))
    _wait(probe, procs, LONE_ONLY, lambda: probe.latest(LONE_STATUS).get("goal_image", "").startswith("matched")
          and probe.latest(LONE_STATUS).get("state") == "servoing", "the goal image to match a remembered view")
    status = probe.latest(LONE_STATUS)
    assert "remembered view" in status["goal_source"], status
    assert float(status["latent_error"]) == pytest.approx(float(np.linalg.norm(z_start - z_goal)), rel=1e-3)

    # One of a place it has not seen: stopped, waiting ...
    probe.goal_image_pub.publish(image_msg(third_frame, stamp))
    _wait(probe, procs, LONE_ONLY, lambda: probe.latest(LONE_STATUS).get("goal_image", "").startswith("waiting"),
          "the unseen goal image to wait")
    assert probe.latest(LONE_STATUS)["state"] == "idle"
    probe.clear(f"{LONE}/cmd_vel")
    _wait(probe, procs, LONE_ONLY, lambda: len(probe.messages(f"{LONE}/cmd_vel")) >= 3, "commands while waiting")
    assert all(_is_zero(m) for m in probe.messages(f"{LONE}/cmd_vel"))
    # ... until the robot sees that place: its latent becomes the goal.
    probe.set_feed(z_third, frame=third_frame)
    _wait(probe, procs, LONE_ONLY, lambda: probe.latest(LONE_STATUS).get("goal_image", "").startswith("matched"),
          "the waiting goal image to match once the place is seen")
    probe.set_feed(z_start, frame=start_frame)
    _wait(probe, procs, LONE_ONLY, lambda: probe.latest(LONE_STATUS).get("state") == "servoing"
          and float(probe.latest(LONE_STATUS)["latent_error"]) == pytest.approx(
              float(np.linalg.norm(z_start - z_third)), rel=1e-3), "servoing toward the third place")

    from std_srvs.srv import Trigger

    assert probe.call(probe.lone_clear_goal, Trigger.Request()).success
    _wait(probe, procs, LONE_ONLY, lambda: probe.latest(LONE_STATUS).get("state") == "idle", "state idle")
    probe.set_feed(None)


@pytest.mark.parametrize("bad", ["width", "encoding"])
def test_bad_stamped_latent_is_rejected_and_stops_the_robot(probe: ServoProbe, procs: Any, latents: Any,
                                                            bad: str) -> None:
    z_goal, z_start, dim = latents
    # A long stale_timeout, so that only the rejection can be what stops the robot here.
    assert probe.set_parameter(probe.lone_params, "stale_timeout", 10.0).successful  # the longest allowed
    try:
        _drive(probe, procs, latents)
        before = _rejected(probe, LONE_STATUS)
        probe.set_feed(None)
        # Every latent sent so far has reached the servo (its diagnostics count them), so none is in flight.
        _wait(probe, procs, LONE_ONLY, lambda: _received(probe, LONE_STATUS) >= probe.sent,
              "the fed latents to reach the /lone servo")
        msg = latent_to_stamped_msg(np.concatenate([z_start, [0.5]]).astype(np.float32) if bad == "width"
                                    else z_start, None, probe.header("lidar_link"))
        if bad == "encoding":
            msg.encoding = "mono8"
        probe.publish_latent(msg)
        _wait(probe, procs, LONE_ONLY, lambda: _rejected(probe, LONE_STATUS) == before + 1,
              "the bad latent to be counted as rejected")
        # The servo was driving, the goal stays and stale_timeout is 10 s: only the rejection can stop it.
        _wait(probe, procs, LONE_ONLY, lambda: _is_zero(probe.messages(f"{LONE}/cmd_vel")[-1]),
              "a zero command after the bad latent", 5.0)
        # The node goes on: good latents drive again.
        _drive(probe, procs, latents)
    finally:
        probe.set_feed(None)
        assert probe.set_parameter(probe.lone_params, "stale_timeout", STALE_TIMEOUT).successful


def test_stale_latents_give_exactly_zero_velocity(probe: ServoProbe, procs: Any, latents: Any) -> None:
    z_goal, z_start, _ = latents
    _drive(probe, procs, latents)
    probe.set_feed(None)
    stopped_feed = time.monotonic()
    topic = f"{LONE}/cmd_vel"
    _wait(probe, procs, LONE_ONLY, lambda: probe.messages(topic) and _is_zero(probe.messages(topic)[-1]),
          "a zero command after the latents stopped", 5.0)
    assert time.monotonic() - stopped_feed < STALE_TIMEOUT + 1.0
    _wait(probe, procs, LONE_ONLY, lambda: probe.latest(LONE_STATUS).get("state") == "stale", "state stale")

    # Latents that keep coming but are old (stamped 2 s ago) are no basis for a command either.
    probe.clear(topic)
    with probe.lock:
        sent_before = probe.sent
    probe.set_feed(z_start, age=4 * STALE_TIMEOUT)
    _wait(probe, procs, LONE_ONLY, lambda: probe.sent >= sent_before + 10 and len(probe.messages(topic)) >= 10,
          "old latents and the servo's answers")
    assert all(_is_zero(m) for m in probe.messages(topic))
    assert probe.latest(LONE_STATUS)["state"] == "stale"
    # Fresh ones again: it drives again.
    probe.set_feed(z_start)
    probe.clear(topic)
    _wait(probe, procs, LONE_ONLY, lambda: any(_moving(m) for m in probe.messages(topic)), "driving again")
    probe.set_feed(None)


def test_a_wall_in_the_scan_stops_the_robot_and_so_does_a_scan_that_stops(probe: ServoProbe, procs: Any,
                                                                          latents: Any) -> None:
    # The goal 0.5 m ahead (START_POSE -> GOAL_POSE): the servo drives forwards on the free scan. A wall 0.25 m
    # ahead (inside robot radius 0.2 + safety_margin 0.2): linear 0, `blocked` says stopped. A free scan: it
    # drives again. No scan while the latents go on: zero, and `blocked` says why.
    topic = f"{LONE}/cmd_vel"

    def blocked() -> str:
        return probe.latest(LONE_STATUS).get("blocked", "")

    try:
        _drive(probe, procs, latents)
        _wait(probe, procs, LONE_ONLY, lambda: any(m.linear.x > 0.0 for m in probe.messages(topic)[-3:]),
              "the /lone servo to drive forwards")
        _wait(probe, procs, LONE_ONLY, lambda: blocked() == "no", "blocked: no")
        probe.set_scan(0.25)
        _wait(probe, procs, LONE_ONLY, lambda: blocked().startswith("stopped: "), "blocked: stopped")
        assert blocked() == "stopped: 0.00 m free ahead"
        probe.clear(topic)
        _wait(probe, procs, LONE_ONLY, lambda: len(probe.messages(topic)) >= 5, "commands facing the wall")
        assert all(m.linear.x == 0.0 for m in probe.messages(topic))
        assert probe.latest(LONE_STATUS)["state"] == "servoing"  # the goal stands; only the layer holds it

        probe.set_scan("free")
        probe.clear(topic)
        _wait(probe, procs, LONE_ONLY, lambda: any(m.linear.x > 0.0 for m in probe.messages(topic)),
              "driving forwards again on a free scan")

        probe.set_scan(None)  # the LiDAR goes quiet, the latents go on
        _wait(probe, procs, LONE_ONLY, lambda: "scan" in blocked() and blocked().startswith("stopped: "),
              "blocked: stopped for want of a scan")
        probe.clear(topic)
        _wait(probe, procs, LONE_ONLY, lambda: len(probe.messages(topic)) >= 5, "commands without a scan")
        assert all(_is_zero(m) for m in probe.messages(topic))
        assert probe.latest(LONE_STATUS)["state"] == "servoing"
    finally:
        probe.set_scan("free")
        probe.set_feed(None)


def test_invalid_parameters_are_refused_at_runtime_with_a_reason(probe: ServoProbe, procs: Any) -> None:
    result = probe.set_parameter(probe.lone_params, "max_linear", -0.2)
    assert not result.successful and "max_linear" in result.reason, result.reason
    result = probe.set_parameter(probe.lone_params, "stale_timeout", 0.0)
    assert not result.successful and "stale_timeout" in result.reason, result.reason
    # The scan safety layer cannot be switched off (or loosened) while the robot runs.
    for name, value in (("scan_safety", False), ("safety_margin", 0.0), ("scan_timeout", 5.0)):
        result = probe.set_parameter(probe.lone_params, name, value)
        assert not result.successful, name
    assert probe.set_parameter(probe.lone_params, "max_linear", 0.25).successful
    _alive(procs, "lone")


def test_sigint_while_driving_leaves_a_zero_command_last(probe: ServoProbe, procs: Any, latents: Any) -> None:
    _drive(probe, procs, latents)
    topic = f"{LONE}/cmd_vel"
    assert _moving(probe.messages(topic)[-1]) or _moving(probe.messages(topic)[-2])
    procs["lone"].send_signal(2)
    procs["lone"].wait(15.0)
    probe.set_feed(None)
    assert procs["lone"].returncode == 0
    # The final zero was published before the process exited; allow it the time to arrive.
    assert probe.wait_for(lambda: _is_zero(probe.messages(topic)[-1]), 5.0), probe.messages(topic)[-3:]


def test_a_link_that_delivers_nothing_is_named(probe: ServoProbe, procs: Any) -> None:
    """Publishers in the graph, no latent for SILENT_LINK_S: the count is in /diagnostics, and the log says
    once what to check (the servo alone would only ever report stale input)."""
    from vae_ros.ros.nodes.control_base import SILENT_LINK_S

    status = f"{SILENT}/latent_servo_node: latent servo"
    _wait(probe, procs, ("silent",), lambda: probe.latest(status).get("latent_publishers") == "1",
          "the /silent servo to count this test's publisher", STARTUP_S)
    assert probe.latest(status)["received"] == "0"
    assert probe.latest(LONE_STATUS)["latent_publishers"] == "1"  # the feed's publisher, as the servo sees it
    # The node counts from its construction, before its first diagnostics (stamped by its wall clock), and
    # asks the graph once a second: wait what is left of that, with a margin.
    first_stamp_s = probe.statuses(status)[0][0] * 1e-9
    left = first_stamp_s + SILENT_LINK_S + 3.0 - time.time()
    if left > 0:
        probe.wait_for(lambda: False, left)
    output = stop_node(procs["silent"])
    said = [line for line in output.splitlines() if "no latent arrived" in line]
    assert len(said) == 1, output  # once, not every watchdog tick
    assert f"{SILENT}/vae/latent_stamped" in said[0] and "ros2 topic hz" in said[0]


# -- start-up failures ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [("goal_image", "goal_image"), ("negative_max_linear", "max_linear")])
def test_bad_start_up_parameters_exit_with_one_line(procs: Any, name: str, expected: str) -> None:
    proc = procs[name]
    _, stderr = proc.communicate(timeout=STARTUP_S)
    assert proc.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("latent_servo_node: error:")]
    assert len(errors) == 1, stderr
    assert expected in errors[0], errors[0]
    assert "Traceback" not in stderr
