"""MuJoCo robot world: publishes camera/image_raw, scan or lidar/points, odom and /clock; drives on cmd_vel.

    ros2 launch vae_ros sim.launch.py
    ros2 launch vae_ros sim.launch.py lidar:=pointcloud image_width:=320 image_height:=240 seed:=3

Node parameters come from params_file (config/sim.yaml). A parameter argument left empty keeps the file's
value; one given on the command line overrides it. Every process started here loads the Fast DDS
large-data profile (config/fastdds_large_data.xml) unless fastdds_profile says otherwise; MuJoCo renders
offscreen with mujoco_gl (egl on headless machines).
"""

from __future__ import annotations

import yaml
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    OpaqueFunction,
    SetEnvironmentVariable,
    UnsetEnvironmentVariable,
)
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vae_ros"
NODE = "sim_node"

# Node parameters a user sets from the command line: (name, type, description). Empty = params_file's value.
PARAMETER_ARGUMENTS: list[tuple[str, type, str]] = [
    ("rate", float, "sensor publishing rate in Hz (simulated time)"),
    ("image_width", int, "camera image width in pixels"),
    ("image_height", int, "camera image height in pixels"),
    ("lidar", str, "scan (2-D LaserScan) | pointcloud (3-D PointCloud2) | none"),
    ("seed", int, "room layout seed"),
    ("initial_pose", list, "robot start [x, y, yaw] in the odom frame, e.g. '[1.0, 0.5, 1.57]'"),
]

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[tuple[str, str, str]] = [
    ("image_topic", "camera/image_raw", "camera output (sensor_msgs/Image)"),
    ("scan_topic", "scan", "2-D LiDAR output (sensor_msgs/LaserScan)"),
    ("points_topic", "lidar/points", "3-D LiDAR output (sensor_msgs/PointCloud2)"),
    ("odom_topic", "odom", "ground-truth odometry output (nav_msgs/Odometry)"),
    ("cmd_vel_topic", "cmd_vel", "velocity command input (geometry_msgs/Twist)"),
]


_EXAMPLES = {bool: "true", int: "10", float: "1.5", list: "[0.0, 0.0, 0.0]"}


def _typed(name: str, text: str, kind: type) -> object:
    """A launch argument's text as the node parameter's type (launch arguments are always strings)."""
    if kind is str:
        return text
    value = yaml.safe_load(text)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is list and isinstance(value, list):
        return [float(v) for v in value]
    raise ValueError(f"launch argument {name}:={text!r} is not a {kind.__name__} (e.g. {_EXAMPLES[kind]})")


def _launch_node(context, *args, **kwargs):
    """Resolve the arguments once: Fast DDS profile, parameter overrides, remappings, then the node."""
    config = context.launch_configurations
    profile = config["fastdds_profile"]
    env_action = (SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile) if profile
                  else UnsetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE"))
    overrides = {name: _typed(name, config[name], kind) for name, kind, _ in PARAMETER_ARGUMENTS if config[name]}
    overrides["use_sim_time"] = _typed("use_sim_time", config["use_sim_time"], bool)
    remappings = [(topic, config[arg]) for arg, topic, _ in TOPIC_ARGUMENTS if config[arg] != topic]
    node = Node(
        package=PACKAGE,
        executable=NODE,
        name=NODE,
        namespace=config["namespace"],
        parameters=[config["params_file"], overrides],
        remappings=remappings,
        arguments=["--ros-args", "--log-level", config["log_level"]],
        respawn=_typed("respawn", config["respawn"], bool),
        respawn_delay=2.0,
        output="screen",
        emulate_tty=True,
    )
    return [env_action, SetEnvironmentVariable("MUJOCO_GL", config["mujoco_gl"]), node]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace for the node and its "
                              "relative topics (e.g. robot1)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "sim.yaml"]),
                              description="YAML with a sim_node ros__parameters block"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="true: follow /clock "
                              "(simulators, bag playback)"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=PathJoinSubstitution(
                [share, "config", "fastdds_large_data.xml"])),
            description="Fast DDS XML profile for large messages (every process that exchanges images with "
                        "this one needs it too); empty = Fast DDS defaults"),
        DeclareLaunchArgument("mujoco_gl", default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering backend: egl (headless, default), glfw (with a "
                              "display) or osmesa"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
        DeclareLaunchArgument("respawn", default_value="false", description="true: restart the node if it "
                              "exits"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value="", description=text + " (empty: params_file)")
                  for name, _, text in PARAMETER_ARGUMENTS]
    arguments += [DeclareLaunchArgument(name, default_value=topic, description=text)
                  for name, topic, text in TOPIC_ARGUMENTS]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_node)])
