"""VAE decoder on a robot: vae/latent_stamped or vae/latent -> vae/reconstruction (sensor_msgs/Image), for
viewing, and for LiDAR models vae/scan (LaserScan) or vae/points (PointCloud2) in the sensor's stamp and frame.

    ros2 launch vae_ros decoder.launch.py
    ros2 launch vae_ros decoder.launch.py model:=/data/models/scan_run3 backend:=onnxruntime

Give it the model directory the encoder uses. Node parameters come from params_file (config/decoder.yaml).
A parameter argument left empty keeps the file's value; one given on the command line overrides it. The
node loads the Fast DDS large-data profile (config/fastdds_large_data.xml) unless fastdds_profile says
otherwise.
"""

from __future__ import annotations

from launch import LaunchDescription

from vae_ros.ros.interface import (
    DECODED_POINTS_TOPIC,
    DECODED_SCAN_TOPIC,
    LATENT_STAMPED_TOPIC,
    LATENT_TOPIC,
    RECONSTRUCTION_TOPIC,
)
from vae_ros.ros.kit.launch import (
    ParameterArgument,
    TopicArgument,
    latent_stamped_follows,
    node_launch_description,
    node_parameters,
)

NODE = "decoder_node"

# Node parameters a user sets from the command line (type and description: the node's declarations).
# Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = node_parameters(NODE, [
    "model", "modality", "backend", "device", "frame_id", "generate", "generate_rate", "seed", "engine_cache",
    "warmup"])

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[TopicArgument] = [
    ("latent_topic", LATENT_TOPIC, "latent input (std_msgs/Float32MultiArray)"),
    ("latent_stamped_topic", LATENT_STAMPED_TOPIC, "stamped latent input (sensor_msgs/Image 32FC1 with the "
                                                   "sensor's header); preferred over latent_topic"),
    ("reconstruction_topic", RECONSTRUCTION_TOPIC, "reconstruction output (sensor_msgs/Image)"),
    ("decoded_scan_topic", DECODED_SCAN_TOPIC, "decoded LaserScan output (scan models)"),
    ("decoded_points_topic", DECODED_POINTS_TOPIC, "decoded PointCloud2 output (pointcloud models)"),
]


def generate_launch_description() -> LaunchDescription:
    return node_launch_description(
        NODE, params_file="decoder.yaml", parameters=PARAMETER_ARGUMENTS, topics=TOPIC_ARGUMENTS,
        profile_purpose="Fast DDS XML profile for large messages; every process that receives the "
                        "reconstructions needs it too.",
        extra_remappings=latent_stamped_follows)
