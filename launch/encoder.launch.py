"""VAE encoder on a robot: sensor topic -> vae/latent and vae/latent_stamped (and vae/anomaly_score).

    ros2 launch vae_ros encoder.launch.py
    ros2 launch vae_ros encoder.launch.py modality:=scan backend:=onnxruntime
    ros2 launch vae_ros encoder.launch.py model:=/path/to/fused_model sync_slop:=0.08   # camera + LiDAR
    ros2 launch vae_ros encoder.launch.py namespace:=robot1 image_topic:=/front/image_raw compressed:=true

Node parameters come from params_file (config/encoder.yaml). A parameter argument left empty keeps the
file's value; one given on the command line overrides it. The node loads the Fast DDS large-data profile
(config/fastdds_large_data.xml) unless fastdds_profile says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from launch import LaunchDescription

from vae_ros.ros.interface import (
    ANOMALY_TOPIC,
    CAMERA_TOPIC,
    CLOUD_TOPIC,
    COMPRESSED_CAMERA_TOPIC,
    LATENT_STAMPED_TOPIC,
    LATENT_TOPIC,
    SCAN_TOPIC,
)
from vae_ros.ros.kit.launch import (
    ParameterArgument,
    TopicArgument,
    latent_stamped_follows,
    node_launch_description,
    node_parameters,
)

NODE = "encoder_node"

# Node parameters a user sets from the command line (type and description: the node's declarations).
# Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = node_parameters(NODE, [
    "model", "modality", "backend", "device", "compressed", "publish_variance", "publish_anomaly_score",
    "anomaly_metric", "qos_reliability", "threads", "engine_cache", "warmup", "sync_slop", "sensor_timeout"])

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[TopicArgument] = [
    ("image_topic", CAMERA_TOPIC, "camera input for modality image or fused (sensor_msgs/Image)"),
    ("scan_topic", SCAN_TOPIC, "laser input for modality scan or fused (sensor_msgs/LaserScan)"),
    ("points_topic", CLOUD_TOPIC, "point cloud input for modality pointcloud (sensor_msgs/PointCloud2)"),
    ("latent_topic", LATENT_TOPIC, "latent output (std_msgs/Float32MultiArray)"),
    ("latent_stamped_topic", LATENT_STAMPED_TOPIC, "stamped latent output (sensor_msgs/Image 32FC1, the "
                                                   "input's header)"),
    ("anomaly_score_topic", ANOMALY_TOPIC, "anomaly score output (std_msgs/Float32)"),
]


def _follow_remapping(config: Mapping[str, str]) -> list[tuple[str, str]]:
    """image_transport naming: the compressed stream follows its image; and the stamped latent follows a
    remapped latent_topic (<latent_topic>_stamped), so two encoders in one namespace never share it."""
    remappings = latent_stamped_follows(config)
    image_topic = config["image_topic"]
    if image_topic != CAMERA_TOPIC:
        remappings.append((COMPRESSED_CAMERA_TOPIC, image_topic + "/compressed"))
    return remappings


def generate_launch_description() -> LaunchDescription:
    return node_launch_description(
        NODE, params_file="encoder.yaml", parameters=PARAMETER_ARGUMENTS, topics=TOPIC_ARGUMENTS,
        profile_purpose="Fast DDS XML profile for large messages; every process that exchanges images with "
                        "this one needs it too.",
        extra_remappings=_follow_remapping)
