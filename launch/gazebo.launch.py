"""Gazebo (gz-sim Harmonic or newer) instead of the MuJoCo simulator: world, bridge and the VAE nodes.

    ros2 launch vae_ros gazebo.launch.py
    ros2 launch vae_ros gazebo.launch.py headless:=true modality:=scan
    ros2 launch vae_ros gazebo.launch.py world:=/path/my_world.sdf bridge_config:=/path/my_bridge.yaml

Needs ros_gz_sim and ros_gz_bridge (ros-<distro>-ros-gz). ros_gz_sim runs the world
(config/gazebo/vae_world.sdf: the MuJoCo room with a diff-drive robot, camera, 2-D and 3-D LiDAR and
ground-truth odometry); ros_gz_bridge maps its topics to camera/image_raw, scan, lidar/points, odom,
cmd_vel and /clock (config/gazebo/bridge.yaml); encoder.launch.py and decoder.launch.py run on simulated
time.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vae_ros"
MODALITIES = ("image", "scan", "pointcloud")
# Fast DDS 3 and Jazzy's 2.14 read the first variable; Humble's Fast DDS 2.6 reads the second.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def _flag(config: dict[str, str], name: str) -> bool:
    value = config[name].strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"launch argument {name}:={config[name]!r} must be true or false")
    return value == "true"


def _include(package: str, file_name: str, arguments: dict[str, str]) -> GroupAction:
    """A package's launch/file_name in its own scope, so its arguments do not leak to the others."""
    path = PathJoinSubstitution([FindPackageShare(package), "launch", file_name])
    return GroupAction([IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                                 launch_arguments=list(arguments.items()))], scoped=True)


def _launch_gazebo(context, *args, **kwargs):
    config = context.launch_configurations
    profile = config["fastdds_profile"]  # the bridge passes camera images and point clouds too
    actions: list = [SetEnvironmentVariable(name, profile) for name in PROFILE_VARIABLES] if profile else []
    # -r: run at once; -s --headless-rendering: server only, sensors still render (EGL).
    gz_args = "-r -s --headless-rendering " if _flag(config, "headless") else "-r "
    actions.append(_include("ros_gz_sim", "gz_sim.launch.py",
                            {"gz_args": gz_args + config["world"], "on_exit_shutdown": "true"}))
    use_sim_time = _flag(config, "use_sim_time")
    actions.append(Node(
        package="ros_gz_bridge",
        executable="parameter_bridge",
        name="gz_bridge",
        namespace=config["namespace"],
        parameters=[{"config_file": config["bridge_config"], "use_sim_time": use_sim_time}],
        output="screen",
    ))
    modality = config["modality"]
    if modality not in MODALITIES:
        raise ValueError(f"launch argument modality:={modality!r} is not one of {list(MODALITIES)}")
    common = {name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level",
                                              "model", "backend", "device")}
    common["use_sim_time"] = str(use_sim_time).lower()
    if _flag(config, "encoder"):
        actions.append(_include(PACKAGE, "encoder.launch.py", {**common, "modality": modality}))
    if _flag(config, "decoder"):
        actions.append(_include(PACKAGE, "decoder.launch.py", {**common, "modality": modality}))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    packaged_profile = PathJoinSubstitution([share, "config", "fastdds_large_data.xml"])
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace for the bridge and the VAE nodes (the bridged topics "
                                          "are relative; /clock stays global)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
                              description="YAML with encoder_node and decoder_node ros__parameters blocks"),
        DeclareLaunchArgument("use_sim_time", default_value="true",
                              description="bridge, encoder and decoder follow Gazebo's /clock"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(PROFILE_VARIABLES[0], default_value=EnvironmentVariable(
                PROFILE_VARIABLES[1], default_value=packaged_profile)),
            description="Fast DDS XML profile for large messages (images from the bridge to the encoder). "
                        "Default: $FASTDDS_DEFAULT_PROFILES_FILE, $FASTRTPS_DEFAULT_PROFILES_FILE, else the "
                        "packaged one; empty: leave the environment"),
        DeclareLaunchArgument("world",
                              default_value=PathJoinSubstitution([share, "config", "gazebo",
                                                                  "vae_world.sdf"]),
                              description="SDF world to run"),
        DeclareLaunchArgument("bridge_config",
                              default_value=PathJoinSubstitution([share, "config", "gazebo", "bridge.yaml"]),
                              description="ros_gz_bridge YAML mapping Gazebo topics to ROS topics"),
        DeclareLaunchArgument("headless", default_value="false",
                              description="true: no Gazebo GUI (server only; sensors still render)"),
        DeclareLaunchArgument("encoder", default_value="true", description="true: run encoder_node"),
        DeclareLaunchArgument("decoder", default_value="true", description="true: run decoder_node"),
        DeclareLaunchArgument("modality", default_value="image",
                              description="what the encoder encodes: image | scan | pointcloud"),
        DeclareLaunchArgument("model", default_value="",
                              description="model directory for encoder and decoder (empty: params_file)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | torch | onnxruntime | tensorrt (empty: params_file)"),
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda (empty: params_file)"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
        OpaqueFunction(function=_launch_gazebo),
    ])
