"""The ROS-free rule: importing every vae_ros.core module, vae_ros.sim and vae_ros.control leaves rclpy out of sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs in a fresh interpreter: this test process may already have rclpy loaded by other tests.
_SCRIPT = """
import importlib, json, pkgutil, sys
import vae_ros.control, vae_ros.core, vae_ros.sim
names = []
for package in (vae_ros.core, vae_ros.sim, vae_ros.control):
    names.append(package.__name__)
    names += [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names + sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({"imported": names, "ros": sorted(m for m in sys.modules if m.split(".")[0] in ("rclpy", "rcl_interfaces"))}))
"""


def _imports(*extra: str) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *extra], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_and_sim_never_import_rclpy() -> None:
    report = _imports()
    assert {"vae_ros.core.models", "vae_ros.core.model_dir", "vae_ros.core.losses", "vae_ros.core.metrics",
            "vae_ros.core.preprocess", "vae_ros.core.config", "vae_ros.control.evaluation.representations",
            "vae_ros.control.evaluation.basin", "vae_ros.control.evaluation.plots"} <= set(report["imported"])
    assert report["ros"] == [], f"ROS modules imported by the core: {report['ros']}"


def test_the_check_does_see_rclpy_when_it_is_imported() -> None:
    # Control: the same probe flags rclpy once something imports it, so the test above can fail.
    assert "rclpy" in _imports("rclpy")["ros"]
