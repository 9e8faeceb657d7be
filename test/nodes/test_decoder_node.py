"""decoder_node over real ROS 2: latents (plain and stamped) in, reconstructions and decoded LiDAR
(LaserScan, PointCloud2) out, in the latent's stamp and frame; generation mode; bad latents survived."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from node_helpers import (
    Probe,
    header,
    make_model_dir,
    param_args,
    recording_probe,
    send_each_until_counted,
    send_until,
    start_node,
    stop_node,
)

from vae_ros.core.backends import create_backend
from vae_ros.core.conversions.image import image_msg_to_array
from vae_ros.core.conversions.latent import latent_to_msg, latent_to_stamped_msg
from vae_ros.core.conversions.lidar import (
    NO_RETURN_FRACTION,
    decoded_range_image_to_points,
    decoded_scan_ranges,
    pointcloud_msg_to_xyz,
)
from vae_ros.ros.nodes.decoder_node import reconstruction_to_image

pytestmark = pytest.mark.ros

NS_DECODE, NS_GENERATE, NS_SCAN, NS_POINTS = "/dec", "/gen", "/dec_scan", "/dec_points"
SCAN_FRAME = "lidar_link"
LATENT_DIM = 6
SEED = 11


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("decoder_models")
    return {
        "image": make_model_dir(root / "image", "image", latent_dim=LATENT_DIM, seed=4),
        "scan": make_model_dir(root / "scan", "scan", latent_dim=4, seed=5, beams=64),
        "pointcloud": make_model_dir(root / "pointcloud", "pointcloud", latent_dim=5, seed=6),
    }


@pytest.fixture(scope="module")
def nodes(models: dict[str, Any]) -> Any:
    procs = {
        "decode": start_node("decoder_node", "-r", f"__ns:={NS_DECODE}", *param_args(
            model=models["image"], backend="torch", frame_id="camera_vae", diagnostics_period=0.5)),
        "generate": start_node("decoder_node", "-r", f"__ns:={NS_GENERATE}", *param_args(
            model=models["image"], backend="torch", generate=True, generate_rate=5.0, seed=SEED)),
        "scan": start_node("decoder_node", "-r", f"__ns:={NS_SCAN}", *param_args(
            model=models["scan"], backend="torch", frame_id=SCAN_FRAME, diagnostics_period=0.5)),
        "points": start_node("decoder_node", "-r", f"__ns:={NS_POINTS}", *param_args(
            model=models["pointcloud"], backend="torch")),
    }
    yield procs
    for proc in procs.values():
        stop_node(proc)


@pytest.fixture(scope="module")
def probe(nodes: Any) -> Any:
    from sensor_msgs.msg import Image, LaserScan, PointCloud2

    probe = recording_probe("decoder_test_probe",
                            *[(Image, f"{ns}/vae/reconstruction") for ns in (NS_DECODE, NS_GENERATE, NS_SCAN, NS_POINTS)],
                            (LaserScan, f"{NS_SCAN}/vae/scan"), (PointCloud2, f"{NS_POINTS}/vae/points"))
    yield probe
    probe.close()


def _send_until_image(probe: Probe, nodes: Any, ns: str, latent_msg: Any, expected: np.ndarray,
                      timeout: float = 30.0) -> Any:
    """Publish the latent (every 0.5 s until matched) until a reconstruction equal to `expected` arrives."""

    def equal(msg: Any) -> bool:
        got = image_msg_to_array(msg)
        return got.shape == expected.shape and np.array_equal(got, expected) or (
            got.dtype == np.float32 and got.shape == expected.shape and np.allclose(got, expected, atol=1e-5))

    return _send_until(probe, nodes, f"{ns}/vae/latent", latent_msg, f"{ns}/vae/reconstruction", equal, timeout,
                       what="a reconstruction equal to the offline one")


def test_latent_to_reconstruction_matches_offline_decode(probe: Probe, nodes: Any, models: Any) -> None:
    backend = create_backend(models["image"], "torch")
    z = np.linspace(-1.5, 1.5, LATENT_DIM, dtype=np.float32)
    expected, encoding = reconstruction_to_image(backend.decode(z[None])[0], backend.config)
    assert encoding == "rgb8" and expected.shape == (32, 32, 3)
    msg = _send_until_image(probe, nodes, NS_DECODE, latent_to_msg(z), expected)
    assert msg.encoding == "rgb8" and msg.header.frame_id == "camera_vae"
    # The variance block is accepted and ignored.
    _send_until_image(probe, nodes, NS_DECODE, latent_to_msg(z, np.zeros(LATENT_DIM, np.float32)), expected)


def test_scan_model_publishes_ranges_in_metres(probe: Probe, nodes: Any, models: Any) -> None:
    backend = create_backend(models["scan"], "torch")
    z = np.array([0.3, -0.2, 1.0, 0.0], dtype=np.float32)
    decoded = backend.decode(z[None])[0]  # (1, 64) in [0, 1]
    expected, encoding = reconstruction_to_image(decoded, backend.config)
    assert encoding == "32FC1" and expected.shape == (1, 64)
    np.testing.assert_allclose(expected[0], decoded[0] * backend.config.scan_spec.range_max, rtol=1e-6)
    msg = _send_until_image(probe, nodes, NS_SCAN, latent_to_msg(z), expected)
    assert msg.encoding == "32FC1"


def test_wrong_latents_are_rejected_and_counted(probe: Probe, nodes: Any, models: Any) -> None:
    from std_msgs.msg import Float32MultiArray, MultiArrayDimension

    backend = create_backend(models["image"], "torch")
    z = np.full(LATENT_DIM, 0.25, np.float32)
    expected, _ = reconstruction_to_image(backend.decode(z[None])[0], backend.config)
    _send_until_image(probe, nodes, NS_DECODE, latent_to_msg(z), expected)

    too_long = latent_to_msg(np.zeros(LATENT_DIM + 3, np.float32))
    nan = Float32MultiArray(data=[float("nan")] * LATENT_DIM)
    bad_layout = Float32MultiArray(data=[0.0] * LATENT_DIM)
    bad_layout.layout.dim = [MultiArrayDimension(label="pixels", size=LATENT_DIM, stride=LATENT_DIM)]
    size_mismatch = latent_to_msg(z)
    size_mismatch.data = size_mismatch.data[:-1]
    overflow = latent_to_msg(np.full(LATENT_DIM, 3e38, np.float32))  # finite, but the decoder overflows to NaN
    bad = [too_long, nan, bad_layout, size_mismatch, overflow]
    name = f"{NS_DECODE}/decoder_node: decoder"
    send_each_until_counted(probe, probe.publishers[f"{NS_DECODE}/vae/latent"], bad, lambda: _rejected(probe, name))
    z2 = -z
    expected2, _ = reconstruction_to_image(backend.decode(z2[None])[0], backend.config)
    _send_until_image(probe, nodes, NS_DECODE, latent_to_msg(z2), expected2)
    assert _rejected(probe, name) == len(bad)


def test_generation_samples_the_seeded_prior(probe: Probe, nodes: Any, models: Any) -> None:
    topic = f"{NS_GENERATE}/vae/reconstruction"
    assert probe.wait_for(lambda: len(probe.messages(topic)) >= 3, timeout=30.0)
    backend = create_backend(models["image"], "torch")
    rng = np.random.default_rng(SEED)
    samples = rng.standard_normal((50, LATENT_DIM)).astype(np.float32)  # the node's first 50 draws
    expected = [reconstruction_to_image(backend.decode(z[None])[0], backend.config)[0] for z in samples]
    received = [image_msg_to_array(m) for m in probe.messages(topic)]
    # Every generated image is the decoding of one of the seeded draws, in order.
    indices = [next((i for i, e in enumerate(expected) if np.array_equal(r, e)), None) for r in received]
    assert None not in indices, indices
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in probe.messages(topic)]
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 2.5 < rate < 7.5  # generate_rate 5 Hz


# -- stamped latents and decoded LiDAR ---------------------------------------------------------------------
SENSOR_STAMP = (1_234_567, 890_123)  # far from the node's clock: it can only have come from the latent


def _sensor_header(frame_id: str) -> Any:
    return header(frame_id, SENSOR_STAMP[0] * 1_000_000_000 + SENSOR_STAMP[1])


def _stamp(msg: Any) -> tuple[int, int]:
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


def _send_until(probe: Probe, nodes: Any, topic: str, latent_msg: Any, out: str,
                accept: Any, timeout: float = 30.0, what: str = "") -> Any:
    """Publish latent_msg on topic (every 0.5 s) until a message on `out` satisfies accept(msg); returns it."""
    if topic not in probe.publishers:
        probe.publishers[topic] = probe.node.create_publisher(type(latent_msg), topic, 10)
    probe.clear(out)
    return send_until(lambda: probe.publishers[topic].publish(latent_msg),
                      lambda: next((msg for msg in probe.messages(out) if accept(msg)), None),
                      f"{what or 'an acceptable message'} on {out}", timeout, alive=nodes)


def _expected_scan(models: Any, z: np.ndarray) -> np.ndarray:
    backend = create_backend(models["scan"], "torch")
    return decoded_scan_ranges(backend.decode(z[None])[0], backend.config.scan_spec)  # (beams,), +inf = none


def _same_ranges(expected: np.ndarray) -> Any:
    def accept(msg: Any) -> bool:
        got = np.asarray(msg.ranges, dtype=np.float32)
        return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=1e-5, equal_nan=False))
    return accept


def test_unstamped_latent_gives_a_scan_in_the_node_clock_and_frame(probe: Probe, nodes: Any, models: Any) -> None:
    z = np.array([0.5, -0.5, 0.25, 1.0], dtype=np.float32)
    expected = _expected_scan(models, z)
    before = time.time()
    scan = _send_until(probe, nodes, f"{NS_SCAN}/vae/latent", latent_to_msg(z), f"{NS_SCAN}/vae/scan",
                       _same_ranges(expected))
    assert scan.header.frame_id == SCAN_FRAME
    assert abs(scan.header.stamp.sec + scan.header.stamp.nanosec * 1e-9 - before) < 60.0  # the node's clock
    config = create_backend(models["scan"], "torch").config.scan_spec
    width = (config.angle_max - config.angle_min) / config.beams
    assert scan.angle_min == pytest.approx(config.angle_min + width / 2, abs=1e-6)
    assert scan.angle_increment == pytest.approx(width, rel=1e-6)
    assert scan.range_max == pytest.approx(config.range_max)


def test_stamped_latent_gives_scan_and_reconstruction_in_the_sensor_stamp_and_frame(
        probe: Probe, nodes: Any, models: Any) -> None:
    z = np.array([0.3, -0.2, 1.0, 0.0], dtype=np.float32)
    expected = _expected_scan(models, z)
    stamped = latent_to_stamped_msg(z, None, _sensor_header("robot7/laser"))
    scan = _send_until(probe, nodes, f"{NS_SCAN}/vae/latent_stamped", stamped, f"{NS_SCAN}/vae/scan",
                       _same_ranges(expected))
    assert (_stamp(scan), scan.header.frame_id) == (SENSOR_STAMP, "robot7/laser")
    # The reconstruction image of the same latent carries the same header.
    assert probe.wait_for(lambda: any(_stamp(m) == SENSOR_STAMP and m.header.frame_id == "robot7/laser"
                                      for m in probe.messages(f"{NS_SCAN}/vae/reconstruction")), timeout=10.0)
    # With the variance row (publish_variance:=true on the encoder): the same means, the same scan.
    with_variance = latent_to_stamped_msg(z, np.full(4, -1.0, np.float32), _sensor_header("robot7/laser"))
    assert with_variance.height == 2
    _send_until(probe, nodes, f"{NS_SCAN}/vae/latent_stamped", with_variance, f"{NS_SCAN}/vae/scan",
                _same_ranges(expected))


def test_pointcloud_model_publishes_points_with_ring_in_the_sensor_frame(
        probe: Probe, nodes: Any, models: Any) -> None:
    backend = create_backend(models["pointcloud"], "torch")
    z = np.array([0.2, -0.4, 0.6, 0.0, -1.0], dtype=np.float32)
    x_hat = backend.decode(z[None])[0]  # (1, rows, cols)
    xyz, ring = decoded_range_image_to_points(x_hat, backend.config.pointcloud_spec)
    assert xyz.shape[0] == int((x_hat[0] < NO_RETURN_FRACTION).sum()) > 0

    def same_cloud(msg: Any) -> bool:
        got = pointcloud_msg_to_xyz(msg)
        return got.shape == xyz.shape and bool(np.allclose(got, xyz, atol=1e-5))

    stamped = latent_to_stamped_msg(z, None, _sensor_header("robot7/lidar"))
    cloud = _send_until(probe, nodes, f"{NS_POINTS}/vae/latent_stamped", stamped, f"{NS_POINTS}/vae/points",
                        same_cloud)
    assert (_stamp(cloud), cloud.header.frame_id) == (SENSOR_STAMP, "robot7/lidar")
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields][-1] == ("ring", 12, 4)  # UINT16
    rings = np.frombuffer(bytes(cloud.data), dtype=np.dtype({"names": ["ring"], "formats": ["<u2"],
                                                             "offsets": [12], "itemsize": 16}))
    np.testing.assert_array_equal(rings["ring"], ring)


def test_bad_stamped_latents_are_rejected_and_counted(probe: Probe, nodes: Any, models: Any) -> None:
    z = np.array([0.1, 0.2, -0.3, 0.4], dtype=np.float32)
    topic = f"{NS_SCAN}/vae/latent_stamped"
    good = latent_to_stamped_msg(z, None, _sensor_header("robot7/laser"))
    _send_until(probe, nodes, topic, good, f"{NS_SCAN}/vae/scan", _same_ranges(_expected_scan(models, z)))
    name = f"{NS_SCAN}/decoder_node: decoder"
    rejected_before = _rejected(probe, name)

    wrong_width = latent_to_stamped_msg(np.zeros(7, np.float32), None, _sensor_header("robot7/laser"))
    wrong_encoding = latent_to_stamped_msg(z, None, _sensor_header("robot7/laser"))
    wrong_encoding.encoding = "mono8"
    camera_image = latent_to_stamped_msg(z, None, _sensor_header("camera"))
    camera_image.height, camera_image.step = 3, 16  # a 3-row image is no latent layout
    bad = [wrong_width, wrong_encoding, camera_image]
    send_each_until_counted(probe, probe.publishers[topic], bad, lambda: _rejected(probe, name))
    # The node keeps running and decodes the next good latent.
    z2 = -z
    _send_until(probe, nodes, topic, latent_to_stamped_msg(z2, None, _sensor_header("robot7/laser")),
                f"{NS_SCAN}/vae/scan", _same_ranges(_expected_scan(models, z2)))
    assert probe.wait_for(lambda: _rejected(probe, name) - rejected_before >= len(bad), timeout=10.0)
    assert _rejected(probe, name) - rejected_before == len(bad)
    assert nodes["scan"].poll() is None


def _rejected(probe: Probe, name: str) -> int:
    found = probe.diagnostic(name)
    return int(found.values["rejected"]) if found else 0


def _last_rejection(probe: Probe, name: str) -> str:
    return probe.diagnostic_values(name).get("last_rejection", "")


def test_latents_outside_the_models_range_are_rejected_not_decoded(probe: Probe, nodes: Any, models: Any) -> None:
    """A 1e30 latent decodes to a scan of +inf beams ("nothing there"): refused before decoding, counted, and
    no LaserScan is published for it (issue 21)."""
    topic, scan_topic = f"{NS_SCAN}/vae/latent_stamped", f"{NS_SCAN}/vae/scan"
    z = np.array([0.1, 0.2, -0.3, 0.4], dtype=np.float32)
    _send_until(probe, nodes, topic, latent_to_stamped_msg(z, None, _sensor_header("robot7/laser")), scan_topic,
                _same_ranges(_expected_scan(models, z)))
    name = f"{NS_SCAN}/decoder_node: decoder"
    absurd = [np.full(4, 1e30, np.float32), np.array([0.0, -1e30, 0.0, 0.0], np.float32),
              np.full(4, 3e38, np.float32), np.full(4, 1e4, np.float32)]
    probe.clear(scan_topic)
    send_each_until_counted(probe, probe.publishers[topic],
                            [latent_to_stamped_msg(a, None, _sensor_header("robot7/laser")) for a in absurd],
                            lambda: _rejected(probe, name))
    assert "outside the model's latent range" in _last_rejection(probe, name)
    # Each was counted before anything else was sent: had one been decoded, its scan would be here by now.
    assert not probe.messages(scan_topic), [np.asarray(m.ranges)[:4] for m in probe.messages(scan_topic)]
    assert nodes["scan"].poll() is None
