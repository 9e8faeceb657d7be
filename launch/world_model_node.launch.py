"""World model on a robot: vae/latent_stamped + cmd_vel (+ scan) + a goal -> world_model/predicted_latent, cmd_vel.

    ros2 launch vae_ros world_model_node.launch.py dynamics:=/path/to/dynamics
    ros2 launch vae_ros world_model_node.launch.py namespace:=robot1 samples:=1000 use_sim_time:=false

Run it beside an encoder_node on the same model (world_model.launch.py starts both, and the simulator).
Node parameters come from params_file (config/world_model.yaml). A parameter argument left empty keeps the
file's value; one given on the command line overrides it. Goals: `ros2 service call servo/set_goal
std_srvs/srv/Trigger` (the current view becomes the goal) or a latent on servo/goal_latent.
"""

from __future__ import annotations

from launch import LaunchDescription

from vae_ros.launch_support import ParameterArgument, TopicArgument, node_launch_description

NODE = "world_model_node"

# Node parameters a user sets from the command line: (name, type, description). Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = [
    ("model", str, "model directory (the encoder's); '' in params_file = the packaged models/control_default"),
    ("dynamics", str, "dynamics directory (vae-ros train-dynamics); '' in params_file = <model>/dynamics"),
    ("goal_image", str, "image file whose latent is the goal (camera models only)"),
    ("horizon", int, "planning horizon in model steps"),
    ("samples", int, "CEM candidate sequences per iteration"),
    ("iterations", int, "CEM iterations per plan"),
    ("max_linear", float, "speed limit in m/s"),
    ("max_angular", float, "turn-rate limit in rad/s"),
    ("stale_timeout", float, "seconds since the newest latent's stamp after which the command is zero"),
    ("tolerance", float, "latent error counted as converged; 0 = the model's calibrated value"),
]

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[TopicArgument] = [
    ("latent_stamped_topic", "vae/latent_stamped", "stamped latent input (sensor_msgs/Image 32FC1)"),
    ("cmd_vel_topic", "cmd_vel", "velocity commands: the executed ones in, the plan's out (geometry_msgs/Twist)"),
    ("scan_topic", "scan", "LaserScan input for the collision cost"),
    ("predicted_latent_topic", "world_model/predicted_latent", "one-step prediction output (stamped layout)"),
    ("goal_latent_topic", "servo/goal_latent", "goal latent input (std_msgs/Float32MultiArray)"),
    ("goal_image_topic", "servo/goal_image", "goal image input (sensor_msgs/Image; camera models)"),
]


def generate_launch_description() -> LaunchDescription:
    return node_launch_description(
        NODE, params_file="world_model.yaml", parameters=PARAMETER_ARGUMENTS, topics=TOPIC_ARGUMENTS,
        profile_purpose="Fast DDS XML profile for large messages (goal images); the other vae_ros processes "
                        "use it too.")
