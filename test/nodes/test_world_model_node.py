"""world_model_node over real ROS 2: stamped one-step predictions, goals by set_goal / goal_latent, MPC
commands, zero on stale latents and on shutdown, bad latents rejected and counted, goal images refused."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import node_helpers
import numpy as np
import pytest
from node_helpers import (
    Probe,
    make_model_dir,
    param_args,
    recording_probe,
    scan_msg,
    send_until,
    stamp_ns,
    start_node,
    stop_node,
)

from vae_ros.control.runtime.dynamics import LatentDynamics
from vae_ros.core.conversions.latent import (
    latent_to_msg,
    latent_to_stamped_msg,
    msg_to_latent_rows,
    stamped_msg_to_latent,
)

pytestmark = pytest.mark.ros

NS = "/wm"
LATENT_DIM = 4
DT = 0.1


def random_dynamics(path: Path, seed: int = 0) -> LatentDynamics:
    """A seeded, untrained ensemble whose predictions depend on the command (fine for plumbing)."""
    return node_helpers.random_dynamics(path, LATENT_DIM, seed, hidden=(16,), dt=DT)


WM_PARAMS = dict(tolerance=0.001, samples=64, iterations=2, elites=8, horizon=6, stale_timeout=0.5,
                 diagnostics_period=0.5, collision=False)


def _start_world_model(ns: str, model: Path, dynamics: Path) -> Any:
    return start_node("world_model_node", "-r", f"__ns:={ns}", *param_args(model=model, dynamics=dynamics,
                                                                           **WM_PARAMS))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("world_model")
    model = make_model_dir(root / "scan", "scan", latent_dim=LATENT_DIM, seed=3, beams=64)
    dynamics = random_dynamics(root / "dynamics")
    proc = _start_world_model(NS, model, root / "dynamics")
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image

    probe = recording_probe("world_model_test_probe", (Image, f"{NS}/world_model/predicted_latent"),
                            (Image, f"{NS}/world_model/planned_latents"), (Twist, f"{NS}/cmd_vel"))
    probe.publishers["latent"] = probe.node.create_publisher(Image, f"{NS}/vae/latent_stamped", 10)
    from sensor_msgs.msg import LaserScan

    from vae_ros.ros.qos import SENSOR_QOS

    # A free scan beside every latent: the scan safety layer lets the robot move (no scan: no motion).
    probe.publishers["scan"] = probe.node.create_publisher(LaserScan, f"{NS}/scan", SENSOR_QOS)
    yield {"proc": proc, "probe": probe, "dynamics": dynamics, "root": root, "model": model,
           "latent": probe.publishers["latent"], "ns": NS}
    probe.close()
    stop_node(proc)


def _stream(setup: Any, z: np.ndarray, until: Any, timeout: float = 30.0, period: float = 0.1) -> Any:
    """Publish fresh latents z at 10 Hz until until() holds (the node must stay alive); returns until()'s value."""
    probe = setup["probe"]
    latent = setup["latent"]
    scan = setup.get("scan") or probe.publishers["scan"]  # the node's own namespace's scan where it has one

    def send() -> None:
        header = probe.header("laser")
        scan.publish(scan_msg(header))  # a free scan beside every latent: the scan safety layer lets it move
        latent.publish(latent_to_stamped_msg(z, None, header))

    return send_until(send, until, "the condition while streaming latents", timeout, period,
                      alive={"world_model_node": setup["proc"]})


def _sender(setup: Any, z: np.ndarray, sent: set[int]) -> Any:
    """A send() for send_until: publishes z stamped now, adding each stamp (ns) to `sent`."""

    def send() -> None:
        header = setup["probe"].header("laser")
        sent.add(stamp_ns(header))
        setup["probe"].publishers["scan"].publish(scan_msg(header))  # the scan safety layer's input, free
        setup["latent"].publish(latent_to_stamped_msg(z, None, header))

    return send


def _status(probe: Probe, ns: str = NS) -> dict[str, str]:
    found = probe.diagnostic(f"{ns}/world_model_node: world model")
    return {"level": str(found.level), **found.values} if found else {}


