"""A goal given as an image alone, aligned with the live view in latent_servo_node (vae_ros.ros.nodes.goal_align)
over real ROS 2: a fused controller stops while it aligns the goal image with its camera frame through the scan
paired with it (looking around: it turns in place to either side, a view at each heading), then servos on the
aligned latent; a clear_goal during the search leaves it stopped with no goal.

The robot is played by this process: the camera frame, the LaserScan and the fused latent of a start pose in the
held-out world 7919, rendered here by the simulator's core (the views of the start and of the goal overlap), all
stamped alike at 10 Hz. The test reads the ground truth (the goal's own fused latent); the node never does.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from node_helpers import (
    Probe,
    fused_model_dir,
    header,
    param_args,
    recording_probe,
    send_until,
    start_node,
    stop_node,
)

from vae_ros.core.fused import FusedModel, fuse

pytestmark = pytest.mark.ros

NS = "/goal_align"
NODE = "latent_servo_node"
STATUS = f"{NS}/{NODE}: latent servo"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """World 7919: the goal photo; from a start 0.45 m behind the goal, 0.2 m aside and turned 15 deg, the camera
    frame, the scan (as a LaserScan) and the fused latent of both; the fused latent of both sensors at the goal."""
    from vae_ros.core.preprocess import preprocess_image, preprocess_scan
    from vae_ros.resources import models_dir
    from vae_ros.ros.sim_messages import scan_msg
    from vae_ros.sim.world import SimConfig, SimWorld

    fused_dir = fused_model_dir(tmp_path_factory.mktemp("fused"))
    if fused_dir != models_dir() / "fused_default":
        pytest.skip("needs models/fused_default (its camera expert is trained onto the control latent space)")
    fused = FusedModel(fused_dir, "onnxruntime", threads=1)
    image_spec, scan_spec = fused.configs["camera"].image_spec, fused.configs["scan"].scan_spec
    goal = (0.3, -0.2, 0.4)
    c, s = math.cos(goal[2]), math.sin(goal[2])
    start = (goal[0] - 0.45 * c + 0.2 * s, goal[1] - 0.45 * s - 0.2 * c, goal[2] + math.radians(15))
    latents = {}
    with SimWorld(SimConfig(seed=7919, image_width=128, image_height=128)) as world:
        geo = world.scan_geometry
        for name, pose in (("goal", goal), ("start", start)):
            world.set_pose(*pose)
            image, ranges = world.render(), world.scan()
            batches = {"camera": preprocess_image(image, image_spec)[None],
                       "scan": preprocess_scan(ranges, geo.angle_min, geo.angle_increment, geo.range_min,
                                               geo.range_max, scan_spec)[None]}
            latents[name] = fuse({k: fused.encode_sensor(k, b) for k, b in batches.items()})[0][0]
            if name == "goal":
                photo = image
                camera = fused.encode_sensor("camera", batches["camera"])[0][0]
        live_image, live_ranges = image, ranges
    return {"fused_dir": fused_dir, "photo": photo, "image": live_image, "scan": scan_msg(live_ranges, geo, None, 0.1),
            "z_start": latents["start"], "z_goal": latents["goal"], "z_camera": camera}


class Robot:
    """Camera frame, scan and fused latent of the start pose at 10 Hz, stamped alike (now); cmd_vel recorded with
    the wall time each command arrived."""

    def __init__(self, probe: Probe, scene: dict[str, Any], ns: str = NS) -> None:
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image, LaserScan

        from vae_ros.core.conversions.latent import latent_to_stamped_msg
        from vae_ros.ros.qos import LATENT_QOS, SENSOR_QOS
        from vae_ros.ros.sim_messages import image_msg

        self.probe, self.scene = probe, scene
        node = probe.node
        self.camera_pub = node.create_publisher(Image, f"{ns}/camera/image_raw", SENSOR_QOS)
        self.scan_pub = node.create_publisher(LaserScan, f"{ns}/scan", SENSOR_QOS)
        self.latent_pub = node.create_publisher(Image, f"{ns}/vae/latent_stamped", LATENT_QOS)
        self.goal_pub = node.create_publisher(Image, f"{ns}/servo/goal_image", LATENT_QOS)
        self.image = image_msg(scene["image"], None)
        self.latent = latent_to_stamped_msg(scene["z_start"], None, header("lidar_link"))
        self.goal_image = image_msg(scene["photo"], None)
        self.lock = threading.Lock()
        self.commands: list[tuple[int, float, float]] = []  # (arrival wall time ns, linear, angular)
        node.create_subscription(Twist, f"{ns}/cmd_vel", self._on_cmd, LATENT_QOS)
        self.timer = node.create_timer(0.1, self._feed)

    def _on_cmd(self, msg: Any) -> None:
        with self.lock:
            self.commands.append((time.time_ns(), float(msg.linear.x), float(msg.angular.z)))

    def _feed(self) -> None:
        stamp = header("", self.probe.node.get_clock().now().nanoseconds).stamp
        self.image.header.stamp = stamp
        self.scene["scan"].header.stamp = stamp
        self.latent.header.stamp = stamp
        self.camera_pub.publish(self.image)
        self.scan_pub.publish(self.scene["scan"])
        self.latent_pub.publish(self.latent)

    def send_goal_image(self, proc: Any, image: Any = None) -> None:
        """Once (every goal image starts a search), when the node's subscription is there: the goal photo, or
        `image` (a sensor_msgs/Image)."""
        send_until(lambda: None, lambda: self.goal_pub.get_subscription_count() > 0, "the goal-image subscription",
                   30.0, alive={NODE: proc})
        image = self.goal_image if image is None else image
        image.header = self.probe.header("camera_optical_frame")
        self.goal_pub.publish(image)

    def commands_between(self, start_ns: int, end_ns: int) -> list[tuple[float, float]]:
        with self.lock:
            return [(v, w) for t, v, w in self.commands if start_ns <= t < end_ns]


def _reports(probe: Probe, status_name: str = STATUS) -> list[tuple[int, dict[str, str]]]:
    """(stamp ns, values) of every report of the node, oldest first."""
    out = []
    for array in probe.messages("/diagnostics"):
        stamp = array.header.stamp.sec * 1_000_000_000 + array.header.stamp.nanosec
        out += [(stamp, {kv.key: kv.value for kv in status.values}) for status in array.status
                if status.name == status_name]
    return out


def _await_report(probe: Probe, proc: Any, what: str, predicate: Any, timeout: float = 60.0,
                  status_name: str = STATUS) -> tuple[int, dict]:
    """The first report (after any seen so far) for which predicate(values) holds."""
    seen = len(_reports(probe, status_name))

    def found() -> tuple[int, dict] | None:
        return next((r for r in _reports(probe, status_name)[seen:] if predicate(r[1])), None)

    return send_until(lambda: None, found,
                      lambda: f"{what} in {status_name} (last: {probe.diagnostic_values(status_name)})",
                      timeout, alive={NODE: proc})


@pytest.fixture(scope="module")
def servo(scene: dict[str, Any]) -> Any:
    proc = start_node(NODE, "-r", f"__ns:={NS}", *param_args(model=scene["fused_dir"], diagnostics_period=0.2))
    probe = recording_probe("goal_align_probe")
    robot = Robot(probe, scene)
    yield proc, probe, robot
    robot.timer.cancel()
    probe.close()
    if proc.poll() is None:
        stop_node(proc)


def _refreshes(values: dict[str, str]) -> int:
    """The refreshes an aligned goal reports ("aligned NCC 0.95 (3 refreshes)"); 0 otherwise."""
    import re

    found = re.search(r"\((\d+) refreshes\)", values.get("goal_align", ""))
    return int(found.group(1)) if found else 0


def _searching(values: dict[str, str]) -> bool:
    return values.get("goal_align", "").startswith("searching") and values.get("state") == "aligning goal image"


def test_clear_goal_during_an_alignment_leaves_the_robot_stopped_without_a_goal(servo: Any) -> None:
    from std_srvs.srv import Trigger

    proc, probe, robot = servo
    _await_report(probe, proc, "a report", lambda values: True)
    robot.send_goal_image(proc)
    _await_report(probe, proc, "goal_align searching", _searching)
    client = probe.node.create_client(Trigger, f"{NS}/servo/clear_goal")
    assert client.wait_for_service(timeout_sec=20.0)
    future = client.call_async(Trigger.Request())
    assert probe.wait_for(future.done, 20.0) and future.result().success, future.result()
    # The search ends after the clear: its goal is dropped, counted, and never set.
    stamp, values = _await_report(probe, proc, "goal_align_dropped 1",
                                  lambda values: values.get("goal_align_dropped") == "1")
    assert values["goal_source"] == "none" and values["state"] == "idle" and values["goal_align"] == "none", values
    since = time.time_ns()
    send_until(lambda: None, lambda: len(robot.commands_between(since, time.time_ns())) >= 5,
               "five more commands", 30.0, alive={NODE: proc})
    assert all(c == (0.0, 0.0) for c in robot.commands_between(since, time.time_ns()))
    _, values = _await_report(probe, proc, "a later report", lambda values: True)
    assert values["goal_source"] == "none" and values["state"] == "idle", values


def test_a_malformed_goal_image_during_an_alignment_is_rejected_and_leaves_the_robot_stopped_and_idle(
        servo: Any) -> None:
    """A goal image that passes the pixel limit but cannot be converted (its data shorter than step x height) arrives
    while a good one is being aligned: it ends that alignment (it is the newest goal input), is rejected and counted,
    and the controller is idle and stopped, not reporting a search that no longer runs."""
    from sensor_msgs.msg import Image

    proc, probe, robot = servo
    robot.send_goal_image(proc)
    _await_report(probe, proc, "goal_align searching", _searching)
    rejected = int(probe.diagnostic_values(STATUS).get("rejected", "0"))
    robot.send_goal_image(proc, Image(height=128, width=128, encoding="rgb8", step=384, data=bytes(10)))
    _await_report(probe, proc, "the malformed goal image rejected",
                  lambda values: int(values.get("rejected", "0")) > rejected)
    since = time.time_ns()
    _, values = _await_report(probe, proc, "a later report", lambda values: True)
    assert values["state"] == "idle" and values["goal_align"] == "none" and values["goal_source"] == "none", values
    send_until(lambda: None, lambda: len(robot.commands_between(since, time.time_ns())) >= 5,
               "five more commands", 30.0, alive={NODE: proc})
    assert all(c == (0.0, 0.0) for c in robot.commands_between(since, time.time_ns()))


def test_a_goal_image_is_aligned_with_the_live_view_and_the_robot_servos_to_it(servo: Any, scene: dict) -> None:
    proc, probe, robot = servo
    robot.send_goal_image(proc)
    searching, _ = _await_report(probe, proc, "goal_align searching", _searching)
    aligned_at, values = _await_report(probe, proc, "goal_align aligned",
                                       lambda values: values.get("goal_align", "").startswith("aligned NCC"))
    # While it searched (reported so until the last report before the aligned one) it looked around: it turned in
    # place (never a linear command) to one side, then to the other (goal_align_look), and stood still otherwise.
    last_searching = max(stamp for stamp, v in _reports(probe) if stamp < aligned_at and _searching(v))
    while_searching = robot.commands_between(searching, last_searching)
    assert while_searching and all(v == 0.0 for v, _ in while_searching), while_searching
    turns = [w for _, w in while_searching]
    assert max(turns) > 0.3 and min(turns) < -0.3, turns
    first_left = turns.index(max(turns))
    assert min(turns[first_left:]) < -0.3, turns  # left first, then right
    assert "aligned with the live view through the live scan" in values["goal_source"], values
    # The servo's latent error is that of the aligned goal: near the distance to the goal's own fused latent (ground
    # truth), far nearer than the camera expert's latent of the photo would put it.
    _, values = _await_report(probe, proc, "a latent error", lambda values: values.get("latent_error", "none") != "none"
                              and values.get("goal_align", "").startswith("aligned"))
    reported = float(values["latent_error"])
    truth = float(np.linalg.norm(scene["z_start"] - scene["z_goal"]))
    camera = float(np.linalg.norm(scene["z_start"] - scene["z_camera"]))
    camera_gap = float(np.linalg.norm(scene["z_camera"] - scene["z_goal"]))
    assert abs(reported - truth) < 0.4 * camera_gap, (reported, truth, camera, camera_gap)
    since = aligned_at
    send_until(lambda: None, lambda: any(c != (0.0, 0.0) for c in robot.commands_between(since, time.time_ns())),
               "a nonzero command after the alignment", 30.0, alive={NODE: proc})
    # Every goal_align_period (1 s) a search around where the servo head puts the goal refines it.
    _, values = _await_report(probe, proc, "a refresh", lambda values: values.get("goal_align", "").startswith(
        "aligned NCC") and not values["goal_align"].endswith("(0 refreshes)"))
    assert "refined" in values["goal_source"] and values["state"] != "aligning goal image", values
    # A malformed goal image is rejected and sets no goal: the aligned goal stays, and so do its refreshes.
    from sensor_msgs.msg import Image

    refreshes = _refreshes(values)
    rejected = int(values.get("rejected", "0"))
    robot.send_goal_image(proc, Image(height=128, width=128, encoding="rgb8", step=384, data=bytes(10)))
    _, values = _await_report(probe, proc, "the malformed goal image rejected",
                              lambda values: int(values.get("rejected", "0")) > rejected)
    assert values["goal_align"].startswith("aligned NCC"), values
    refreshes = max(refreshes, _refreshes(values))
    _await_report(probe, proc, "a refresh after the malformed goal image",
                  lambda values: values.get("goal_align", "").startswith("aligned NCC")
                  and _refreshes(values) > refreshes, timeout=20.0)
    output = stop_node(proc)
    said = [line for line in output.splitlines() if "new goal from" in line]
    assert len(said) == 1 and "servo/goal_image (aligned with the live view through the live scan, NCC" in said[0], \
        output
    assert "aligning it with the live view" in output


OTHER_NS = "/goal_align_aspect"


def test_a_goal_photo_of_another_aspect_falls_back_to_the_camera_expert_without_looking_around(scene: dict) -> None:
    """A photo whose aspect is not the live camera's (another camera, or a crop) cannot be aligned: said before the
    robot turns to look around for views that could never be searched (the search refused it after the turns, and the
    controller then reported a search that no longer ran, for good), and its goal is the camera expert's joint latent
    (as for any photo the search cannot match). A node of its own: this goal is no goal the tests above expect."""
    import cv2

    from vae_ros.control.runtime.image_goal import LOOK_TURN_RATE
    from vae_ros.ros.sim_messages import image_msg

    status_name = f"{OTHER_NS}/{NODE}: latent servo"
    with _own_servo(scene, OTHER_NS) as (proc, probe, robot):
        _await_report(probe, proc, "a report", lambda values: True, status_name=status_name)
        since = time.time_ns()
        robot.send_goal_image(proc, image_msg(np.ascontiguousarray(cv2.resize(scene["photo"], (128, 64))), None))
        fell_back, values = _await_report(probe, proc, "goal_align fell back",
                                          lambda values: values.get("goal_align", "").startswith("fell back"),
                                          status_name=status_name)
        assert "aspect" in values["goal_align"] and "camera expert" in values["goal_source"], values
        # No look-around turn (the servo on the fallback goal may turn after it, never at exactly this command).
        assert (0.0, LOOK_TURN_RATE) not in robot.commands_between(since, fell_back), "it looked around"


def test_a_flood_of_goal_images_does_not_flood_the_log(scene: dict) -> None:
    """Goal images at 100/s: each ends the alignment before it, which the log said twice (its start and that it was
    not applied) for every image the goal-image thread took up, unthrottled, where the goals' own line is throttled
    (a blocked log pipe once stalled a node). Throttled as that line is: a few lines a second of flood."""
    ns = "/goal_align_flood"
    status_name = f"{ns}/{NODE}: latent servo"
    with _own_servo(scene, ns) as (proc, probe, robot):
        _await_report(probe, proc, "a report", lambda values: True, status_name=status_name)
        robot.send_goal_image(proc)
        began = time.monotonic()
        for _ in range(200):  # the flood's pace, 100/s for 2 s
            robot.goal_pub.publish(robot.goal_image)
            time.sleep(0.01)
        _await_report(probe, proc, "10 alignments ended by newer goal images",
                      lambda values: int(values.get("goal_align_dropped", "0")) >= 10, status_name=status_name)
        flood_s = time.monotonic() - began
        output = stop_node(proc)
    for said in ("aligning it with the live view", "its alignment ended after a newer goal"):
        lines = [line for line in output.splitlines() if said in line]
        assert len(lines) <= flood_s + 3, f"{len(lines)} lines in {flood_s:.1f} s: {said}"


@contextlib.contextmanager
def _own_servo(scene: dict, ns: str) -> Iterator[tuple[Any, Probe, Robot]]:
    """A latent_servo_node of its own in namespace `ns`, with its robot and probe; stopped on the way out."""
    proc = start_node(NODE, "-r", f"__ns:={ns}", *param_args(model=scene["fused_dir"], diagnostics_period=0.2))
    probe = recording_probe(f"probe{ns.replace('/', '_')}")
    robot = Robot(probe, scene, ns)
    try:
        yield proc, probe, robot
    finally:
        robot.timer.cancel()
        probe.close()
        if proc.poll() is None:
            stop_node(proc)
