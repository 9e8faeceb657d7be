"""Simulated robot + VAE encoder + decoder: the whole perception pipeline on one machine.

    ros2 launch vae_ros perception.launch.py
    ros2 launch vae_ros perception.launch.py modality:=scan
    ros2 launch vae_ros perception.launch.py modality:=pointcloud namespace:=robot1 backend:=onnxruntime

sim_node publishes the sensors and /clock, encoder_node turns the chosen sensor into vae/latent and
decoder_node turns latents back into vae/reconstruction (view it with rqt_image_view). All three read
params_file (config/perception.yaml) and follow simulated time. This file only includes sim.launch.py,
encoder.launch.py and decoder.launch.py, each in its own scope; later pipelines (servoing, world model)
include the same files.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vae_ros"

# Which simulated LiDAR each encoder modality needs.
LIDAR_FOR_MODALITY = {"image": "scan", "scan": "scan", "pointcloud": "pointcloud"}


def _include(file_name: str, arguments: dict[str, str]) -> GroupAction:
    """file_name from this package's launch/ in its own scope, so its arguments do not leak to the others."""
    path = PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", file_name])
    return GroupAction([IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                                 launch_arguments=list(arguments.items()))], scoped=True)


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    modality = config["modality"]
    if modality not in LIDAR_FOR_MODALITY:
        raise ValueError(f"modality:={modality!r} is not one of {sorted(LIDAR_FOR_MODALITY)}")
    common = {name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level")}
    model_arguments = {name: config[name] for name in ("model", "backend", "device")}
    sim = _include("sim.launch.py", {
        **common,
        "lidar": config["lidar"] or LIDAR_FOR_MODALITY[modality],
        "mujoco_gl": config["mujoco_gl"],
        # The simulator is the clock: its own node stays on wall time and publishes /clock.
        "use_sim_time": "false",
    })
    encoder = _include("encoder.launch.py", {
        **common, **model_arguments, "modality": modality, "use_sim_time": config["use_sim_time"],
    })
    decoder = _include("decoder.launch.py", {
        **common, **model_arguments, "use_sim_time": config["use_sim_time"],
    })
    actions = [sim, encoder]
    if config["decoder"].lower() == "true":
        actions.append(decoder)
    elif config["decoder"].lower() != "false":
        raise ValueError(f"decoder:={config['decoder']!r} must be true or false")
    return actions


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace for all nodes and their "
                              "relative topics (e.g. robot1)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
                              description="YAML with sim_node, encoder_node and decoder_node ros__parameters "
                                          "blocks"),
        DeclareLaunchArgument("use_sim_time", default_value="true", description="encoder and decoder follow "
                              "the simulator's /clock"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=PathJoinSubstitution(
                [share, "config", "fastdds_large_data.xml"])),
            description="Fast DDS XML profile for large messages (camera images between the simulator and "
                        "the encoder); empty = Fast DDS defaults"),
        DeclareLaunchArgument("modality", default_value="image", description="what the encoder encodes: "
                              "image | scan | pointcloud"),
        DeclareLaunchArgument("model", default_value="", description="model directory for encoder and decoder "
                              "(empty: params_file, whose empty value means the packaged default)"),
        DeclareLaunchArgument("backend", default_value="", description="auto | torch | onnxruntime | tensorrt "
                              "(empty: params_file)"),
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda (empty: params_file)"),
        DeclareLaunchArgument("lidar", default_value="", description="simulated LiDAR: scan | pointcloud | none "
                              "(empty: what the modality needs)"),
        DeclareLaunchArgument("decoder", default_value="true", description="true: also run decoder_node "
                              "(vae/reconstruction)"),
        DeclareLaunchArgument("mujoco_gl", default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering backend: egl (headless), glfw or osmesa"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
        OpaqueFunction(function=_launch_pipeline),
    ])
