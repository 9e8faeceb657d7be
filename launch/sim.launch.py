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

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import EnvironmentVariable

from vae_ros.ros.interface import CAMERA_TOPIC, CLOUD_TOPIC, CMD_TOPIC, ODOM_TOPIC, SCAN_TOPIC
from vae_ros.ros.kit.launch import ParameterArgument, TopicArgument, node_launch_description, node_parameters

NODE = "sim_node"

# Node parameters a user sets from the command line (type and description: the node's declarations).
# Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = node_parameters(NODE, [
    "rate", "image_width", "image_height", "lidar", "seed", "initial_pose", "max_linear", "max_angular",
    "cmd_timeout", "publish_camera", "odom_error", "lighting"])

# Topic arguments: (argument, contract topic it remaps, description).
TOPIC_ARGUMENTS: list[TopicArgument] = [
    ("image_topic", CAMERA_TOPIC, "camera output (sensor_msgs/Image)"),
    ("scan_topic", SCAN_TOPIC, "2-D LiDAR output (sensor_msgs/LaserScan)"),
    ("points_topic", CLOUD_TOPIC, "3-D LiDAR output (sensor_msgs/PointCloud2)"),
    ("odom_topic", ODOM_TOPIC, "odometry output (nav_msgs/Odometry; ground truth unless odom_error > 0)"),
    ("cmd_vel_topic", CMD_TOPIC, "velocity command input (geometry_msgs/Twist)"),
]


def generate_launch_description() -> LaunchDescription:
    mujoco_gl = DeclareLaunchArgument("mujoco_gl",
                                      default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                                      description="MuJoCo rendering: egl (headless, default), glfw (with a "
                                                  "display) or osmesa")
    # The simulator is the clock: no use_sim_time.
    return node_launch_description(
        NODE, params_file="sim.yaml", parameters=PARAMETER_ARGUMENTS, topics=TOPIC_ARGUMENTS,
        profile_purpose="Fast DDS XML profile for large messages; every process that subscribes to its "
                        "camera or point cloud needs it too.",
        use_sim_time=False, extra_arguments=[mujoco_gl], environment={"MUJOCO_GL": "mujoco_gl"})
