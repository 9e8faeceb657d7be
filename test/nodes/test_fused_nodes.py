"""A fused camera + LiDAR model in the nodes, over real ROS 2 (issue 19): encoder_node pairs camera frames and scans
by stamp, leaves a silent or garbage-sending sensor out and takes it back; decoder_node publishes both
reconstructions of one latent; the controllers start on a fused model.

The model is models/fused_default where it is packaged, else a stand-in (node_helpers.fused_model_dir). A feeder
thread in this process plays the robot: camera and scan at 10 Hz, each switchable (on, off, garbage) and the
camera's stamps offset at will.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from node_helpers import (
    Probe,
    fused_model_dir,
    header,
    param_args,
    recording_probe,
    scan_msg,
    send_until,
    stamp_ns,
    start_node,
    stop_node,
    stop_processes,
    wait_for,
)

from vae_ros.core.conversions.image import array_to_image_msg
from vae_ros.core.conversions.latent import stamped_msg_to_latent
from vae_ros.core.conversions.model_input import msg_to_model_input
from vae_ros.core.fused import FusedModel, fuse

pytestmark = pytest.mark.ros

NS = "/fused_enc"
ENCODER = f"{NS}/encoder_node: encoder"
TIMEOUT_S = 0.3


@pytest.fixture(scope="module")
def fused_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fused_model_dir(tmp_path_factory.mktemp("fused"))


@pytest.fixture(scope="module")
def encoder(fused_dir: Path) -> Any:
    proc = start_node("encoder_node", "-r", f"__ns:={NS}", *param_args(
        model=fused_dir, backend="onnxruntime", threads=1, publish_variance=True, diagnostics_period=0.2,
        sensor_timeout=TIMEOUT_S, sync_slop=0.05))
    yield proc
    stop_processes([proc])


@pytest.fixture(scope="module")
def probe(encoder: Any) -> Any:
    from sensor_msgs.msg import Image

    probe = recording_probe("fused_test_probe", (Image, f"{NS}/vae/latent_stamped"))
    yield probe
    probe.close()


class Feeder:
    """Camera and scan at 10 Hz with the same stamps (plus `camera_offset_ns`); `scan` is on, off or garbage."""

    def __init__(self, probe: Probe, ns: str = NS) -> None:
        from sensor_msgs.msg import Image, LaserScan

        self.camera_pub = probe.node.create_publisher(Image, f"{ns}/camera/image_raw", 10)
        self.scan_pub = probe.node.create_publisher(LaserScan, f"{ns}/scan", 10)
        rng = np.random.default_rng(0)
        self.image = array_to_image_msg(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "rgb8",
                                        frame_id="camera_optical_frame")
        self.scan = scan_msg(header("lidar_link"), wall_ahead=1.5)
        self.garbage = scan_msg(header("lidar_link"), wall_ahead=1.5)
        self.garbage.angle_increment = 0.0  # rejected by the encoder today ("angle_increment must be ... non-zero")
        self.scan_mode, self.camera_offset_ns = "on", 0
        self.probe = probe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            now = self.probe.node.get_clock().now().nanoseconds
            self.image.header = header("camera_optical_frame", now + self.camera_offset_ns)
            self.camera_pub.publish(self.image)
            if self.scan_mode != "off":
                scan = self.garbage if self.scan_mode == "garbage" else self.scan
                scan.header = header("lidar_link", now)
                self.scan_pub.publish(scan)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


def _sensors_reported(probe: Probe, expected: str, since_ns: int = 0) -> bool:
    report = probe.diagnostic(ENCODER)
    return report is not None and report.stamp_ns > since_ns and report.values.get("sensors") == expected


def _await_sensors(probe: Probe, encoder: Any, expected: str, timeout: float = 20.0) -> None:
    since = probe.node.get_clock().now().nanoseconds
    send_until(lambda: None, lambda: _sensors_reported(probe, expected, since),
               lambda: f"sensors={expected} in /diagnostics (last: {probe.diagnostic_values(ENCODER)})", timeout,
               alive={"fused encoder": encoder})


def test_fused_encoder_pairs_drops_a_silent_or_garbage_sensor_and_takes_it_back(
        probe: Probe, encoder: Any, fused_dir: Path) -> None:
    feeder = Feeder(probe)
    try:
        _await_sensors(probe, encoder, "camera,scan")
        # The joint latent is the product of the two experts on these very messages, stamped with the pair's stamp
        # (both stamped alike here), in the LiDAR's frame, with the joint log-variances (publish_variance).
        model = FusedModel(fused_dir, "onnxruntime", sensors=("camera", "scan"))
        experts = {s: model.encode_sensor(s, msg_to_model_input(m, model.configs[s])[None])
                   for s, m in (("camera", feeder.image), ("scan", feeder.scan))}
        joint_mean, joint_logvar = fuse(experts)
        camera_mean, _ = fuse({"camera": experts["camera"]})
        topic = f"{NS}/vae/latent_stamped"
        probe.clear(topic)
        assert wait_for(lambda: len(probe.messages(topic)) >= 3, 10.0)
        mean, logvar, head = stamped_msg_to_latent(probe.messages(topic)[-1])
        np.testing.assert_allclose(mean, joint_mean[0], atol=1e-4)
        assert logvar is not None
        np.testing.assert_allclose(logvar, joint_logvar[0], atol=1e-4)
        assert head.frame_id == "lidar_link"

        # The scan stops: after sensor_timeout the latents go on from the camera alone.
        feeder.scan_mode = "off"
        _await_sensors(probe, encoder, "camera")
        probe.clear(topic)
        assert wait_for(lambda: len(probe.messages(topic)) >= 3, 10.0), "latents stopped with the scan"
        mean, _, head = stamped_msg_to_latent(probe.messages(topic)[-1])
        np.testing.assert_allclose(mean, camera_mean[0], atol=1e-4)
        assert head.frame_id == "lidar_link"  # the scan's last frame: the decoded scan stays in the LiDAR's frame

        # Back: both again.
        feeder.scan_mode = "on"
        _await_sensors(probe, encoder, "camera,scan")

        # Garbage scans: rejected and counted, and the scan counts as silent.
        rejected_before = probe.diagnostic(ENCODER).count("rejected")  # type: ignore[union-attr]
        feeder.scan_mode = "garbage"
        _await_sensors(probe, encoder, "camera")
        values = probe.diagnostic_values(ENCODER)
        assert int(values["rejected"]) > rejected_before and "angle_increment" in values["last_rejection"]
        assert values["live_sensors"] == "camera"
        feeder.scan_mode = "on"
        _await_sensors(probe, encoder, "camera,scan")
    finally:
        feeder.close()
    assert encoder.poll() is None, "the encoder exited"


def test_stamps_that_never_pair_are_encoded_alone_and_said(probe: Probe, encoder: Any) -> None:
    feeder = Feeder(probe)
    try:
        feeder.camera_offset_ns = 1_000_000_000  # the camera's clock 1 s ahead of the LiDAR's
        send_until(lambda: None, lambda: probe.diagnostic_values(ENCODER).get("unpaired") == "yes",
                   "unpaired=yes in /diagnostics", 20.0, alive={"fused encoder": encoder})
        assert float(probe.diagnostic_values(ENCODER)["stamp_offset_s"]) == pytest.approx(-1.0, abs=0.15)
        # Each sensor alone, both still in the stream: latents keep coming, each at its own sensor's stamp.
        topic = f"{NS}/vae/latent_stamped"
        probe.clear(topic)
        assert wait_for(lambda: len(probe.messages(topic)) >= 6, 10.0)
        stamps = [stamp_ns(m) for m in probe.messages(topic)]
        assert max(stamps) - min(stamps) > 0.7e9, "both the camera's and the scan's stamps are published"
        feeder.camera_offset_ns = 0
        send_until(lambda: None, lambda: probe.diagnostic_values(ENCODER).get("unpaired") == "no"
                   and probe.diagnostic_values(ENCODER).get("sensors") == "camera,scan",
                   "pairs again", 20.0, alive={"fused encoder": encoder})
    finally:
        feeder.close()


def test_the_anomaly_score_cannot_be_switched_on_at_run_time(probe: Probe, encoder: Any) -> None:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = probe.node.create_client(SetParameters, f"{NS}/encoder_node/set_parameters")
    assert client.wait_for_service(timeout_sec=20.0)
    request = SetParameters.Request(parameters=[Parameter(name="publish_anomaly_score", value=ParameterValue(
        type=ParameterType.PARAMETER_BOOL, bool_value=True))])
    future = client.call_async(request)
    assert wait_for(future.done, 20.0)
    (result,) = future.result().results
    assert not result.successful and "not available for the fused model" in result.reason


def test_the_log_says_when_a_sensor_drops_out_and_comes_back(probe: Probe, encoder: Any) -> None:
    """Run last in the module: stops the encoder to read its log (one line each way, not one per message)."""
    output = stop_node(encoder)
    assert output.count("scan dropped out") >= 2, output  # silent, then garbage
    assert "scan is in" in output and "have not paired within sync_slop" in output
    assert output.count("scan dropped out") <= 3, "one line per drop-out, not one per message"


def test_a_sensor_timeout_shorter_than_the_sensors_period_does_not_flood_the_log(fused_dir: Path) -> None:
    """Camera and scan at 10 Hz, sensor_timeout 0.05 s (or a 3 Hz camera under the default 0.3 s): each sensor drops
    out between two of its messages and is back with the next, which the log said twice per message (20 lines a
    second per sensor, for good). After a few lines at most one per sensor every SENSOR_LOG_PERIOD_S, the flapping counted
    in it."""
    from vae_ros.ros.nodes.encoder_node import SENSOR_LOG_BURST, SENSOR_LOG_PERIOD_S

    ns = "/fused_flap"
    proc = start_node("encoder_node", "-r", f"__ns:={ns}", *param_args(
        model=fused_dir, backend="onnxruntime", threads=1, diagnostics_period=0.2, sensor_timeout=0.05))
    probe = recording_probe("fused_flap_probe")
    feeder = Feeder(probe, ns)
    began = time.monotonic()
    try:
        status = f"{ns}/encoder_node: encoder"
        send_until(lambda: None, lambda: probe.diagnostic(status) is not None and probe.diagnostic(status).count(
            "received") >= 80, "80 sensor messages received", 30.0, alive={"fused encoder": proc})
    finally:
        feeder.close()
        probe.close()
        output = stop_node(proc)
    elapsed = time.monotonic() - began
    lines = [line for line in output.splitlines() if "dropped out" in line or " is in" in line]
    # Two sensors, each a burst of lines and then one per period at most (and one more as the feed stops).
    bound = 2 * (SENSOR_LOG_BURST + elapsed / SENSOR_LOG_PERIOD_S + 1)
    assert 2 <= len(lines) <= bound, f"{len(lines)} lines in {elapsed:.1f} s"
    assert any("shorter than its period" in line for line in lines), "\n".join(lines)
    # And once per sensor, the measured period against sensor_timeout, with what to set (10 Hz: every 0.1 s).
    for sensor in ("camera", "scan"):
        slow = [line for line in output.splitlines() if f"{sensor} messages arrive every" in line]
        assert len(slow) == 1 and "not within sensor_timeout 0.05 s" in slow[0], output
        period = float(slow[0].split("arrive every ")[1].split(" s")[0])
        assert 0.05 <= period < 0.3, slow[0]


def test_decoder_publishes_the_image_and_the_scan_of_one_fused_latent(fused_dir: Path) -> None:
    from sensor_msgs.msg import Image, LaserScan

    from vae_ros.core.conversions.latent import latent_to_stamped_msg

    ns = "/fused_dec"
    proc = start_node("decoder_node", "-r", f"__ns:={ns}", *param_args(model=fused_dir, backend="onnxruntime"))
    probe = recording_probe("fused_dec_probe", (Image, f"{ns}/vae/reconstruction"), (LaserScan, f"{ns}/vae/scan"))
    try:
        publisher = probe.node.create_publisher(Image, f"{ns}/vae/latent_stamped", 10)
        latent = latent_to_stamped_msg(np.zeros(16, np.float32), None, header("lidar_link", 1_234_000_000))
        send_until(lambda: publisher.publish(latent),
                   lambda: probe.messages(f"{ns}/vae/reconstruction") and probe.messages(f"{ns}/vae/scan"),
                   "a reconstruction and a decoded scan", 30.0, alive={"fused decoder": proc})
        image, scan = probe.messages(f"{ns}/vae/reconstruction")[-1], probe.messages(f"{ns}/vae/scan")[-1]
        camera, lidar = FusedModel(fused_dir, "onnxruntime").configs["camera"], \
            FusedModel(fused_dir, "onnxruntime").configs["scan"]
        assert (image.encoding, image.height, image.width) == ("rgb8", camera.image_spec.height,
                                                               camera.image_spec.width)
        assert len(scan.ranges) == lidar.scan_spec.beams and scan.range_max == pytest.approx(lidar.scan_spec.range_max)
        assert stamp_ns(image) == stamp_ns(scan) == 1_234_000_000
        assert image.header.frame_id == scan.header.frame_id == "lidar_link"
    finally:
        probe.close()
        stop_processes([proc])


def _control_route(path: Path, fused_dir: Path) -> Path:
    """A route taught with the packaged control model's latents (its weights digest): the fused model whose LiDAR
    expert is that model repeats it."""
    from vae_ros.control.runtime.control_model import latent_model_dir
    from vae_ros.control.runtime.route import Route
    from vae_ros.core.backends import weights_digest
    from vae_ros.resources import models_dir
    from vae_ros.ros.route_file import save_route

    digest = weights_digest(models_dir() / "control_default")
    if weights_digest(latent_model_dir(fused_dir)) != digest:
        pytest.skip("this fused model's LiDAR expert is not models/control_default")
    count = 6
    poses = np.stack([np.arange(count) * 0.25, np.zeros(count), np.zeros(count)], axis=1)
    latents = np.random.default_rng(0).normal(0.0, 1.0, (count, 16)).astype(np.float32)
    meta = {"model_sha256": digest, "latent_dim": 16, "spacing_m": 0.25, "spacing_deg": 10.0,
            "latent_topic": "vae/latent_stamped", "odom_topic": "odom", "sources": ["test"]}
    save_route(Route(poses, latents, np.arange(count, dtype=np.int64) * 1_000_000_000, None, meta), path)
    return path


@pytest.mark.parametrize("node", ["latent_servo_node", "world_model_node", "route_follower_node"])
def test_controllers_start_on_a_fused_model(fused_dir: Path, node: str, tmp_path: Path) -> None:
    """Its latent size, range, tolerance, weights digest and dynamics are the LiDAR expert's (the joint latent is
    that expert's), the servo head the fused model's own."""
    from vae_ros.control.runtime.control_model import latent_model_dir
    from vae_ros.core.model_dir import DYNAMICS_DIR

    if node == "world_model_node" and not (latent_model_dir(fused_dir) / DYNAMICS_DIR).exists() \
            and not (fused_dir / DYNAMICS_DIR).exists():
        pytest.skip("no dynamics beside the fused model's LiDAR expert")
    extra = {"route": _control_route(tmp_path / "route", fused_dir)} if node == "route_follower_node" else {}
    ns = f"/fused_{node}"
    proc = start_node(node, "-r", f"__ns:={ns}", *param_args(model=fused_dir, **extra))
    probe = recording_probe(f"fused_{node}_probe")
    try:
        send_until(lambda: None, lambda: any(status.name.startswith(f"{ns}/{node}")
                                             for array in probe.messages("/diagnostics") for status in array.status),
                   f"{node}'s /diagnostics", 40.0, alive={node: proc})
    finally:
        probe.close()
        output = stop_node(proc)
    assert str(fused_dir) in output


def test_what_a_fused_model_cannot_do_is_refused_at_start_with_one_line(fused_dir: Path, tmp_path: Path) -> None:
    import shutil

    from vae_ros.core.fused import FusedConfig

    plain = tmp_path / "plain"  # a single-sensor model asked to be fused
    shutil.copytree(fused_dir / "scan", plain, ignore=shutil.ignore_patterns("dynamics"))
    no_scan = tmp_path / "camera_only"  # a fused model without the LiDAR's expert, for a controller
    shutil.copytree(fused_dir / "camera", no_scan / "camera")
    FusedConfig(("camera",), 16).save(no_scan)
    cases = {
        "modality:=image": ("encoder_node", dict(model=fused_dir, modality="image"),
                            "modality 'image' does not match the model's 'fused'"),
        "modality:=fused on a scan model": ("encoder_node", dict(model=plain, modality="fused"),
                                            "modality 'fused' does not match the model's 'scan'"),
        "anomaly score": ("encoder_node", dict(model=fused_dir, publish_anomaly_score=True),
                          "publish_anomaly_score is not available for the fused model"),
        "servo without scan": ("latent_servo_node", dict(model=no_scan), "has no scan expert"),
    }
    procs = {name: start_node(node, *param_args(**params)) for name, (node, params, _) in cases.items()}
    try:
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=90)
            lines = [line for line in out.splitlines() if line.strip()]
            assert proc.returncode == 2 and len(lines) == 1, (name, lines)
            assert lines[0].startswith(f"{cases[name][0]}: error:") and cases[name][2] in lines[0], (name, lines)
    finally:
        stop_processes(procs.values())


def _image_goal_episode(fused_dir: Path) -> dict[str, Any]:
    """A held-out servo episode (world 7919): the goal pose's camera frame, the start's fused latent (both sensors)
    and the camera expert's joint latent of the goal frame, computed here in the core."""
    from vae_ros.control.evaluation.episodes import sample_episodes
    from vae_ros.core.backends import load_config
    from vae_ros.core.preprocess import preprocess_image, preprocess_scan
    from vae_ros.sim.world import SimConfig, SimWorld

    fused = FusedModel(fused_dir, "onnxruntime", threads=1)
    image_spec, scan_spec = load_config(fused_dir / "camera").image_spec, load_config(fused_dir / "scan").scan_spec
    with SimWorld(SimConfig(seed=7919, image_width=128, image_height=128)) as world:
        episode = sample_episodes(world, 1, np.random.default_rng(3))[0]
        world.set_pose(*episode.goal)
        goal_frame = world.render()
        world.set_pose(*episode.start)
        geo = world.scan_geometry
        start = {"camera": preprocess_image(world.render(), image_spec)[None],
                 "scan": preprocess_scan(world.scan(), geo.angle_min, geo.angle_increment, geo.range_min,
                                         geo.range_max, scan_spec)[None]}
    z_start = fuse({s: fused.encode_sensor(s, b) for s, b in start.items()})[0][0]
    z_goal = fused.encode_sensor("camera", preprocess_image(goal_frame, image_spec)[None])[0][0]
    return {"goal_frame": goal_frame, "z_start": z_start, "z_goal": z_goal}


