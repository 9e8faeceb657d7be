"""VAE decoder on a robot: vae/latent -> vae/reconstruction (sensor_msgs/Image), for viewing.

    ros2 launch vae_ros decoder.launch.py
    ros2 launch vae_ros decoder.launch.py model:=/data/models/scan_run3 backend:=onnxruntime

Give it the model directory the encoder uses. Node parameters come from params_file (config/decoder.yaml).
A parameter argument left empty keeps the file's value; one given on the command line overrides it. The
node loads the Fast DDS large-data profile (config/fastdds_large_data.xml) unless fastdds_profile says
otherwise.
"""

from __future__ import annotations

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vae_ros"
NODE = "decoder_node"
# Fast DDS 3 and Jazzy's 2.14 read the first variable; Humble's Fast DDS 2.6 reads the second.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")

# Node parameters a user sets from the command line: (name, type, description). Empty = params_file's value.
PARAMETER_ARGUMENTS: list[tuple[str, type, str]] = [
    ("model", str, "model directory (the encoder's); '' in params_file = the packaged default for the "
                   "modality"),
    ("modality", str, "image | scan | pointcloud ('' in params_file = the model's)"),
    ("backend", str, "auto | torch | onnxruntime | tensorrt"),
    ("device", str, "cpu | cuda"),
    ("frame_id", str, "header.frame_id of the reconstructions"),
    ("generate", bool, "true: decode samples of the prior N(0, I) instead of vae/latent"),
    ("generate_rate", float, "samples per second when generating"),
    ("seed", int, "seed of the prior samples"),
]

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[tuple[str, str, str]] = [
    ("latent_topic", "vae/latent", "latent input (std_msgs/Float32MultiArray)"),
    ("reconstruction_topic", "vae/reconstruction", "reconstruction output (sensor_msgs/Image)"),
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
    return [*_profile_actions(config["fastdds_profile"]), node]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    packaged_profile = PathJoinSubstitution([share, "config", "fastdds_large_data.xml"])
    arguments = [
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace for the node and its relative topics (e.g. robot1)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "decoder.yaml"]),
                              description="YAML with a /**/decoder_node ros__parameters block"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true: follow /clock (simulators, bag playback)"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(PROFILE_VARIABLES[0], default_value=EnvironmentVariable(
                PROFILE_VARIABLES[1], default_value=packaged_profile)),
            description="Fast DDS XML profile for large messages; every process that receives the "
                        "reconstructions needs it too. Default: $FASTDDS_DEFAULT_PROFILES_FILE, "
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
