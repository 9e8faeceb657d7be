"""Latent servo on a robot: vae/latent_stamped + a goal latent -> cmd_vel (geometry_msgs/Twist).

    ros2 launch vae_ros latent_servo.launch.py
    ros2 launch vae_ros latent_servo.launch.py namespace:=robot1 max_linear:=0.2 use_sim_time:=false

Run it beside an encoder_node on the same control model (servo.launch.py starts both, and the simulator).
Node parameters come from params_file (config/servo.yaml). A parameter argument left empty keeps the file's
value; one given on the command line overrides it. Goals: `ros2 service call servo/set_goal
std_srvs/srv/Trigger` (the current view becomes the goal) or a latent on servo/goal_latent.
"""

from __future__ import annotations

from launch import LaunchDescription

from vae_ros.ros.interface import (
    CMD_TOPIC,
    GOAL_IMAGE_TOPIC,
    GOAL_LATENT_TOPIC,
    LATENT_STAMPED_TOPIC,
    SCAN_TOPIC,
    SERVO_ERROR_TOPIC,
)
from vae_ros.ros.kit.launch import ParameterArgument, TopicArgument, node_launch_description, node_parameters

NODE = "latent_servo_node"

# Node parameters a user sets from the command line (type and description: the node's declarations).
# Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = node_parameters(NODE, [
    "model", "goal_image", "gain", "max_linear", "max_angular", "stale_timeout", "tolerance"])

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[TopicArgument] = [
    ("latent_stamped_topic", LATENT_STAMPED_TOPIC, "stamped latent input (sensor_msgs/Image 32FC1) from the "
                                                   "encoder on the control model"),
    ("cmd_vel_topic", CMD_TOPIC, "velocity command output (geometry_msgs/Twist)"),
    ("scan_topic", SCAN_TOPIC, "LaserScan input of the scan safety layer (no fresh scan: zero velocity)"),
    ("error_topic", SERVO_ERROR_TOPIC, "latent error norm output (std_msgs/Float32)"),
    ("goal_latent_topic", GOAL_LATENT_TOPIC, "goal latent input (std_msgs/Float32MultiArray)"),
    ("goal_image_topic", GOAL_IMAGE_TOPIC, "goal image input (sensor_msgs/Image; looked up among remembered views)"),
]


def generate_launch_description() -> LaunchDescription:
    return node_launch_description(
        NODE, params_file="servo.yaml", parameters=PARAMETER_ARGUMENTS, topics=TOPIC_ARGUMENTS,
        profile_purpose="Fast DDS XML profile for large messages (goal images); the other vae_ros processes "
                        "use it too.")
