"""route_follower_node over real ROS 2, asserting what arrives on the topics.

One follower (namespace /rf, wall clock, `scan_safety:=false`) runs for the module on a route made here: K
keyframes 0.25 m apart along a line, each with a random latent of a small seeded scan model's width, saved as a
route folder (vae_ros.ros.route_file, as `vae-ros teach` writes one) with the model's weights digest. The test feeds it stamped latents and odometry at 10 Hz
(RouteProbe), so stamps, bad messages and the services are under its control: it follows from the first
keyframe, stops on stale latents, clear_goal stops it for good until set_goal, bad latents and bad odometry are
rejected and counted and the robot stops, missing odometry stops it, a latent unlike the route loses it, the last
keyframe ends the route. Beside it, followers that must refuse to start (no route, a missing route folder, a
route of another model) are started together with it, so that their waits overlap.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from node_helpers import Probe, make_model_dir, node_env, param_args, stop_node

from vae_ros.control.runtime.route import Route
from vae_ros.control.runtime.route_follower import match_keyframes
from vae_ros.core.backends import weights_digest
from vae_ros.core.conversions.latent import latent_to_stamped_msg
from vae_ros.ros.route_file import save_route

pytestmark = pytest.mark.ros

NS = "/rf"
STATUS = f"{NS}/route_follower_node: route follower"
KEYFRAMES = 8
SPACING_M = 0.25
LATENT_DIM = 8
STALE_TIMEOUT = 0.5
LOST_TIMEOUT = 1.0
STARTUP_S = 120.0
WAIT_S = 30.0
# Followers that must refuse to start: name -> (parameters, what their one error line says). "{x}" is filled in.
BAD_START = {
    "no_route": ({}, "parameter `route` is required"),
    "missing_route": ({"route": "{tmp}/no_such_route"}, "no_such_route"),
    "other_model": ({"route": "{tmp}/route_other"}, "was taught with the model whose weights sha256 is"),
}


def follower_command(*ros_args: str) -> list[str]:
    return [sys.executable, "-m", "vae_ros.ros.nodes.route_follower_node", "--ros-args", *ros_args]


def make_route(model_dir: Path, seed: int = 0) -> Route:
    """KEYFRAMES keyframes SPACING_M apart along x, random latents of LATENT_DIM, the model's digest."""
    rng = np.random.default_rng(seed)
    poses = np.stack([np.arange(KEYFRAMES) * SPACING_M, np.zeros(KEYFRAMES), np.zeros(KEYFRAMES)], axis=1)
    latents = rng.normal(0.0, 1.0, (KEYFRAMES, LATENT_DIM)).astype(np.float32)
    meta = {"model_sha256": weights_digest(model_dir), "latent_dim": LATENT_DIM, "spacing_m": SPACING_M,
            "spacing_deg": 10.0, "latent_topic": "vae/latent_stamped", "odom_topic": "odom", "sources": ["test"]}
    return Route(poses, latents, np.arange(KEYFRAMES, dtype=np.int64) * 1_000_000_000, None, meta)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The model, the route (and one of another model), and the processes: the follower and the refusals."""
    tmp = tmp_path_factory.mktemp("route_follower")
    model = make_model_dir(tmp / "model", "scan", latent_dim=LATENT_DIM, seed=0)
    other = make_model_dir(tmp / "other_model", "scan", latent_dim=LATENT_DIM, seed=1)
    route = make_route(model)
    save_route(route, tmp / "route")
    save_route(make_route(other), tmp / "route_other")
    started: dict[str, subprocess.Popen[str]] = {}
    try:
        started["follower"] = subprocess.Popen(
            follower_command("-r", f"__ns:={NS}", *param_args(
                route=str(tmp / "route"), model=str(model), scan_safety=False, diagnostics_period=0.2,
                stale_timeout=STALE_TIMEOUT, lost_timeout=LOST_TIMEOUT)),
            env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, (params, _) in BAD_START.items():
            filled = {k: v.format(tmp=tmp) for k, v in params.items()}
            started[name] = subprocess.Popen(
                follower_command("-r", f"__ns:=/{name}", *param_args(model=str(model), **filled)),
                env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        yield {"route": route, "procs": started, "tmp": tmp}
    finally:
        for name, proc in started.items():
            if name in BAD_START:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
            elif proc.poll() is None:
                output = stop_node(proc)
                if proc.returncode not in (0, -2):
                    print(f"--- {name} exited {proc.returncode}:\n{output}")


class RouteProbe(Probe):
    """Records the follower's cmd_vel and /diagnostics; feeds it a stamped latent and odometry at 10 Hz."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger

        from vae_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, LATENT_QOS, STATE_QOS

        super().__init__("route_follower_test_probe")
        self.record(Twist, f"{NS}/cmd_vel", COMMAND_QOS)
        self.record(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.latent_pub = self.node.create_publisher(Image, f"{NS}/vae/latent_stamped", LATENT_QOS)
        self.odom_pub = self.node.create_publisher(Odometry, f"{NS}/odom", STATE_QOS)
        self.set_goal = self.node.create_client(Trigger, f"{NS}/servo/set_goal")
        self.clear_goal = self.node.create_client(Trigger, f"{NS}/servo/clear_goal")
        self._odometry = Odometry
        # (latent, odometry pose [x, y, yaw] or None: none sent) sent every 0.1 s; None: nothing sent
        self.feed: tuple[np.ndarray, tuple[float, float, float] | None] | None = None
        self.node.create_timer(0.1, self._on_feed)

    def odometry(self, pose: tuple[float, float, float], quaternion: tuple[float, float, float, float] | None = None
                 ) -> Any:
        msg = self._odometry(header=self.header("odom"))
        msg.child_frame_id = "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = pose[0], pose[1]
        q = quaternion or (0.0, 0.0, math.sin(pose[2] / 2), math.cos(pose[2] / 2))
        o = msg.pose.pose.orientation
        o.x, o.y, o.z, o.w = q
        return msg

    def _on_feed(self) -> None:
        with self.lock:
            feed = self.feed
        if feed is None:
            return
        z, pose = feed
        if pose is not None:
            self.odom_pub.publish(self.odometry(pose))
        self.latent_pub.publish(latent_to_stamped_msg(z, None, self.header("lidar_link")))

    def set_feed(self, z: np.ndarray | None, pose: tuple[float, float, float] | None = (0.0, 0.0, 0.0)) -> None:
        with self.lock:
            self.feed = None if z is None else (np.asarray(z, np.float32), pose)

    def call(self, client: Any, timeout: float = WAIT_S) -> Any:
        from std_srvs.srv import Trigger

        assert self.wait_for(client.service_is_ready, timeout), f"{client.srv_name} not available"
        future = client.call_async(Trigger.Request())
        assert self.wait_for(future.done, timeout), f"{client.srv_name} did not answer"
        return future.result()

    def status(self) -> dict[str, str]:
        return self.diagnostic_values(STATUS)

    def wait_status(self, what: str, check: Any, timeout: float = WAIT_S) -> dict[str, str]:
        assert self.wait_for(lambda: check(self.status()), timeout), f"waited for {what}; last: {self.status()}"
        return self.status()

    def commands(self) -> list[tuple[float, float]]:
        return [(m.linear.x, m.angular.z) for m in self.messages(f"{NS}/cmd_vel")]


@pytest.fixture(scope="module")
def probe(world: Any) -> Any:
    probe = RouteProbe()
    follower = world["procs"]["follower"]
    # Up: its /diagnostics arrive (the process otherwise says why it is not).
    if not probe.wait_for(lambda: probe.status() or follower.poll() is not None, STARTUP_S) or follower.poll() is not None:
        probe.close()
        raise AssertionError(f"route_follower_node did not come up:\n{stop_node(follower)}")
    yield probe
    probe.set_feed(None)
    probe.close()


def _moving_forward(command: tuple[float, float]) -> bool:
    return command[0] > 1e-3


def _drive(probe: RouteProbe, z: np.ndarray, pose: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
    """Feed z and odometry until the follower follows (in a report on at least two of these steps) and a forward
    command has arrived since."""
    count, received = len(probe.commands()), _received(probe)
    probe.set_feed(z, pose)
    probe.wait_status("following", lambda s: s.get("state") == "following" and int(s["received"]) >= received + 2)
    following = len(probe.commands())
    assert probe.wait_for(lambda: any(_moving_forward(c) for c in probe.commands()[following:]), WAIT_S), \
        f"no forward command; since {probe.commands()[count:]}, status {probe.status()}"


def _stopped_after(probe: RouteProbe, count: int) -> bool:
    """A zero command arrived after the first `count` commands."""
    return any(c == (0.0, 0.0) for c in probe.commands()[count:])


def _all_zero_from_now(probe: RouteProbe, steps: int = 3) -> None:
    """The next `steps` commands (latents keep coming) are all exactly zero."""
    count = len(probe.commands())
    assert probe.wait_for(lambda: len(probe.commands()) >= count + steps, WAIT_S), probe.status()
    assert all(c == (0.0, 0.0) for c in probe.commands()[count:]), probe.commands()[count:]


def _received(probe: RouteProbe) -> int:
    found = probe.diagnostic(STATUS)
    return found.count("received") if found else -1


def _restart(probe: RouteProbe) -> None:
    answer = probe.call(probe.set_goal)
    assert answer.success, answer.message


# -- tests --------------------------------------------------------------------------------------------------
def test_route_path_is_latched_for_a_late_subscriber(world: Any, probe: RouteProbe) -> None:
    from nav_msgs.msg import Path as PathMsg

    from vae_ros.ros.qos import LATCHED_QOS

    # The follower published route/path once at start, long before this subscription exists.
    probe.record(PathMsg, f"{NS}/route/path", LATCHED_QOS)
    assert probe.wait_for(lambda: probe.messages(f"{NS}/route/path"), WAIT_S), "no route/path for a late subscriber"
    (path,) = probe.messages(f"{NS}/route/path")
    assert path.header.frame_id == "odom"
    route = world["route"]
    assert len(path.poses) == KEYFRAMES
    xy = np.array([(p.pose.position.x, p.pose.position.y) for p in path.poses])
    np.testing.assert_allclose(xy, route.poses[:, :2], atol=1e-9)
    assert all(p.pose.orientation.w == pytest.approx(1.0) for p in path.poses)


def test_follows_from_the_first_keyframe_and_reports_its_place(world: Any, probe: RouteProbe) -> None:
    route = world["route"]
    status = probe.status()
    # Before any latent: stopped, waiting (the shell's watchdog calls it stale).
    assert status["keyframes"] == str(KEYFRAMES) and status["phase"] == "waiting for a latent", status
    _drive(probe, route.latents[0])
    status = probe.wait_status("following at keyframe 0", lambda s: s.get("state") == "following")
    assert status["keyframe"] == "0" and status["keyframes"] == str(KEYFRAMES), status
    assert float(status["match"]) == pytest.approx(1.0), status  # the keyframe's own latent
    assert float(status["distance_left"]) == pytest.approx(route.length, abs=1e-3), status
    assert status["phase"] == "following the path" and status["odometry"] == "fresh", status
    assert probe.commands()[-1][0] <= 0.25 + 1e-9  # max_linear (FollowerConfig's default)


def test_stale_latents_stop_the_robot(world: Any, probe: RouteProbe) -> None:
    _drive(probe, world["route"].latents[0])
    probe.set_feed(None)
    count = len(probe.commands())
    assert probe.wait_for(lambda: _stopped_after(probe, count), WAIT_S), probe.commands()[count:]
    probe.wait_status("stale", lambda s: s.get("state") == "stale")
    assert probe.commands()[-1] == (0.0, 0.0)


def test_clear_goal_stops_until_set_goal_restarts_the_route(world: Any, probe: RouteProbe) -> None:
    route = world["route"]
    _drive(probe, route.latents[0])
    answer = probe.call(probe.clear_goal)
    assert answer.success and "set_goal" in answer.message, answer.message
    count = len(probe.commands())
    assert probe.commands()[-1] == (0.0, 0.0)
    # Latents and odometry keep coming: ten more steps' worth, every command zero.
    received = _received(probe)
    assert probe.wait_for(lambda: _received(probe) >= received + 10, WAIT_S), probe.status()
    assert probe.commands()[count:] and all(c == (0.0, 0.0) for c in probe.commands()[count:]), probe.commands()[count:]
    assert probe.status()["state"] == "idle" and probe.status()["phase"] == "idle", probe.status()
    _restart(probe)
    _drive(probe, route.latents[0])
    probe.wait_status("following again", lambda s: s.get("state") == "following")


@pytest.mark.parametrize("bad", ["wrong_size", "nan"])
def test_bad_latents_are_rejected_counted_and_stop_the_robot(world: Any, probe: RouteProbe, bad: str) -> None:
    _drive(probe, world["route"].latents[0])
    probe.set_feed(None)
    rejected = probe.status()["rejected"]
    count = len(probe.commands())
    msg = latent_to_stamped_msg(np.ones(LATENT_DIM + 3 if bad == "wrong_size" else LATENT_DIM, np.float32), None,
                                probe.header("lidar_link"))
    if bad == "nan":  # the builder refuses NaN: written into the wire bytes as a broken encoder would
        msg.data = np.full(LATENT_DIM, np.nan, "<f4").tobytes()
    probe.latent_pub.publish(msg)
    status = probe.wait_status("the rejection counted", lambda s: int(s.get("rejected", "0")) > int(rejected))
    expected = "dimensions" if bad == "wrong_size" else "NaN"
    assert expected in status["last_rejection"], status["last_rejection"]
    assert probe.wait_for(lambda: _stopped_after(probe, count), WAIT_S), probe.commands()[count:]


def test_bad_or_missing_odometry_stops_the_robot(world: Any, probe: RouteProbe) -> None:
    route = world["route"]
    _drive(probe, route.latents[0])
    probe.set_feed(route.latents[0], None)  # latents go on, odometry stops
    count = len(probe.commands())
    status = probe.wait_status("waiting for odometry", lambda s: s.get("phase") == "waiting for odometry")
    assert "odom_timeout" in status["odometry"], status
    assert probe.wait_for(lambda: _stopped_after(probe, count), WAIT_S), probe.commands()[count:]
    # Fresh odometry: it goes on.
    _drive(probe, route.latents[0])
    rejected = int(probe.status()["odometry_rejected"])
    for quaternion in ((0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, float("nan"))):  # unfilled; NaN
        probe.set_feed(route.latents[0], None)
        count = len(probe.commands())
        probe.odom_pub.publish(probe.odometry((0.0, 0.0, 0.0), quaternion))
        status = probe.wait_status("the odometry rejection counted",
                                   lambda s, r=rejected: int(s.get("odometry_rejected", "0")) > r)
        rejected = int(status["odometry_rejected"])
        assert probe.wait_for(lambda c=count: _stopped_after(probe, c), WAIT_S), probe.commands()[count:]
        # The rejected message's pose is not used: the robot stays stopped until good odometry comes.
        probe.wait_status("waiting for odometry", lambda s: s.get("phase") == "waiting for odometry")
        _all_zero_from_now(probe)
        _drive(probe, route.latents[0])
    assert "unit quaternion" in probe.status()["last_rejection"] or "NaN" in probe.status()["last_rejection"]


def test_an_odometry_jump_makes_it_find_its_place_again(world: Any, probe: RouteProbe) -> None:
    route = world["route"]
    _drive(probe, route.latents[0])
    received = _received(probe)
    probe.set_feed(route.latents[0], (2.0, 0.0, 0.0))  # 2 m in one step: a reset or another source
    assert probe.wait_for(lambda: _received(probe) >= received + 5, WAIT_S)
    # It found keyframe 0 again at once (the latent is the keyframe's own) and follows on.
    probe.wait_status("following after the jump", lambda s: s.get("state") == "following" and s["keyframe"] == "0")


def test_a_latent_unlike_the_route_loses_it_and_stops(world: Any, probe: RouteProbe) -> None:
    route = world["route"]
    far = np.full(LATENT_DIM, 4.0, np.float32)  # no keyframe is near it: no confident match
    assert match_keyframes(route, far, None, 0.75).quality < 0.25
    _drive(probe, route.latents[0])
    probe.set_feed(far)
    status = probe.wait_status("lost", lambda s: s.get("state") == "lost", timeout=LOST_TIMEOUT + WAIT_S)
    assert "no confident match" in status["reason"], status
    _all_zero_from_now(probe)
    # The match returns: it resumes.
    _drive(probe, route.latents[0])
    probe.wait_status("following again", lambda s: s.get("state") == "following")


def test_the_last_keyframe_ends_the_route_with_a_zero_command(world: Any, probe: RouteProbe) -> None:
    route = world["route"]
    _restart(probe)  # localises afresh: the last keyframe's own latent puts it at the end of the route
    probe.set_feed(route.latents[-1], tuple(route.poses[-1]))
    status = probe.wait_status("done", lambda s: s.get("state") == "done")
    assert float(status["distance_left"]) == pytest.approx(0.0, abs=1e-3) and status["phase"] == "done", status
    assert status["keyframe"] == str(KEYFRAMES - 1), status
    _all_zero_from_now(probe)
    probe.set_feed(None)


def test_the_log_says_each_change_once_and_the_last_command_is_zero(world: Any, probe: RouteProbe) -> None:
    follower = world["procs"]["follower"]
    probe.set_feed(None)
    output = stop_node(follower)
    assert follower.returncode == 0, output
    assert output.count("route done") == 1, output  # DONE is said once, however many latents follow
    assert "lost at keyframe" in output and "no confident match" in output, output
    assert "localising again: odometry jumped" in output, output
    assert "no odometry" in output or "odom_timeout" in output, output
    assert "Traceback" not in output, output
    assert probe.wait_for(lambda: probe.commands()[-1] == (0.0, 0.0), 5.0)


@pytest.mark.parametrize("name", sorted(BAD_START))
def test_bad_start_exits_with_one_line(world: Any, name: str) -> None:
    proc = world["procs"][name]
    _, stderr = proc.communicate(timeout=STARTUP_S)
    assert proc.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("route_follower_node: error:")]
    assert len(errors) == 1, stderr
    assert BAD_START[name][1] in errors[0], errors[0]
    assert "Traceback" not in stderr
    if name == "other_model":  # both digests named: the route's and the model's
        assert errors[0].count("...") == 2, errors[0]
