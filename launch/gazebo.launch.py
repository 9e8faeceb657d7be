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
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from vae_ros.ros.kit.launch import (
    PACKAGE,
    fastdds_profile_argument,
    flag,
    include,
    log_level_argument,
    namespace_argument,
    params_file_argument,
    profile_actions,
    use_sim_time_argument,
    vae_arguments,
)

MODALITIES = ("image", "scan", "pointcloud")


def _launch_gazebo(context, *args, **kwargs):
    config = context.launch_configurations
    # The bridge passes camera images and point clouds too.
    actions: list = profile_actions(context, config["fastdds_profile"])
    # -r: run at once; -s --headless-rendering: server only, sensors still render (EGL).
    gz_args = "-r -s --headless-rendering " if flag(config, "headless") else "-r "
    actions.append(include("ros_gz_sim", "gz_sim.launch.py",
                           {"gz_args": gz_args + config["world"], "on_exit_shutdown": "true"}))
    use_sim_time = flag(config, "use_sim_time")
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
    if flag(config, "encoder"):
        actions.append(include(PACKAGE, "encoder.launch.py", {**common, "modality": modality}))
    if flag(config, "decoder"):
        actions.append(include(PACKAGE, "decoder.launch.py", {**common, "modality": modality}))
    return actions


def generate_launch_description() -> LaunchDescription:
    gazebo_config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "gazebo"])
    return LaunchDescription([
        namespace_argument("namespace for the bridge and the VAE nodes (the bridged topics are relative; "
                           "/clock stays global)"),
        params_file_argument("perception.yaml",
                             "YAML with encoder_node and decoder_node ros__parameters blocks"),
        use_sim_time_argument("true", "bridge, encoder and decoder follow Gazebo's /clock"),
        fastdds_profile_argument("Fast DDS XML profile for large messages (images from the bridge to the "
                                 "encoder)."),
        DeclareLaunchArgument("world", default_value=PathJoinSubstitution([gazebo_config, "vae_world.sdf"]),
                              description="SDF world to run"),
        DeclareLaunchArgument("bridge_config",
                              default_value=PathJoinSubstitution([gazebo_config, "bridge.yaml"]),
                              description="ros_gz_bridge YAML mapping Gazebo topics to ROS topics"),
        DeclareLaunchArgument("headless", default_value="false",
                              description="true: no Gazebo GUI (server only; sensors still render)"),
        DeclareLaunchArgument("encoder", default_value="true", description="true: run encoder_node"),
        DeclareLaunchArgument("decoder", default_value="true", description="true: run decoder_node"),
        *vae_arguments("model directory for encoder and decoder (empty: params_file)"),
        log_level_argument(),
        OpaqueFunction(function=_launch_gazebo),
    ])
