"""Route follower on a robot: vae/latent_stamped + odom + a taught route -> cmd_vel, route/path.

    ros2 launch vae_ros route_follower.launch.py route:=/path/to/route
    ros2 launch vae_ros route_follower.launch.py route:=/path/to/route namespace:=robot1 use_sim_time:=false

Run it beside an encoder_node on the route's model (route.launch.py starts both, and the simulator). Node
parameters come from params_file (config/route.yaml). A parameter argument left empty keeps the file's value;
one given on the command line overrides it; without a route the node refuses to start. `ros2 service call
servo/clear_goal std_srvs/srv/Trigger` stops the repeat (and keeps it stopped), `servo/set_goal` starts it
again from a fresh localisation.
"""

from __future__ import annotations

from launch import LaunchDescription

from vae_ros.ros.interface import CMD_TOPIC, LATENT_STAMPED_TOPIC, ODOM_TOPIC, ROUTE_PATH_TOPIC, SCAN_TOPIC
from vae_ros.ros.kit.launch import ParameterArgument, TopicArgument, node_launch_description, node_parameters

NODE = "route_follower_node"

# Node parameters a user sets from the command line (type and description: the node's declarations).
# Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = node_parameters(NODE, [
    "route", "model", "max_linear", "max_angular", "stale_timeout", "lost_timeout", "odom_timeout", "lookahead",
    "window", "min_quality", "scan_safety"])

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[TopicArgument] = [
    ("latent_stamped_topic", LATENT_STAMPED_TOPIC, "stamped latent input (sensor_msgs/Image 32FC1) from the "
                                                   "encoder on the route's model"),
    ("odom_topic", ODOM_TOPIC, "odometry input (nav_msgs/Odometry): increments between latent matches"),
    ("cmd_vel_topic", CMD_TOPIC, "velocity command output (geometry_msgs/Twist)"),
    ("scan_topic", SCAN_TOPIC, "LaserScan input of the scan safety layer (no fresh scan: zero velocity)"),
    ("path_topic", ROUTE_PATH_TOPIC, "the taught route's poses (nav_msgs/Path, transient local), for RViz"),
]


def generate_launch_description() -> LaunchDescription:
    return node_launch_description(
        NODE, params_file="route.yaml", parameters=PARAMETER_ARGUMENTS, topics=TOPIC_ARGUMENTS,
        profile_purpose="Fast DDS XML profile for large messages; the other vae_ros processes use it too.")
