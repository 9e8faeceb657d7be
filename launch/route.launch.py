"""Teach and repeat in the simulator: sim_node + the encoder the route's model needs + route_follower_node.

    ros2 launch vae_ros route.launch.py route:=/path/to/route
    ros2 launch vae_ros route.launch.py route:=/path/to/route seed:=3 initial_pose:="[0.2, -0.1, 0.1]" \\
        odom_error:=1.0 lighting:=dim
    ros2 launch vae_ros route.launch.py route:=/path/to/route sim:=false namespace:=robot1   # a real robot

`route` (required) is a folder written by `vae-ros teach --out ROUTE`; `model` is the model that taught it
(empty: the packaged control model, models/control_default, a LaserScan model), and the follower refuses a
route of another model. The encoder is started for the model's modality (read from its model.json): for the
packaged control model one encoder_node with modality scan, and the simulator publishes its 2-D LiDAR (and
its camera only for an image model); for a fused camera + LiDAR model (models/fused_default) one encoder_node
with modality fused, and the simulator publishes camera and scan. A route taught with the control model
repeats with a fused model whose LiDAR expert is that model (the follower checks the expert's weights digest). The simulator takes `seed`, `initial_pose`, `odom_error` (wheel-odometry
error: 0 ideal, 1 typical) and `lighting` (default, dim, bright, side). The follower starts localising as soon
as latents and odometry arrive; `servo/clear_goal` stops it, `servo/set_goal` restarts the route. All nodes read
params_file (config/route.yaml). This file only includes sim.launch.py, encoder.launch.py and
route_follower.launch.py, each in its own scope.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from vae_ros.ros.kit.launch import (
    CONTROL_MODEL,
    PACKAGE,
    controller_pipeline,
    controller_pipeline_arguments,
    model_modality,
    node_parameters,
    parameter_arguments,
)

# route_follower_node parameters this file passes through when given (empty: params_file).
PASSED = ("max_linear", "max_angular", "stale_timeout", "lost_timeout")
# sim_node parameters this file passes through when given (empty: params_file).
SIM_PASSED = ("odom_error", "lighting")


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    if not config["route"].strip():
        raise ValueError("route.launch.py needs route:=ROUTE, a folder written by `vae-ros teach --out ROUTE`")
    model = config["model"] or PathJoinSubstitution([FindPackageShare(PACKAGE), "models", CONTROL_MODEL]).perform(context)
    return controller_pipeline(context, "route_follower.launch.py", encoder_only=("backend", "device"),
                               controller_arguments={"route": config["route"],
                                                     **{name: config[name] for name in PASSED}},
                               sim_arguments=SIM_PASSED, modality=model_modality(model))


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("route", description="route folder written by `vae-ros teach --out ROUTE` (required)"),
        *controller_pipeline_arguments("route.yaml", "YAML with sim_node, encoder_node and route_follower_node blocks",
                                       goal_image=False),
        DeclareLaunchArgument("model", default_value="",
                              description="the model that taught the route, for the encoder and the follower (empty: "
                                          "the packaged models/control_default); its modality picks the encoder"),
        DeclareLaunchArgument("backend", default_value="",
                              description="the encoder's runtime: auto | torch | onnxruntime | tensorrt (empty: "
                                          "params_file)"),
        DeclareLaunchArgument("device", default_value="", description="the encoder's device: cpu | cuda (empty: "
                                                                       "params_file)"),
        *parameter_arguments(node_parameters("sim_node", SIM_PASSED)),
        *parameter_arguments(node_parameters("route_follower_node", PASSED)),
        OpaqueFunction(function=_launch_pipeline),
    ])