def _call_set_goal(probe: Probe, service: str = "servo/set_goal") -> Any:
    from std_srvs.srv import Trigger

    client = probe.node.create_client(Trigger, f"{NS}/{service}")
    assert client.wait_for_service(timeout_sec=20.0)
    future = client.call_async(Trigger.Request())
    assert probe.wait_for(future.done, timeout=10.0)
    return future.result()


def test_predictions_arrive_stamped_for_the_time_they_predict(setup: Any) -> None:
    probe, dyn = setup["probe"], setup["dynamics"]
    z = np.array([0.2, -0.1, 0.4, 0.0], np.float32)
    topic = f"{NS}/world_model/predicted_latent"
    probe.clear(topic)
    sent: set[int] = set()
    msgs = send_until(_sender(setup, z, sent), lambda: probe.messages(topic), "a prediction", timeout=30.0, period=0.1)
    mean, logvar, out_header = stamped_msg_to_latent(msgs[-1], expected_dim=LATENT_DIM)
    assert logvar is not None and out_header.frame_id == "laser"
    # Idle (no goal): the prediction is for the newest executed command, here the node's own zero.
    ref_mean, ref_var = dyn.predict(z[None], np.zeros((1, 2), np.float32))
    np.testing.assert_allclose(mean, ref_mean[0], atol=1e-5)
    np.testing.assert_allclose(np.exp(logvar), ref_var[0], rtol=1e-4)
    # Stamped t + dt: the stamp of a latent sent, plus the model step.
    assert stamp_ns(out_header) - int(round(DT * 1e9)) in sent
    # The running one-step error appears in /diagnostics once a prediction meets the latent it predicted.
    assert _stream(setup, z, lambda: _status(probe).get("prediction_error_count", "0") not in ("0", ""),
                   timeout=20.0, period=0.09)


def test_bad_latents_are_rejected_and_counted(setup: Any) -> None:
    probe = setup["probe"]
    z = np.zeros(LATENT_DIM, np.float32)
    assert _stream(setup, z, lambda: bool(_status(probe)), timeout=20.0)
    before = int(_status(probe)["rejected"])
    bad = [latent_to_stamped_msg(np.zeros(LATENT_DIM + 3, np.float32), None, probe.header("laser")) for _ in range(3)]
    node_helpers.send_each_until_counted(probe, setup["latent"], bad, lambda: int(_status(probe)["rejected"]))
    assert int(_status(probe)["rejected"]) >= before + 3
    assert "dimensions" in _status(probe).get("last_rejection", "")
    assert setup["proc"].poll() is None


def test_goal_images_for_scan_models_are_looked_up_among_remembered_views(setup: Any) -> None:
    """A LiDAR model cannot encode an image: a goal image is looked up among the camera views the node has
    remembered (none here: no camera), so it waits, stopped; a uniform image is refused (nothing to match)."""
    from sensor_msgs.msg import Image

    probe = setup["probe"]
    before = int(_status(probe).get("rejected", "0") or 0)
    pub = probe.node.create_publisher(Image, f"{NS}/servo/goal_image", 10)
    blank = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12))
    send_until(lambda: pub.publish(blank), lambda: int(_status(probe).get("rejected", "0") or 0) > before,
               "the blank goal image counted as rejected", timeout=15.0, period=0.3)
    assert "uniform" in _status(probe).get("last_rejection", "")
    pixels = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    image = Image(height=8, width=8, encoding="rgb8", step=24, data=pixels.tobytes())
    send_until(lambda: pub.publish(image), lambda: _status(probe).get("goal_image", "").startswith("waiting"),
               "the goal image waiting for a view", timeout=15.0, period=0.3)
    status = _status(probe)
    assert status.get("goal_image", "").startswith("waiting for a matching view"), status
    assert status.get("state") == "idle" and status.get("remembered_views") == "0"


