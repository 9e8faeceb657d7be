"""ament_python package vae_ros: installable with colcon (robots) and pip (virtual environments)."""

import os
import sys
from glob import glob

from setuptools import find_packages, setup

# The packaged models are listed once, in vae_ros/resources.py (standard library only, safe to import here):
# a model a user trained into models/ is not installed with the package.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vae_ros.resources import PACKAGED_MODELS  # noqa: E402

package_name = "vae_ros"


def _tree(src: str) -> list[tuple[str, list[str]]]:
    """data_files entries that install every file below src under share/vae_ros/src, keeping folders."""
    entries: dict[str, list[str]] = {}
    for path in sorted(glob(os.path.join(src, "**", "*"), recursive=True)):
        if os.path.isfile(path):
            dest = os.path.join("share", package_name, os.path.dirname(path))
            entries.setdefault(dest, []).append(path)
    return list(entries.items())


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench", "bench.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")
         + glob("config/*.sdf")),
        ("share/" + package_name + "/config/gazebo", glob("config/gazebo/*.sdf") + glob("config/gazebo/*.yaml")),
        *(entry for name in PACKAGED_MODELS for entry in _tree(os.path.join("models", name))),
    ],
    # torch is deliberately unpinned: on Jetson it comes from NVIDIA's builds. ONNX Runtime is an extra,
    # CPU or GPU (the two packages are one module; installing both lets the later one win silently).
    # onnx is for exporting only: it pulls NumPy 2, which breaks Python 3.10's OpenCV (Humble, JetPack 6).
    install_requires=[
        "setuptools",
        "numpy>=1.21,<2; python_version < '3.11'",
        "numpy>=1.21; python_version >= '3.11'",
        "torch",
        "safetensors",
        "opencv-python-headless<4.12",  # 4.12+ forces NumPy 2 over the distribution's 1.x
        "rosbags>=0.10",
        "mcap>=1.1",
        "mujoco>=3.1",
        "matplotlib",
        "tqdm",
        "PyYAML",
        "threadpoolctl",
    ],
    extras_require={
        "cpu": ["onnxruntime>=1.16"],
        "gpu": ["onnxruntime-gpu>=1.18"],
        "export": ["onnx>=1.14"],
    },
    zip_safe=True,
    maintainer="vae_ros maintainers",
    maintainer_email="maintainers@vae-ros.dev",
    description="Variational autoencoders on robots (ROS 2).",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "encoder_node = vae_ros.ros.nodes.encoder_node:main",
            "decoder_node = vae_ros.ros.nodes.decoder_node:main",
            "sim_node = vae_ros.ros.nodes.sim_node:main",
            "latent_servo_node = vae_ros.ros.nodes.latent_servo_node:main",
            "world_model_node = vae_ros.ros.nodes.world_model_node:main",
            "route_follower_node = vae_ros.ros.nodes.route_follower_node:main",
            "vae-ros = vae_ros.apps.cli:main",
        ],
    },
)
