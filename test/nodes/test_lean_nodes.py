"""The import rule, checked on real node processes: nodes on ONNX Runtime never load torch.

Each node runs as `python -m vae_ros.<node>` with backend onnxruntime (the packaged models, with their
encoder.onnx / decoder.onnx), is fed real messages from this process until it has done its per-message
work (encoder: a latent and an anomaly score, which decodes; decoder: a reconstruction; servo: a latent
error through the servo head; world model: a planned, non-zero command), and only then is its memory map
(/proc/PID/maps) read: torch's shared libraries (libtorch*, torch/_C) are mapped into every process that
imports torch, whatever imported it. An encoder_node on backend torch is the control: there they are mapped,
so the check can fail.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from node_helpers import Probe, make_model_dir, param_args, scan_msg, send_until, start_node, stop_node
from test_world_model_node import LATENT_DIM as WM_LATENT_DIM
from test_world_model_node import random_dynamics

from vae_ros.apps.benchmarks.footprint import peak_rss_mb, torch_libraries
from vae_ros.core.conversions.image import array_to_image_msg
from vae_ros.core.conversions.latent import latent_to_msg, latent_to_stamped_msg
from vae_ros.core.model_dir import resolve_model_dir

pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps (Linux)"),
]

STARTUP_S = 120.0  # five nodes start together on two shared cores


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from diagnostic_msgs.msg import DiagnosticArray  # noqa: F401  (rclpy message types load before the probe)
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image, LaserScan
    from std_msgs.msg import Float32, Float32MultiArray

    from vae_ros.control.runtime.control_model import control_model_dir

    root = tmp_path_factory.mktemp("lean")
    wm_model = make_model_dir(root / "scan", "scan", latent_dim=WM_LATENT_DIM, seed=3, beams=64)
    random_dynamics(root / "dynamics")
    image_model = str(resolve_model_dir("", "image"))
    control = str(control_model_dir(""))
    specs = {
        "encoder": ("encoder_node", "/lean_enc", dict(model=image_model, backend="onnxruntime",
                                                      publish_anomaly_score=True)),
        "decoder": ("decoder_node", "/lean_dec", dict(model=image_model, backend="onnxruntime")),
        "servo": ("latent_servo_node", "/lean_servo", dict(model=control)),  # runs no model: no backend
        "world_model": ("world_model_node", "/lean_wm", dict(
            model=wm_model, dynamics=root / "dynamics", backend="onnxruntime", tolerance=0.001, samples=64,
            iterations=2, elites=8, horizon=6, collision=False)),
        "torch_control": ("encoder_node", "/lean_torch", dict(model=image_model, backend="torch")),
    }
    procs: dict[str, subprocess.Popen[str]] = {}
    probe = None
    try:
        for name, (module, ns, params) in specs.items():
            procs[name] = start_node(module, "-r", f"__ns:={ns}", *param_args(**params))
        probe = Probe("lean_nodes_probe")
        probe.record(Float32MultiArray, "/lean_enc/vae/latent")
        probe.record(Float32, "/lean_enc/vae/anomaly_score")
        probe.record(Float32MultiArray, "/lean_torch/vae/latent")
        probe.record(Image, "/lean_dec/vae/reconstruction")
        probe.record(Float32, "/lean_servo/servo/error")
        probe.record(Twist, "/lean_wm/cmd_vel")
        for topic, msg_type in (("/lean_enc/camera/image_raw", Image), ("/lean_torch/camera/image_raw", Image),
                                ("/lean_dec/vae/latent", Float32MultiArray),
                                ("/lean_servo/vae/latent_stamped", Image),
                                ("/lean_servo/servo/goal_latent", Float32MultiArray),
                                ("/lean_wm/vae/latent_stamped", Image),
                                ("/lean_wm/servo/goal_latent", Float32MultiArray),
                                ("/lean_wm/scan", LaserScan)):
            probe.publishers[topic] = probe.node.create_publisher(msg_type, topic, 10)
        yield {"procs": procs, "probe": probe, "control": control}
    finally:
        if probe is not None:
            probe.close()
        for name, proc in procs.items():
            output = stop_node(proc)
            if proc.returncode not in (0, -2):
                print(f"--- {name} exited {proc.returncode}:\n{output}")


def _feed_until(lean: Any, name: str, send: Callable[[], None], done: Callable[[], bool]) -> None:
    """Send every 0.2 s until done() holds; the node must stay alive meanwhile."""
    send_until(send, done, f"output from {name}", STARTUP_S, period=0.2, alive={name: lean["procs"][name]})


def _image(probe: Probe) -> Any:
    rng = np.random.default_rng(0)
    msg = array_to_image_msg(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), "rgb8")
    msg.header = probe.header("sensor")
    return msg


def _check_lean(lean: Any, name: str) -> None:
    pid = lean["procs"][name].pid
    libraries = torch_libraries(pid)
    print(f"{name}: peak RSS {peak_rss_mb(pid):.0f} MB")
    assert not libraries, f"{name} on ONNX Runtime loaded torch: {libraries}"


def test_encoder_node_on_onnxruntime_encodes_and_scores_without_torch(lean: Any) -> None:
    probe = lean["probe"]
    publisher = probe.publishers["/lean_enc/camera/image_raw"]
    _feed_until(lean, "encoder", lambda: publisher.publish(_image(probe)),
                lambda: bool(probe.messages("/lean_enc/vae/latent"))
                and bool(probe.messages("/lean_enc/vae/anomaly_score")))
    _check_lean(lean, "encoder")


def test_decoder_node_on_onnxruntime_reconstructs_without_torch(lean: Any) -> None:
    probe = lean["probe"]
    from vae_ros.core.backends import load_config

    dim = load_config(resolve_model_dir("", "image")).latent_dim
    publisher = probe.publishers["/lean_dec/vae/latent"]
    _feed_until(lean, "decoder", lambda: publisher.publish(latent_to_msg(np.zeros(dim, np.float32))),
                lambda: bool(probe.messages("/lean_dec/vae/reconstruction")))
    _check_lean(lean, "decoder")


def test_latent_servo_node_on_onnxruntime_servoes_without_torch(lean: Any) -> None:
    probe = lean["probe"]
    from vae_ros.core.backends import load_config

    dim = load_config(Path(lean["control"])).latent_dim
    z, z_goal = np.zeros(dim, np.float32), np.full(dim, 0.2, np.float32)

    def send() -> None:
        probe.publishers["/lean_servo/servo/goal_latent"].publish(latent_to_msg(z_goal))
        probe.publishers["/lean_servo/vae/latent_stamped"].publish(latent_to_stamped_msg(z, None, probe.header("sensor")))

    _feed_until(lean, "servo", send, lambda: bool(probe.messages("/lean_servo/servo/error")))
    _check_lean(lean, "servo")


def test_world_model_node_on_onnxruntime_plans_without_torch(lean: Any) -> None:
    probe = lean["probe"]
    z_goal = np.array([0.5, 0.5, -0.5, 0.2], np.float32)
    z_away = np.array([-0.5, -0.3, 0.6, -0.4], np.float32)

    def send() -> None:
        probe.publishers["/lean_wm/servo/goal_latent"].publish(latent_to_msg(z_goal))
        header = probe.header("sensor")
        probe.publishers["/lean_wm/scan"].publish(scan_msg(header))  # free: the scan safety layer lets it move
        probe.publishers["/lean_wm/vae/latent_stamped"].publish(latent_to_stamped_msg(z_away, None, header))

    def moving() -> bool:  # a non-zero command: the planner has rolled the dynamics out
        return any(abs(m.linear.x) > 1e-3 or abs(m.angular.z) > 1e-3 for m in probe.messages("/lean_wm/cmd_vel"))

    _feed_until(lean, "world_model", send, moving)
    _check_lean(lean, "world_model")


def test_the_check_sees_torch_in_an_encoder_node_on_backend_torch(lean: Any) -> None:
    probe = lean["probe"]
    publisher = probe.publishers["/lean_torch/camera/image_raw"]
    _feed_until(lean, "torch_control", lambda: publisher.publish(_image(probe)),
                lambda: bool(probe.messages("/lean_torch/vae/latent")))
    assert any("libtorch" in path for path in torch_libraries(lean["procs"]["torch_control"].pid))
