"""Latent MPC in the simulator: sim_node + encoder_node on the model + world_model_node.

    ros2 launch vae_ros world_model.launch.py dynamics:=/path/to/dynamics
    ros2 launch vae_ros world_model.launch.py model:=/path/to/scan_model dynamics:=/path/to/dyn seed:=1
    ros2 launch vae_ros world_model.launch.py sim:=false namespace:=robot1 dynamics:=...   # a real robot

sim_node publishes the LaserScan and /clock, encoder_node (modality scan, the same `model` as the
controller) turns each scan into vae/latent_stamped, and world_model_node predicts the next latent
(world_model/predicted_latent) and, once it has a goal, plans cmd_vel toward it. With no goal it publishes
zero velocity and waits; teach a goal with `ros2 service call /servo/set_goal std_srvs/srv/Trigger` or send
one on servo/goal_latent. `dynamics` empty = <model>/dynamics (trained on that model's latents by
`vae-ros train-dynamics`). All nodes read params_file (config/world_model.yaml). This file only includes
sim.launch.py, encoder.launch.py and world_model_node.launch.py, each in its own scope.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction

from vae_ros.ros.kit.launch import (
    controller_pipeline,
    controller_pipeline_arguments,
    node_parameters,
    parameter_arguments,
)

# world_model_node parameters this file passes through when given (empty: params_file).
PASSED = ("dynamics", "horizon", "samples", "iterations", "max_linear", "max_angular",
          "stale_timeout", "tolerance")


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    return controller_pipeline(context, "world_model_node.launch.py",
                               controller_arguments={name: config[name] for name in PASSED})


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *controller_pipeline_arguments("world_model.yaml",
                                       "YAML with sim_node, encoder_node and world_model_node blocks"),
        DeclareLaunchArgument("model", default_value="",
                              description="LaserScan model directory for the encoder and the world model (empty: "
                                          "the packaged models/control_default)"),
        DeclareLaunchArgument("dynamics", default_value="",
                              description="dynamics directory (vae-ros train-dynamics); empty: params_file, whose "
                                          "'' means <model>/dynamics"),
        *parameter_arguments(node_parameters("world_model_node",
                                             [name for name in PASSED if name != "dynamics"])),
        OpaqueFunction(function=_launch_pipeline),
    ])
