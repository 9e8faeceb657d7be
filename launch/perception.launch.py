"""Simulated robot + VAE encoder + decoder: the whole perception pipeline on one machine.

    ros2 launch vae_ros perception.launch.py
    ros2 launch vae_ros perception.launch.py modality:=scan
    ros2 launch vae_ros perception.launch.py modality:=pointcloud namespace:=robot1 backend:=onnxruntime

sim_node publishes the sensors and /clock, encoder_node turns the chosen sensor into vae/latent and
decoder_node turns latents back into vae/reconstruction (view it with rqt_image_view). All three read
params_file (config/perception.yaml); encoder and decoder follow simulated time. This file only includes
sim.launch.py, encoder.launch.py and decoder.launch.py, each in its own scope, so later pipelines
(servoing, world model) can include the same files.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vae_ros"
# Fast DDS 3 and Jazzy's 2.14 read the first variable; Humble's Fast DDS 2.6 reads the second.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
# Which simulated LiDAR each encoder modality needs.
LIDAR_FOR_MODALITY = {"image": "scan", "scan": "scan", "pointcloud": "pointcloud"}


def _flag(config: dict[str, str], name: str) -> bool:
    value = config[name].strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"launch argument {name}:={config[name]!r} must be true or false")
    return value == "true"


def _include(file_name: str, arguments: dict[str, str]) -> GroupAction:
    """launch/file_name of this package in its own scope, so its arguments do not leak to the others."""
    path = PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", file_name])
    return GroupAction([IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                                 launch_arguments=list(arguments.items()))], scoped=True)


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    modality = config["modality"]
    if modality not in LIDAR_FOR_MODALITY:
        raise ValueError(f"launch argument modality:={modality!r} is not one of {sorted(LIDAR_FOR_MODALITY)}")
    common = {name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level")}
    vae = {name: config[name] for name in ("model", "backend", "device")}
    vae["modality"] = modality
    vae["use_sim_time"] = str(_flag(config, "use_sim_time")).lower()
    actions = [
        # The simulator is the clock: it paces itself on the wall clock and publishes /clock.
        _include("sim.launch.py", {**common, "lidar": config["lidar"] or LIDAR_FOR_MODALITY[modality],
                                   "mujoco_gl": config["mujoco_gl"]}),
        _include("encoder.launch.py", {**common, **vae}),
    ]
    if _flag(config, "decoder"):
        actions.append(_include("decoder.launch.py", {**common, **vae}))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    packaged_profile = PathJoinSubstitution([share, "config", "fastdds_large_data.xml"])
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace for all nodes and their relative topics (e.g. robot1)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
                              description="YAML with sim_node, encoder_node and decoder_node blocks"),
        DeclareLaunchArgument("use_sim_time", default_value="true",
                              description="encoder and decoder follow the simulator's /clock"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(PROFILE_VARIABLES[0], default_value=EnvironmentVariable(
                PROFILE_VARIABLES[1], default_value=packaged_profile)),
            description="Fast DDS XML profile for large messages (camera images from the simulator to the "
                        "encoder). Default: $FASTDDS_DEFAULT_PROFILES_FILE, $FASTRTPS_DEFAULT_PROFILES_FILE, "
                        "else the packaged one; empty: leave the environment"),
        DeclareLaunchArgument("modality", default_value="image",
                              description="what the encoder encodes: image | scan | pointcloud"),
        DeclareLaunchArgument("model", default_value="",
                              description="model directory for encoder and decoder (empty: params_file, "
                                          "whose '' means the packaged default)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | torch | onnxruntime | tensorrt (empty: params_file)"),
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda (empty: params_file)"),
        DeclareLaunchArgument("lidar", default_value="",
                              description="simulated LiDAR: scan | pointcloud | both | none (empty: what "
                                          "the modality needs)"),
        DeclareLaunchArgument("decoder", default_value="true",
                              description="true: also run decoder_node (vae/reconstruction)"),
        DeclareLaunchArgument("mujoco_gl",
                              default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering: egl (headless), glfw (with a display) or "
                                          "osmesa"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
        OpaqueFunction(function=_launch_pipeline),
    ])