def test_set_goal_then_commands_then_zero_when_stale(setup: Any) -> None:
    probe = setup["probe"]
    z_goal = np.array([0.5, 0.5, -0.5, 0.2], np.float32)
    z_away = np.array([-0.5, -0.3, 0.6, -0.4], np.float32)
    assert _stream(setup, z_goal, lambda: _status(probe).get("state") == "idle", timeout=20.0)
    result = _call_set_goal(probe)
    assert result.success, result.message
    cmd_topic = f"{NS}/cmd_vel"
    probe.clear(cmd_topic)

    def moving() -> bool:
        return any(abs(m.linear.x) > 1e-3 or abs(m.angular.z) > 1e-3 for m in probe.messages(cmd_topic))

    assert _stream(setup, z_away, moving, timeout=20.0), "no non-zero command toward the goal"
    cmds = probe.messages(cmd_topic)
    assert all(abs(m.linear.x) <= 0.3 + 1e-6 and abs(m.angular.z) <= 0.8 + 1e-6 for m in cmds)
    assert probe.wait_for(lambda: _status(probe).get("goal_source") == "servo/set_goal", timeout=5.0)
    # The free scan: the scan safety layer let it move, and says so.
    assert probe.wait_for(lambda: _status(probe).get("blocked") == "no", timeout=5.0), _status(probe)
    # Latents stop: within stale_timeout (0.5 s) the node publishes zero, and keeps doing so.
    probe.clear(cmd_topic)
    assert probe.wait_for(lambda: len(probe.messages(cmd_topic)) >= 5, timeout=5.0)
    last = probe.messages(cmd_topic)[-3:]
    assert all(m.linear.x == 0.0 and m.angular.z == 0.0 for m in last)
    assert probe.wait_for(lambda: _status(probe).get("state") == "stale", timeout=5.0)
    assert float(_status(probe)["plan_time_p50_ms"]) > 0.0


def test_clear_goal_stops_the_robot_and_waits_idle(setup: Any) -> None:
    probe = setup["probe"]
    z_goal = np.array([0.5, 0.5, -0.5, 0.2], np.float32)
    z_away = np.array([-0.5, -0.3, 0.6, -0.4], np.float32)
    cmd_topic = f"{NS}/cmd_vel"
    assert _stream(setup, z_goal, lambda: _status(probe).get("state") != "stale", timeout=20.0)
    assert _call_set_goal(probe).success
    probe.clear(cmd_topic)

    def moving() -> bool:
        return any(abs(m.linear.x) > 1e-3 or abs(m.angular.z) > 1e-3 for m in probe.messages(cmd_topic))

    assert _stream(setup, z_away, moving, timeout=20.0), "no non-zero command toward the goal"
    result = _call_set_goal(probe, "servo/clear_goal")
    assert result.success and result.message == "goal cleared; stopped", result.message
    # Fresh latents keep coming, the goal is gone: only zero commands, idle, no goal.
    probe.clear(cmd_topic)
    assert _stream(setup, z_away, lambda: len(probe.messages(cmd_topic)) >= 5, timeout=20.0)
    assert all(m.linear.x == 0.0 and m.angular.z == 0.0 for m in probe.messages(cmd_topic))
    assert _stream(setup, z_away, lambda: _status(probe).get("state") == "idle"
                   and _status(probe).get("goal_source") == "none", timeout=20.0)
    assert _call_set_goal(probe, "servo/clear_goal").message == "no goal was set"


def test_each_plan_is_published_stamped_like_the_latent_it_planned_from(setup: Any) -> None:
    probe, dyn = setup["probe"], setup["dynamics"]
    plan_topic, cmd_topic = f"{NS}/world_model/planned_latents", f"{NS}/cmd_vel"
    z_goal = np.array([0.5, 0.5, -0.5, 0.2], np.float32)
    z_away = np.array([-0.5, -0.3, 0.6, -0.4], np.float32)
    assert _stream(setup, z_goal, lambda: _status(probe).get("state") in ("idle", "stale"), timeout=20.0)
    # No goal: no plans, however many latents come.
    probe.clear(plan_topic)
    end = time.monotonic() + 1.5
    _stream(setup, z_goal, lambda: time.monotonic() > end, timeout=20.0)
    assert not probe.messages(plan_topic)
    assert _stream(setup, z_goal, lambda: _status(probe).get("state") != "stale", timeout=20.0)
    assert _call_set_goal(probe).success
    probe.clear(plan_topic)
    probe.clear(cmd_topic)
    sent: set[int] = set()
    send_until(_sender(setup, z_away, sent), lambda: len(probe.messages(plan_topic)) >= 3, "3 plans", timeout=30.0, period=0.1,
               alive={"world_model_node": setup["proc"]})
    plans = probe.messages(plan_topic)
    assert len(plans) >= 3, "fewer than 3 plans published"
    commands = [(m.linear.x, m.angular.z) for m in probe.messages(cmd_topic)]
    for msg in plans:
        rows, header = msg_to_latent_rows(msg, expected_dim=LATENT_DIM)
        assert rows.shape == (6, LATENT_DIM)  # one row per planned step (horizon 6)
        assert header.frame_id == "laser"
        assert stamp_ns(header) in sent  # the latent it planned from
        # Row 0 is one ensemble member's prediction from that latent under the command the node sent.
        firsts = [dyn.step_members(np.broadcast_to(z_away, (dyn.members, 1, LATENT_DIM)),
                                   np.broadcast_to(np.array(c, np.float32), (dyn.members, 1, 2)))[:, 0]
                  for c in commands]
        assert any(np.allclose(rows[0], member, atol=1e-4) for first in firsts for member in first), rows[0]
        assert not np.allclose(rows[-1], rows[0])  # the rollout moves
    assert _call_set_goal(probe, "servo/clear_goal").success


