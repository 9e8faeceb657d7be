"""LiDAR between robots (issue 12): a robot encodes, a base station decodes, in separate processes and
namespaces over real DDS, the base subscribed to the robot's stamped latents by remapping.

robot1 runs encoder_node (packaged scan model) on /robot1/scan; "base" runs decoder_node with
vae/latent_stamped remapped to /robot1/vae/latent_stamped, as launch/base_station.launch.py does. The
decoded LaserScan on /base/vae/scan must carry the scan's own stamp and frame_id and lie within the
model's error of the original. robot2 / base2 do the same for a point cloud (packaged pointcloud model).
Inputs come from the simulator the packaged models were trained on, so they are in distribution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import ros_env
from node_helpers import Probe, header, param_args, send_until, stamp_ns, start_node, stop_node

from vae_ros.core.backends import create_backend
from vae_ros.core.conversions.lidar import (
    decoded_scan_ranges,
    pointcloud_msg_to_xyz,
    scan_msg_to_input,
    scan_to_msg,
    xyz_to_pointcloud_msg,
)
from vae_ros.core.conversions.model_input import msg_to_model_input
from vae_ros.core.preprocess import preprocess_pointcloud

pytestmark = pytest.mark.ros

MODELS = ros_env.REPO / "models"
BACKEND = "onnxruntime"  # the same runtime on both sides and offline, so the plumbing check can be exact
# The packaged models' held-out range MAE is 0.31 m (scan) and 0.23 m (point cloud) (model.json,
# training.heldout_eval); the median absolute error over valid beams is well below the mean.
MEDIAN_TOLERANCE_M = 0.6
SENSOR_STAMP = (1_700_000_123, 456_789_000)
SENSOR_NS = SENSOR_STAMP[0] * 1_000_000_000 + SENSOR_STAMP[1]


@pytest.fixture(scope="module")
def nodes() -> Any:
    procs: dict[str, Any] = {}
    try:
        for robot, base, model in (("robot1", "base", "scan_default"), ("robot2", "base2", "pointcloud_default")):
            procs[robot] = start_node("encoder_node", "-r", f"__ns:=/{robot}",
                                      *param_args(model=MODELS / model, backend=BACKEND))
            procs[base] = start_node("decoder_node", "-r", f"__ns:=/{base}",
                                     "-r", f"vae/latent_stamped:=/{robot}/vae/latent_stamped",
                                     *param_args(model=MODELS / model, backend=BACKEND))
        yield procs
    finally:
        for proc in procs.values():
            stop_node(proc)


@pytest.fixture(scope="module")
def probe(nodes: Any) -> Any:
    from sensor_msgs.msg import LaserScan, PointCloud2

    probe = Probe("across_machines_probe")
    probe.record(LaserScan, "/base/vae/scan")
    probe.record(PointCloud2, "/base2/vae/points")
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def world() -> Any:
    from vae_ros.sim.world import SimConfig, SimWorld

    with SimWorld(SimConfig(seed=0)) as sim:
        sim.set_pose(0.4, -0.3, 0.6)
        yield sim


def _sensor_stamp() -> Any:
    return header(stamp_ns=SENSOR_NS).stamp


def _publish_until(probe: Probe, nodes: Any, topic: str, msg: Any, out: str, timeout: float = 60.0) -> Any:
    """Publish msg on topic (every 0.5 s, the same stamp) until a message with that stamp arrives on `out`."""
    publisher = probe.node.create_publisher(type(msg), topic, 10)
    try:
        return send_until(lambda: publisher.publish(msg),
                          lambda: next((got for got in probe.messages(out) if stamp_ns(got) == SENSOR_NS), None),
                          f"something with the sensor stamp {SENSOR_STAMP} on {out}", timeout, alive=nodes)
    finally:
        probe.node.destroy_publisher(publisher)


def test_robot_scan_arrives_decoded_at_the_base_in_its_stamp_and_frame(probe: Probe, nodes: Any,
                                                                       world: Any) -> None:
    geometry = world.scan_geometry
    scan = scan_to_msg(world.scan(), geometry.angle_min, geometry.angle_increment, geometry.range_min,
                       geometry.range_max, frame_id="robot1/base_scan", stamp=_sensor_stamp())
    decoded = _publish_until(probe, nodes, "/robot1/scan", scan, "/base/vae/scan")
    assert decoded.header.frame_id == "robot1/base_scan"

    backend = create_backend(MODELS / "scan_default", BACKEND)
    spec = backend.config.scan_spec
    ranges = np.asarray(decoded.ranges, dtype=np.float32)  # (beams,) at the model's bin centres
    # Plumbing: exactly what this model makes of this scan offline (encode, decode, no-return rule).
    mean, _ = backend.encode(msg_to_model_input(scan, backend.config)[None])
    np.testing.assert_allclose(ranges, decoded_scan_ranges(backend.decode(mean)[0], spec), rtol=1e-4, atol=1e-4)
    # Quality: within the model's error of the original, beam by beam in the model's bins.
    original = scan_msg_to_input(scan, spec)  # (2, beams): range / range_max, mask
    valid = (original[1] > 0) & np.isfinite(ranges)
    assert valid.mean() > 0.9, valid.mean()  # the simulator's room returns nearly every beam
    errors = np.abs(ranges[valid] - original[0, valid] * spec.range_max)
    assert float(np.median(errors)) < MEDIAN_TOLERANCE_M, (np.median(errors), errors.mean())


def test_robot_cloud_arrives_decoded_at_the_base_in_its_stamp_and_frame(probe: Probe, nodes: Any,
                                                                        world: Any) -> None:
    points = world.pointcloud()  # (rings * columns, 3), NaN for no return
    cloud = xyz_to_pointcloud_msg(points, frame_id="robot2/lidar_link", stamp=_sensor_stamp())
    decoded = _publish_until(probe, nodes, "/robot2/lidar/points", cloud, "/base2/vae/points")
    assert decoded.header.frame_id == "robot2/lidar_link"
    assert [f.name for f in decoded.fields] == ["x", "y", "z", "ring"]

    spec = create_backend(MODELS / "pointcloud_default", BACKEND).config.pointcloud_spec
    original = preprocess_pointcloud(points, spec)  # (2, rows, cols)
    again = preprocess_pointcloud(pointcloud_msg_to_xyz(decoded), spec)  # the decoded points, pixel by pixel
    valid = (original[1] > 0) & (again[1] > 0)
    assert valid.sum() > 0.8 * original[1].sum(), (valid.sum(), original[1].sum())
    errors = np.abs(again[0][valid] - original[0][valid]) * spec.range_max
    assert float(np.median(errors)) < MEDIAN_TOLERANCE_M, (np.median(errors), errors.mean())
