"""MuJoCo robot world: camera/image_raw, scan and/or lidar/points, odom and /clock out; cmd_vel in.

    ros2 launch vae_ros sim.launch.py
    ros2 launch vae_ros sim.launch.py lidar:=pointcloud image_width:=320 image_height:=240 seed:=3

Node parameters come from params_file (config/sim.yaml). A parameter argument left empty keeps the file's
value; one given on the command line overrides it. The simulator is the clock: it publishes /clock and
paces itself on the wall clock, so it takes no use_sim_time (the nodes that consume its topics do). The
node loads the Fast DDS large-data profile (config/fastdds_large_data.xml) unless fastdds_profile says
otherwise; MuJoCo renders offscreen with mujoco_gl (egl on headless machines).
"""

from __future__ import annotations

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vae_ros"
NODE = "sim_node"
# Fast DDS 3 and Jazzy's 2.14 read the first variable; Humble's Fast DDS 2.6 reads the second.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")

# Node parameters a user sets from the command line: (name, type, description). Empty = params_file's value.
PARAMETER_ARGUMENTS: list[tuple[str, type, str]] = [
    ("rate", float, "sensor frames per second (simulated time advances 1/rate per frame)"),
    ("image_width", int, "camera image width in pixels"),
    ("image_height", int, "camera image height in pixels"),
    ("lidar", str, "scan (LaserScan) | pointcloud (PointCloud2) | both | none"),
    ("seed", int, "world seed: object placement and colours"),
    ("initial_pose", list, "robot start [x, y, yaw] in the odom frame, e.g. '[1.0, 0.5, 1.57]'"),
    ("max_linear", float, "limit of |cmd_vel.linear.x| in m/s"),
    ("max_angular", float, "limit of |cmd_vel.angular.z| in rad/s"),
    ("cmd_timeout", float, "simulated seconds without cmd_vel after which the robot stops"),
    ("publish_camera", bool, "publish camera/image_raw (rendering costs CPU)"),
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
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is list and isinstance(value, list) and all(isinstance(v, int | float) for v in value):
        return [float(v) for v in value]
    raise ValueError(f"launch argument {name}:={text!r} is not a {kind.__name__} (e.g. {_EXAMPLES[kind]})")


def _profile_actions(profile: str) -> list[SetEnvironmentVariable]:
    """Point Fast DDS at the profile in every process started from here (empty: leave the environment)."""
    return [SetEnvironmentVariable(name, profile) for name in PROFILE_VARIABLES] if profile else []


def _launch_node(context, *args, **kwargs):
    """Resolve the arguments once: Fast DDS profile, parameter overrides, remappings, then the node."""
    config = context.launch_configurations
    overrides = {name: _typed(name, config[name], kind) for name, kind, _ in PARAMETER_ARGUMENTS
                 if config[name]}
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
    mujoco_gl = SetEnvironmentVariable("MUJOCO_GL", config["mujoco_gl"])
    return [*_profile_actions(config["fastdds_profile"]), mujoco_gl, node]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    packaged_profile = PathJoinSubstitution([share, "config", "fastdds_large_data.xml"])
    arguments = [
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace for the node and its relative topics (e.g. robot1)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "sim.yaml"]),
                              description="YAML with a /**/sim_node ros__parameters block"),
        DeclareLaunchArgument("mujoco_gl",
                              default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering: egl (headless, default), glfw (with a display) "
                                          "or osmesa"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(PROFILE_VARIABLES[0], default_value=EnvironmentVariable(
                PROFILE_VARIABLES[1], default_value=packaged_profile)),
            description="Fast DDS XML profile for large messages; every process that subscribes to its "
                        "camera or point cloud needs it too. Default: $FASTDDS_DEFAULT_PROFILES_FILE, "
                        "$FASTRTPS_DEFAULT_PROFILES_FILE, else the packaged one; empty: leave the "
                        "environment"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
        DeclareLaunchArgument("respawn", default_value="false",
                              description="true: restart the node if it exits"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value="", description=text + " (empty: params_file)")
                  for name, _, text in PARAMETER_ARGUMENTS]
    arguments += [DeclareLaunchArgument(name, default_value=topic, description=text)
                  for name, topic, text in TOPIC_ARGUMENTS]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_node)])
