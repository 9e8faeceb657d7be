"""VAE encoder on a robot: sensor topic -> vae/latent (and vae/anomaly_score).

    ros2 launch vae_ros encoder.launch.py
    ros2 launch vae_ros encoder.launch.py modality:=scan backend:=onnxruntime
    ros2 launch vae_ros encoder.launch.py namespace:=robot1 image_topic:=/front/image_raw compressed:=true

Node parameters come from params_file (config/encoder.yaml). A parameter argument left empty keeps the
file's value; one given on the command line overrides it. The node loads the Fast DDS large-data profile
(config/fastdds_large_data.xml) unless fastdds_profile says otherwise.
"""

from __future__ import annotations

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vae_ros"
NODE = "encoder_node"
# Fast DDS 3 and Jazzy's 2.14 read the first variable; Humble's Fast DDS 2.6 reads the second.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")

# Node parameters a user sets from the command line: (name, type, description). Empty = params_file's value.
PARAMETER_ARGUMENTS: list[tuple[str, type, str]] = [
    ("model", str, "model directory (model.json + weights.safetensors); '' in params_file = the packaged "
                   "default for the modality"),
    ("modality", str, "image | scan | pointcloud ('' in params_file = the model's)"),
    ("backend", str, "auto | torch | onnxruntime | tensorrt"),
    ("device", str, "cpu | cuda"),
    ("compressed", bool, "true: subscribe to <image_topic>/compressed (sensor_msgs/CompressedImage)"),
    ("publish_variance", bool, "true: latent messages carry D means then D log-variances"),
    ("publish_anomaly_score", bool, "true: also publish vae/anomaly_score (std_msgs/Float32)"),
    ("anomaly_metric", str, "reconstruction (mean squared error) | neg_elbo (negative ELBO, nats)"),
    ("qos_reliability", str, "input QoS: auto (match the publishers) | best_effort | reliable"),
    ("threads", int, "ONNX Runtime CPU threads; 0 = all cores up to 4"),
]

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[tuple[str, str, str]] = [
    ("image_topic", "camera/image_raw", "camera input for modality image (sensor_msgs/Image)"),
    ("scan_topic", "scan", "laser input for modality scan (sensor_msgs/LaserScan)"),
    ("points_topic", "lidar/points", "point cloud input for modality pointcloud (sensor_msgs/PointCloud2)"),
    ("latent_topic", "vae/latent", "latent output (std_msgs/Float32MultiArray)"),
    ("anomaly_score_topic", "vae/anomaly_score", "anomaly score output (std_msgs/Float32)"),
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
    image_topic = config["image_topic"]
    if image_topic != "camera/image_raw":  # image_transport naming: the compressed stream follows its image
        remappings.append(("camera/image_raw/compressed", image_topic + "/compressed"))
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
                              default_value=PathJoinSubstitution([share, "config", "encoder.yaml"]),
                              description="YAML with a /**/encoder_node ros__parameters block"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true: follow /clock (simulators, bag playback)"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(PROFILE_VARIABLES[0], default_value=EnvironmentVariable(
                PROFILE_VARIABLES[1], default_value=packaged_profile)),
            description="Fast DDS XML profile for large messages; every process that exchanges images with "
                        "this one needs it too. Default: $FASTDDS_DEFAULT_PROFILES_FILE, "
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
