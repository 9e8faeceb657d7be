"""World model on a robot: vae/latent_stamped + cmd_vel (+ scan) + a goal -> world_model/predicted_latent, cmd_vel.

    ros2 launch vae_ros world_model_node.launch.py dynamics:=/path/to/dynamics
    ros2 launch vae_ros world_model_node.launch.py namespace:=robot1 samples:=600 use_sim_time:=false

Run it beside an encoder_node on the same model (world_model.launch.py starts both, and the simulator).
Node parameters come from params_file (config/world_model.yaml). A parameter argument left empty keeps the
file's value; one given on the command line overrides it. Goals: `ros2 service call servo/set_goal
std_srvs/srv/Trigger` (the current view becomes the goal) or a latent on servo/goal_latent.
"""

from __future__ import annotations

from launch import LaunchDescription

from vae_ros.ros.interface import (
    CMD_TOPIC,
    GOAL_IMAGE_TOPIC,
    GOAL_LATENT_TOPIC,
    LATENT_STAMPED_TOPIC,
    PREDICTED_TOPIC,
    SCAN_TOPIC,
)
from vae_ros.ros.kit.launch import ParameterArgument, TopicArgument, node_launch_description, node_parameters

NODE = "world_model_node"

# Node parameters a user sets from the command line (type and description: the node's declarations).
# Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = node_parameters(NODE, [
    "model", "dynamics", "goal_image", "horizon", "samples", "iterations", "max_linear", "max_angular",
    "stale_timeout", "tolerance"])

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[TopicArgument] = [
    ("latent_stamped_topic", LATENT_STAMPED_TOPIC, "stamped latent input (sensor_msgs/Image 32FC1)"),
    ("cmd_vel_topic", CMD_TOPIC, "velocity commands: the executed ones in, the plan's out (geometry_msgs/Twist)"),
    ("scan_topic", SCAN_TOPIC, "LaserScan input for the collision cost and the scan safety layer (no fresh scan: "
                              "zero velocity)"),
    ("predicted_latent_topic", PREDICTED_TOPIC, "one-step prediction output (stamped layout)"),
    ("goal_latent_topic", GOAL_LATENT_TOPIC, "goal latent input (std_msgs/Float32MultiArray)"),
    ("goal_image_topic", GOAL_IMAGE_TOPIC, "goal image input (sensor_msgs/Image; camera models)"),
]


def generate_launch_description() -> LaunchDescription:
    return node_launch_description(
        NODE, params_file="world_model.yaml", parameters=PARAMETER_ARGUMENTS, topics=TOPIC_ARGUMENTS,
        profile_purpose="Fast DDS XML profile for large messages (goal images); the other vae_ros processes "
                        "use it too.")
