"""Base station: decode a remote robot's latents, in the robot's sensor stamp and frame.

    ros2 launch vae_ros base_station.launch.py robot_namespace:=robot1 model:=/data/models/scan_run3
    ros2 launch vae_ros base_station.launch.py robot_namespace:=robot2 namespace:=base/robot2 model:=...

A robot runs encoder_node (encoder.launch.py namespace:=robot1) and sends only latents; this machine runs
decoder_node in `namespace` (default base), subscribed to /<robot_namespace>/vae/latent_stamped, and
publishes what the robot's LiDAR saw as LiDAR messages: <namespace>/vae/scan (LaserScan) for scan models,
<namespace>/vae/points (PointCloud2) for point-cloud models, plus <namespace>/vae/reconstruction. They carry
the robot's sensor stamp and frame_id, so TF and message_filters work here. Only the stamped topic is
subscribed: the robot publishes every latent on vae/latent too, and taking both would double the traffic
between the machines. Give `model` the robot encoder's model directory.

Node parameters come from params_file (config/decoder.yaml); the decoder.launch.py arguments left empty keep
the file's values. The two machines need the same ROS_DOMAIN_ID and a network DDS discovery can cross.
"""

from __future__ import annotations

import re

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction

from vae_ros.ros.interface import LATENT_STAMPED_TOPIC
from vae_ros.ros.kit.launch import (
    PACKAGE,
    fastdds_profile_argument,
    include,
    log_level_argument,
    params_file_argument,
    use_sim_time_argument,
)

# Passed through to decoder.launch.py unchanged (empty: params_file's value).
PASSED_ON = ("namespace", "params_file", "use_sim_time", "fastdds_profile", "log_level", "model", "modality",
             "backend", "device")
_NAMESPACE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")


def robot_latent_topic(robot_namespace: str) -> str:
    """'robot1' or '/robot1/' -> '/robot1/vae/latent_stamped' ('' -> a robot without namespace);
    ValueError for what is no ROS namespace."""
    name = robot_namespace.strip().strip("/")
    if name and not _NAMESPACE.fullmatch(name):
        raise ValueError(f"launch argument robot_namespace:={robot_namespace!r} must be the robot's namespace, "
                         "e.g. robot1 or team/robot1 (empty: the robot has none)")
    return "/" + "/".join(part for part in (name, LATENT_STAMPED_TOPIC) if part)


def _launch_decoder(context, *args, **kwargs):
    config = context.launch_configurations
    arguments = {name: config[name] for name in PASSED_ON}
    arguments["latent_stamped_topic"] = robot_latent_topic(config["robot_namespace"])
    return [include(PACKAGE, "decoder.launch.py", arguments)]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("robot_namespace", default_value="robot1",
                              description="namespace of the robot whose vae/latent_stamped is decoded (empty: "
                                          "the robot runs without one)"),
        DeclareLaunchArgument("namespace", default_value="base",
                              description="namespace of this decoder and its outputs (vae/scan, vae/points, "
                                          "vae/reconstruction)"),
        params_file_argument("decoder.yaml", "YAML with a /**/decoder_node ros__parameters block"),
        use_sim_time_argument("false", "true: stamp outputs of unstamped latents with /clock (stamped "
                                       "latents keep the robot's stamp either way)"),
        DeclareLaunchArgument("model", default_value="",
                              description="the robot encoder's model directory (empty: params_file)"),
        DeclareLaunchArgument("modality", default_value="",
                              description="image | scan | pointcloud (empty: params_file, whose '' means the "
                                          "model's)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | torch | onnxruntime | tensorrt (empty: params_file)"),
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda (empty: params_file)"),
        fastdds_profile_argument("Fast DDS XML profile for large messages (the reconstruction images, for "
                                 "viewers on this machine)."),
        log_level_argument(),
        OpaqueFunction(function=_launch_decoder),
    ])
