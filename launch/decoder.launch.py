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

from vae_ros.launch_support import (
    ParameterArgument,
    TopicArgument,
    latent_stamped_follows,
    node_launch_description,
)

NODE = "decoder_node"

# Node parameters a user sets from the command line: (name, type, description). Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = [
    ("model", str, "model directory (the encoder's); '' in params_file = the packaged default for the "
                   "modality"),
    ("modality", str, "image | scan | pointcloud ('' in params_file = the model's)"),
    ("backend", str, "auto | torch | onnxruntime | tensorrt"),
    ("device", str, "cpu | cuda"),
    ("frame_id", str, "header.frame_id of outputs decoded from unstamped vae/latent"),
    ("generate", bool, "true: decode samples of the prior N(0, I) instead of vae/latent"),
    ("generate_rate", float, "samples per second when generating"),
    ("seed", int, "seed of the prior samples"),
    ("engine_cache", str, "folder kept across starts for TensorRT engines ('' = the model directory's trt/)"),
    ("warmup", int, "inferences on a blank input before the first message is accepted"),
]

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[TopicArgument] = [
    ("latent_topic", "vae/latent", "latent input (std_msgs/Float32MultiArray)"),
    ("latent_stamped_topic", "vae/latent_stamped", "stamped latent input (sensor_msgs/Image 32FC1 with the "
                                                   "sensor's header); preferred over latent_topic"),
    ("reconstruction_topic", "vae/reconstruction", "reconstruction output (sensor_msgs/Image)"),
    ("decoded_scan_topic", "vae/scan", "decoded LaserScan output (scan models)"),
    ("decoded_points_topic", "vae/points", "decoded PointCloud2 output (pointcloud models)"),
]


def generate_launch_description() -> LaunchDescription:
    return node_launch_description(
        NODE, params_file="decoder.yaml", parameters=PARAMETER_ARGUMENTS, topics=TOPIC_ARGUMENTS,
        profile_purpose="Fast DDS XML profile for large messages; every process that receives the "
                        "reconstructions needs it too.",
        extra_remappings=latent_stamped_follows)
