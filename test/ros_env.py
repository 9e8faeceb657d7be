"""Environment for tests that start real ROS 2 processes: DDS on this machine only, one domain per run."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# One domain per pytest run (0..101 are safe with Fast DDS port arithmetic); drawn from the pid so that
# concurrent runs on one machine do not hear each other.
_DOMAIN = str(int(os.environ.get("VAE_ROS_TEST_DOMAIN", random.Random(os.getpid()).randrange(1, 101))))


def ros_env(**extra: str) -> dict[str, str]:
    """os.environ plus the isolation settings; pass to subprocesses that run nodes."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = _DOMAIN
    env["ROS_LOCALHOST_ONLY"] = "1"  # older distributions (Humble) read this one
    env.setdefault("MUJOCO_GL", "egl")
    env["PYTHONUNBUFFERED"] = "1"
    prefix = sys.prefix
    ament = env.get("AMENT_PREFIX_PATH", "")
    if prefix not in ament.split(":"):
        env["AMENT_PREFIX_PATH"] = prefix + (":" + ament if ament else "")
    env.update(extra)
    return env


def apply_to_this_process() -> None:
    """Isolate rclpy in the test process itself (must run before rclpy.init), and give its participant the
    nodes' Fast DDS profile: the probes receive most of what the tests check, and the profile's
    shared-memory ports survive a CPU-starved moment of the test process (config/fastdds_large_data.xml).
    Subprocesses started with node_env() still choose their profile themselves."""
    os.environ.update({k: v for k, v in ros_env().items() if k.startswith(("ROS_", "AMENT_", "MUJOCO_"))})
    from vae_ros.ros.kit.run import use_large_data_profile

    use_large_data_profile()
