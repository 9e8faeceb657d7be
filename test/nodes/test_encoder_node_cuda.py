"""encoder_node with device:=cuda over real ROS 2 (marked gpu and ros: skipped, with the reason, without a CUDA
device; scripts/gpu_check.sh runs it where rclpy imports): backend auto picks a CUDA runtime, says which in its log,
and its latents match the CPU's torch backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from node_helpers import (
    closest_latent,
    image_sender,
    make_model_dir,
    param_args,
    recording_probe,
    send_until,
    start_node,
    stop_node,
)

from vae_ros.core.backends import create_backend
from vae_ros.core.conversions.image import array_to_image_msg
from vae_ros.core.conversions.model_input import msg_to_model_input

pytestmark = [pytest.mark.gpu, pytest.mark.ros]

NAMESPACE = "/enc_cuda"
TOL = 1e-3  # cuDNN's convolutions (TF32 on recent GPUs) against the CPU's


def test_encoder_node_on_cuda_publishes_the_cpus_latents(tmp_path: Path) -> None:
    from std_msgs.msg import Float32MultiArray

    model = make_model_dir(tmp_path / "image", "image", latent_dim=8, seed=1)
    rng = np.random.default_rng(3)
    pixels = np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), 10, 0), 10, 1)  # (60, 80, 3)
    msg = array_to_image_msg(pixels, "rgb8")
    reference = create_backend(model, "torch", "cpu")
    expected = reference.encode(msg_to_model_input(msg, reference.config)[None])[0][0]
    node = start_node("encoder_node", "-r", f"__ns:={NAMESPACE}",
                      *param_args(model=model, backend="auto", device="cuda", diagnostics_period=0.5))
    probe = recording_probe("encoder_cuda_probe", (Float32MultiArray, f"{NAMESPACE}/vae/latent"))
    send = image_sender(probe, f"{NAMESPACE}/camera/image_raw", msg)
    closest = [np.inf]

    def matched() -> bool:
        closest[0] = closest_latent(probe, f"{NAMESPACE}/vae/latent", expected)
        return closest[0] <= TOL

    try:
        send_until(send, matched, lambda: f"a latent within {TOL} of the CPU's (closest {closest[0]:.3g})", 60.0,
                   alive={"encoder_node": node})
    finally:
        probe.close()
        log = stop_node(node)
    assert "cuda" in log.lower(), log[-2000:]  # the one line saying which backend auto took, on which device
