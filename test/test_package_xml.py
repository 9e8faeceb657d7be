"""package.xml: rosdep can install what the code imports, with keys that exist."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# rosdep keys (rosdistro's python.yaml) for the pip-only dependencies, and the Gazebo launch file's packages.
PIP_KEYS = {"python3-torch", "python3-onnxruntime-pip", "python3-rosbags-pip", "python3-mujoco-pip"}
GAZEBO = {"ros_gz_sim", "ros_gz_bridge"}


def exec_depends() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    return {element.text or "" for element in root.iter() if element.tag in ("exec_depend", "depend")}


def imported_ros_interfaces() -> set[str]:
    """ROS interface packages (xxx_msgs, xxx_srvs, xxx_interfaces) that vae_ros/ and launch/ import."""
    found = set()
    for path in [*(REPO / "vae_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                top = name.split(".")[0]
                if top.endswith(("_msgs", "_srvs", "_interfaces")):
                    found.add(top)
    return found


def test_pip_dependencies_and_gazebo_have_their_rosdep_keys() -> None:
    declared = exec_depends()
    assert PIP_KEYS <= declared, PIP_KEYS - declared
    assert GAZEBO <= declared, GAZEBO - declared


def test_every_imported_interface_package_is_declared() -> None:
    missing = imported_ros_interfaces() - exec_depends()
    assert not missing, f"imported but not in package.xml: {sorted(missing)}"
