"""Latent servoing in the simulator: sim_node + encoder_node on the control model + latent_servo_node.

    ros2 launch vae_ros servo.launch.py
    ros2 launch vae_ros servo.launch.py seed:=1 initial_pose:="[0.5, -0.3, 0.4]"
    ros2 launch vae_ros servo.launch.py sim:=false namespace:=robot1     # a real robot's scan and cmd_vel

With no goal the servo publishes zero velocity and waits. Teach a goal where the robot stands with
`ros2 service call /servo/set_goal std_srvs/srv/Trigger`, move the robot (e.g. `ros2 param set /sim_node
initial_pose "[x, y, yaw]"`) and it drives back; or send a goal latent on servo/goal_latent. The packaged
control model (models/control_default) reads LaserScans: the simulator runs with its 2-D LiDAR and without
the camera, and one encoder_node (modality scan) feeds the servo. A fused camera + LiDAR model (e.g.
model:=.../models/fused_default) starts one encoder_node with modality fused on the camera and the scan, and
the simulator publishes both (the encoder's modality is the model's, read from its model.json). `model` sets the control model of both
the encoder and the servo (they must match). All nodes read params_file (config/servo.yaml). This file
only includes sim.launch.py, encoder.launch.py and latent_servo.launch.py, each in its own scope.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction

from vae_ros.ros.kit.launch import controller_pipeline, controller_pipeline_arguments


def _launch_pipeline(context, *args, **kwargs):
    return controller_pipeline(context, "latent_servo.launch.py", encoder_only=("backend", "device"))


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *controller_pipeline_arguments("servo.yaml", "YAML with sim_node, encoder_node and latent_servo_node blocks"),
        DeclareLaunchArgument("model", default_value="",
                              description="control model directory for the encoder and the servo (empty: the "
                                          "packaged models/control_default)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="the encoder's runtime: auto | torch | onnxruntime | tensorrt (empty: "
                                          "params_file)"),
        DeclareLaunchArgument("device", default_value="", description="the encoder's device: cpu | cuda (empty: "
                                                                       "params_file)"),
        OpaqueFunction(function=_launch_pipeline),
    ])
