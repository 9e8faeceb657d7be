"""encoder_node with preprocess:=device over real ROS 2, on the CPU's torch (the path a GPU takes with
device:=cuda, on another device): a bgr8 frame resized by a non-integer factor gives the latent and anomaly score
of the NumPy path, the log and /diagnostics say where it preprocessed, and a setting that cannot run is refused at
start with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from node_helpers import (
    closest_latent,
    image_sender,
    make_model_dir,
    node_env,
    param_args,
    recording_probe,
    send_until,
    start_node,
    stop_node,
)

from vae_ros.core.anomaly import anomaly_score
from vae_ros.core.backends import create_backend
from vae_ros.core.conversions.image import array_to_image_msg
from vae_ros.core.conversions.model_input import msg_to_model_input

pytestmark = pytest.mark.ros

NAMESPACE = "/enc_dev"
TOL = 1e-4  # the device path's input is the NumPy path's within one grey level on rare pixels


def test_preprocess_device_publishes_the_numpy_paths_latent_and_score(tmp_path: Path) -> None:
    from std_msgs.msg import Float32, Float32MultiArray

    model = make_model_dir(tmp_path / "image", "image", latent_dim=8, seed=2)
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)  # to 32x32: 1.875x and 2.5x
    msg = array_to_image_msg(pixels, "bgr8")
    reference = create_backend(model, "torch", "cpu")
    x = msg_to_model_input(msg, reference.config)[None]
    mean, logvar = reference.encode(x)
    expected_score = anomaly_score(x, reference.decode(mean), mean, logvar, reference.config, "reconstruction")
    node = start_node("encoder_node", "-r", f"__ns:={NAMESPACE}",
                      *param_args(model=model, backend="torch", device="cpu", preprocess="device",
                                  publish_anomaly_score=True, diagnostics_period=0.3))
    probe = recording_probe("encoder_preprocess_probe", (Float32MultiArray, f"{NAMESPACE}/vae/latent"),
                            (Float32, f"{NAMESPACE}/vae/anomaly_score"))
    send = image_sender(probe, f"{NAMESPACE}/camera/image_raw", msg)
    closest = [np.inf]

    def matched() -> bool:
        closest[0] = closest_latent(probe, f"{NAMESPACE}/vae/latent", mean[0])
        return closest[0] <= TOL and bool(probe.messages(f"{NAMESPACE}/vae/anomaly_score"))

    try:
        send_until(send, matched, lambda: f"a latent within {TOL} of the NumPy path's (closest {closest[0]:.3g}) and "
                   "a score", 60.0, alive={"encoder_node": node})
        scores = [m.data for m in probe.messages(f"{NAMESPACE}/vae/anomaly_score")]
        assert min(abs(s - expected_score) for s in scores) <= 1e-4 * max(1.0, abs(expected_score)), scores
        assert probe.wait_for(lambda: any(
            d.values.get("preprocess") == "device cpu" for d in probe.diagnostics(f"{NAMESPACE}/encoder_node: encoder")
            ), 10.0), [d.values for d in probe.diagnostics(f"{NAMESPACE}/encoder_node: encoder")][-1:]
    finally:
        probe.close()
        log = stop_node(node)
    assert "preprocessing on device cpu" in log, log[-2000:]


def test_preprocess_device_for_a_scan_model_is_refused_in_one_line(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "scan", "scan", latent_dim=4)
    cmd = [sys.executable, "-m", "vae_ros.ros.nodes.encoder_node", "--ros-args",
           *param_args(model=model, backend="torch", preprocess="device")]
    done = subprocess.run(cmd, env=node_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "preprocess 'device' is for image models" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