@pytest.mark.parametrize(("node", "via"), [("latent_servo_node", "topic"), ("world_model_node", "parameter")])
def test_a_goal_image_becomes_the_camera_experts_joint_latent_and_the_robot_moves(
        fused_dir: Path, node: str, via: str, tmp_path: Path) -> None:
    """A fused controller given only a goal image (servo/goal_image, or the goal_image parameter) that it cannot
    align with its live view takes the camera expert's posterior mean of it as the goal (no remembered view matches
    it: none was seen), says so once, and drives: its latent error is |z_now - camera expert(goal image)|, its
    commands nonzero. The servo aligns (goal_align, the default) but no camera frame comes to pair with a scan: it
    falls back after goal_align's wait and says why; the world model has goal_align:=false (test_goal_align_nodes
    covers the alignment)."""
    import cv2
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image

    from vae_ros.control.runtime.control_model import latent_model_dir
    from vae_ros.core.conversions.latent import latent_to_stamped_msg
    from vae_ros.core.model_dir import DYNAMICS_DIR
    from vae_ros.ros.qos import LATENT_QOS, SENSOR_QOS
    from vae_ros.ros.sim_messages import image_msg

    if node == "world_model_node" and not (latent_model_dir(fused_dir) / DYNAMICS_DIR).exists() \
            and not (fused_dir / DYNAMICS_DIR).exists():
        pytest.skip("no dynamics beside the fused model's LiDAR expert")
    case = _image_goal_episode(fused_dir)
    expected_error = float(np.linalg.norm(case["z_start"] - case["z_goal"]))
    ns = f"/image_goal_{node}"
    params: dict[str, Any] = {"model": fused_dir, "diagnostics_period": 0.2}
    if node == "world_model_node":
        params["goal_align"] = False
    if via == "parameter":
        path = tmp_path / "goal.png"
        cv2.imwrite(str(path), cv2.cvtColor(case["goal_frame"], cv2.COLOR_RGB2BGR))
        params["goal_image"] = path
    proc = start_node(node, "-r", f"__ns:={ns}", *param_args(**params))
    probe = recording_probe(f"image_goal_{node}_probe", (Twist, f"{ns}/cmd_vel"))
    latent_pub = probe.node.create_publisher(Image, f"{ns}/vae/latent_stamped", LATENT_QOS)
    scan_pub = probe.node.create_publisher(type(scan_msg(header())), f"{ns}/scan", SENSOR_QOS)
    goal_pub = probe.node.create_publisher(Image, f"{ns}/servo/goal_image", LATENT_QOS)
    status_name = f"{ns}/{node}: {'latent servo' if node == 'latent_servo_node' else 'world model'}"

    def feed() -> None:  # the robot standing at the start: its fused latent and a free scan, stamped now
        now = probe.node.get_clock().now().nanoseconds
        scan_pub.publish(scan_msg(header("lidar_link", now)))
        latent_pub.publish(latent_to_stamped_msg(case["z_start"], None, header("lidar_link", now)))

    timer = probe.node.create_timer(0.1, feed)
    try:
        def goal_taken() -> bool:
            values = probe.diagnostic_values(status_name)
            return "camera expert" in values.get("goal_source", "") and values.get("latent_error", "none") != "none"

        send = (lambda: None) if via == "parameter" else (
            lambda: goal_pub.publish(image_msg(case["goal_frame"], probe.header("camera_optical_frame").stamp)))
        send_until(send, goal_taken, lambda: f"the camera expert's goal in {status_name} "
                   f"(last: {probe.diagnostic_values(status_name)})", 60.0,
                   # Each goal image restarts the alignment's 5 s wait for a paired frame and scan: resend less often.
                   period=8.0 if node == "latent_servo_node" else 2.0, alive={node: proc})
        values = probe.diagnostic_values(status_name)
        assert float(values["latent_error"]) == pytest.approx(expected_error, rel=1e-3, abs=1e-3), values
        assert values["goal_image"].startswith("camera expert's latent until a view matches"), values
        assert values["goal_align"] == ("off" if node == "world_model_node" else
                                        "fell back: no camera frame on camera/image_raw and scan on scan stamped "
                                        "within 0.05 s of each other in 5 s"), values

        def moving() -> bool:
            return any(abs(m.linear.x) > 1e-4 or abs(m.angular.z) > 1e-4 for m in probe.messages(f"{ns}/cmd_vel"))

        send_until(lambda: None, moving, f"a nonzero command on {ns}/cmd_vel", 60.0, alive={node: proc})
    finally:
        timer.cancel()
        probe.close()
        output = stop_node(proc)
    said = [line for line in output.splitlines() if "new goal from" in line]
    assert len(said) == 1 and "camera expert's joint latent" in said[0], said
    if node == "latent_servo_node":
        why = [line for line in output.splitlines() if "not aligned" in line]
        assert len(why) == 1 and "no camera frame" in why[0], why
