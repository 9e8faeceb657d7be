"""decoder_node over real ROS 2: latents in, reconstructions out; generation mode; bad latents survived."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from node_helpers import Probe, make_model_dir, param_args, start_node, stop_node

from vae_ros.conversions import image_msg_to_array, latent_to_msg
from vae_ros.core.backends import create_backend
from vae_ros.decoder_node import reconstruction_to_image

pytestmark = pytest.mark.ros

NS_DECODE, NS_GENERATE, NS_SCAN = "/dec", "/gen", "/dec_scan"
LATENT_DIM = 6
SEED = 11


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("decoder_models")
    return {
        "image": make_model_dir(root / "image", "image", latent_dim=LATENT_DIM, seed=4),
        "scan": make_model_dir(root / "scan", "scan", latent_dim=4, seed=5, beams=64),
    }


@pytest.fixture(scope="module")
def nodes(models: dict[str, Any]) -> Any:
    procs = {
        "decode": start_node("decoder_node", "-r", f"__ns:={NS_DECODE}", *param_args(
            model=models["image"], backend="torch", frame_id="camera_vae", diagnostics_period=0.5)),
        "generate": start_node("decoder_node", "-r", f"__ns:={NS_GENERATE}", *param_args(
            model=models["image"], backend="torch", generate=True, generate_rate=5.0, seed=SEED)),
        "scan": start_node("decoder_node", "-r", f"__ns:={NS_SCAN}", *param_args(
            model=models["scan"], backend="torch")),
    }
    yield procs
    for proc in procs.values():
        stop_node(proc)


@pytest.fixture(scope="module")
def probe(nodes: Any) -> Any:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    probe = Probe("decoder_test_probe")
    for ns in (NS_DECODE, NS_GENERATE, NS_SCAN):
        probe.record(Image, f"{ns}/vae/reconstruction")
    probe.record(DiagnosticArray, "/diagnostics")
    yield probe
    probe.close()


def _send_until_image(probe: Probe, nodes: Any, ns: str, latent_msg: Any, expected: np.ndarray,
                      timeout: float = 30.0) -> Any:
    """Publish the latent (every 0.5 s until matched) until a reconstruction equal to `expected` arrives."""
    from std_msgs.msg import Float32MultiArray

    topic = f"{ns}/vae/latent"
    if topic not in probe.publishers:
        probe.publishers[topic] = probe.node.create_publisher(Float32MultiArray, topic, 10)
    out = f"{ns}/vae/reconstruction"
    probe.clear(out)
    deadline, last = time.monotonic() + timeout, -1.0
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in nodes.values())
        if time.monotonic() - last > 0.5:
            probe.publishers[topic].publish(latent_msg)
            last = time.monotonic()
        for msg in probe.messages(out):
            got = image_msg_to_array(msg)
            if got.shape == expected.shape and np.array_equal(got, expected) or (
                got.dtype == np.float32 and got.shape == expected.shape and np.allclose(got, expected, atol=1e-5)
            ):
                return msg
        time.sleep(0.02)
    pytest.fail(f"no reconstruction equal to the offline one on {out}")


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
    bad = [too_long, nan, bad_layout, size_mismatch]
    publisher = probe.publishers[f"{NS_DECODE}/vae/latent"]
    for msg in bad:
        publisher.publish(msg)
        time.sleep(0.1)
    z2 = -z
    expected2, _ = reconstruction_to_image(backend.decode(z2[None])[0], backend.config)
    _send_until_image(probe, nodes, NS_DECODE, latent_to_msg(z2), expected2)

    name = f"{NS_DECODE}/decoder_node: decoder"

    def rejected() -> int:
        for array in reversed(probe.messages("/diagnostics")):
            for status in array.status:
                if status.name == name:
                    return int({kv.key: kv.value for kv in status.values}["rejected"])
        return -1

    assert probe.wait_for(lambda: rejected() >= len(bad), timeout=10.0), rejected()
    assert rejected() == len(bad)


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