def test_goal_latent_topic_and_zero_on_shutdown(setup: Any) -> None:
    """SIGINT while driving toward a goal from servo/goal_latent: the node exits 0 and its last command is a
    zero. Its own node process (in its own namespace), so the file's shared node stays up."""
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image, LaserScan
    from std_msgs.msg import Float32MultiArray

    probe, ns = setup["probe"], "/wm_shutdown"
    proc = _start_world_model(ns, setup["model"], setup["root"] / "dynamics")
    try:
        cmd_topic = f"{ns}/cmd_vel"
        probe.record(Twist, cmd_topic)
        own = {"probe": probe, "proc": proc, "ns": ns,
               "latent": probe.node.create_publisher(Image, f"{ns}/vae/latent_stamped", 10),
               "scan": probe.node.create_publisher(LaserScan, f"{ns}/scan", 10)}  # free: the safety layer lets it move
        pub = probe.node.create_publisher(Float32MultiArray, f"{ns}/servo/goal_latent", 10)
        z_goal = np.array([0.3, -0.6, 0.1, 0.5], np.float32)
        z_away = np.array([-0.4, 0.4, -0.3, 0.0], np.float32)
        assert probe.wait_for(lambda: pub.get_subscription_count() > 0, timeout=30.0), stop_node(proc)
        pub.publish(latent_to_msg(z_goal))

        def driving() -> bool:
            """The newest command is nonzero, toward the goal from servo/goal_latent."""
            cmds = probe.messages(cmd_topic)
            return bool(cmds) and (abs(cmds[-1].linear.x) > 1e-3 or abs(cmds[-1].angular.z) > 1e-3) \
                and _status(probe, ns).get("goal_source") == "servo/goal_latent"

        _stream(own, z_away, driving, timeout=30.0)
        # Shutdown while driving (a fresh latent just sent, the newest command nonzero).
        own["latent"].publish(latent_to_stamped_msg(z_away, None, probe.header("laser")))
        sent_before = len(probe.messages(cmd_topic))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15.0) == 0, proc.stdout.read() if proc.stdout else ""

        def stopped() -> bool:
            """A command arrived after SIGINT and the newest one is zero (the node has exited: nothing else
            publishes here, and reliable delivery keeps its order)."""
            cmds = probe.messages(cmd_topic)
            return len(cmds) > sent_before and cmds[-1].linear.x == 0.0 and cmds[-1].angular.z == 0.0

        assert probe.wait_for(stopped, timeout=10.0), probe.messages(cmd_topic)[sent_before:]
    finally:
        stop_node(proc)


def test_bad_dynamics_path_is_one_clear_line(setup: Any) -> None:
    proc = start_node("world_model_node", "-r", "__ns:=/wm_bad", *param_args(
        model=setup["model"], dynamics=setup["root"] / "nowhere", tolerance=0.01))
    out = stop_node(proc, timeout=30.0) if proc.wait(30.0) is None else proc.stdout.read()
    assert proc.returncode == 2, out
    assert "world_model_node: error: dynamics directory" in out and "Traceback" not in out
