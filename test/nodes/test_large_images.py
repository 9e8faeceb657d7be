"""640x480 best-effort images reach encoder_node through the Fast DDS large-data profile.

With Fast DDS defaults most such frames never arrive (ENVIRONMENT.md: 1-8 of 150). Here the publisher
process loads config/fastdds_large_data.xml the way the docs tell robot users to (the environment
variable), and encoder_node loads it by itself because the variable is unset in its environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from node_helpers import Probe, node_env, param_args, start_node, stop_node

from vae_ros.apps.benchmarks.nodes import PublisherLog, Send
from vae_ros.resources import config_dir

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/large"
FRAMES = 60  # 2 s at 30 Hz


def test_best_effort_640x480_frames_all_produce_latents(tmp_path: Path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import Float32MultiArray

    # The packaged camera model on ONNX Runtime with one thread, as on a busy robot computer: this test is
    # about frames arriving, so the encoder must keep up even while the rest of the suite loads the CPU.
    # start_node leaves the profile variables out, so the node has to load the profile by itself.
    node = start_node("encoder_node", "-r", f"__ns:={NS}",
                      *param_args(backend="onnxruntime", threads=1, diagnostics_period=0.5), OMP_NUM_THREADS="1")
    probe = Probe("large_image_probe")
    probe.record(Float32MultiArray, f"{NS}/vae/latent")
    probe.record(DiagnosticArray, "/diagnostics")
    log = tmp_path / "sends.json"
    publisher_env = node_env(FASTDDS_DEFAULT_PROFILES_FILE=str(config_dir() / "fastdds_large_data.xml"))
    try:
        assert probe.wait_for(lambda: probe.node.count_publishers(f"{NS}/vae/latent") > 0, timeout=30.0)

        def publish(modes: str, seconds: float) -> list[Send]:
            cmd = [sys.executable, "-m", "vae_ros.apps.benchmarks.nodes", "--role", "publisher", "--log", str(log),
                   "--duration", str(seconds), "--rate", "30", "--frames", "8", "--modes", modes,
                   "--publisher-qos", "best_effort", "--namespace", NS]
            subprocess.run(cmd, env=publisher_env, check=True, timeout=120)
            return PublisherLog.load(log).sends

        def reported() -> dict[str, str] | None:
            found = probe.diagnostic(f"{NS}/encoder_node: encoder")
            return found.values if found else None

        # At 30 Hz the frames arrive and are encoded: the large-data profile works for best effort. Under
        # load the latents may still be on their way: wait for all (a frame that never comes costs the wait).
        paced = publish("rate", FRAMES / 30)
        assert len(paced) >= FRAMES - 2
        probe.wait_for(lambda: len(probe.messages(f"{NS}/vae/latent")) >= len(paced), timeout=20.0)
        latents = len(probe.messages(f"{NS}/vae/latent"))
        # Fast DDS defaults deliver 1-8 of 150 such frames (ENVIRONMENT.md), the profile all of them. A loaded
        # machine can make the one-thread encoder skip a few (a newer frame supersedes one it had no time
        # for: 59 of 61 in one full run), so the bar is far above the defaults, not at every frame.
        assert latents >= 0.8 * len(paced), (latents, len(paced))

        # Flat out, the node keeps the newest frame: every frame is either encoded or counted as dropped.
        flat = publish("flat", 1.0)
        total = len(paced) + len(flat)

        def settled() -> bool:
            values = reported()
            return values is not None and int(values["received"]) + int(values["dropped"]) >= 0.97 * total

        assert probe.wait_for(settled, timeout=10.0), (reported(), total)
        values = reported()
        assert values is not None and values["input_reliability"] == "best_effort"  # matched the publisher
        assert int(values["dropped"]) > 0 and int(values["received"]) + int(values["dropped"]) <= total
    finally:
        probe.close()
        assert node.poll() is None
        stop_node(node)
