"""Simulated robot + LiDAR encoder + world_model_node: latent MPC toward a goal, on one machine.

    ros2 launch vae_ros world_model.launch.py dynamics:=/path/to/dynamics
    ros2 launch vae_ros world_model.launch.py model:=/path/to/models/scan_default dynamics:=/path/to/dyn seed:=1
    ros2 launch vae_ros world_model.launch.py sim:=false namespace:=robot1 dynamics:=...   # a real robot

sim_node publishes the LaserScan and /clock, encoder_node (modality scan, the same `model` as the
controller) turns each scan into vae/latent_stamped, and world_model_node predicts the next latent
(world_model/predicted_latent) and, once it has a goal, plans cmd_vel toward it. With no goal it publishes
zero velocity and waits; teach a goal with `ros2 service call servo/set_goal std_srvs/srv/Trigger` or send
one on servo/goal_latent. `dynamics` empty = <model>/dynamics (a dynamics directory trained on that
model's latents by `vae-ros train-dynamics`). All nodes read params_file (config/world_model.yaml); a
parameter argument left empty keeps the file's value.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from vae_ros.launch_support import (
    PACKAGE,
    ParameterArgument,
    fastdds_profile_argument,
    flag,
    include,
    log_level_argument,
    namespace_argument,
    parameter_arguments,
    params_file_argument,
    profile_actions,
    typed,
    use_sim_time_argument,
)

NODE = "world_model_node"

# world_model_node parameters a user sets from the command line. Empty = params_file's value.
PARAMETER_ARGUMENTS: list[ParameterArgument] = [
    ("goal_image", str, "image file whose latent is the goal at start (camera models only)"),
    ("horizon", int, "planning horizon in model steps"),
    ("samples", int, "CEM candidate sequences per iteration"),
    ("iterations", int, "CEM iterations per plan"),
    ("max_linear", float, "speed limit in m/s"),
    ("max_angular", float, "turn-rate limit in rad/s"),
    ("stale_timeout", float, "seconds without a fresh latent before the node publishes zero velocity"),
    ("tolerance", float, "latent error that counts as converged (0: the model's calibrated value)"),
]


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    common = {name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level")}
    sim_time = str(flag(config, "use_sim_time")).lower()
    actions = []
    if flag(config, "sim"):
        sim = {**common, "lidar": "scan", "mujoco_gl": config["mujoco_gl"]}
        for name in ("seed", "initial_pose"):
            if config[name]:
                sim[name] = config[name]
        actions.append(include(PACKAGE, "sim.launch.py", sim))
    # The encoder encodes with the controller's model, so latents and dynamics agree.
    actions.append(include(PACKAGE, "encoder.launch.py", {**common, "modality": "scan", "model": config["model"],
                                                           "use_sim_time": sim_time}))
    overrides = {name: typed(name, config[name], kind) for name, kind, _ in PARAMETER_ARGUMENTS if config[name]}
    overrides.update(model=config["model"], dynamics=config["dynamics"],
                     use_sim_time=typed("use_sim_time", sim_time, bool))
    actions += profile_actions(context, config["fastdds_profile"])
    actions.append(Node(
        package=PACKAGE, executable=NODE, name=NODE, namespace=config["namespace"],
        parameters=[config["params_file"], overrides],
        arguments=["--ros-args", "--log-level", config["log_level"]],
        output="screen", emulate_tty=True))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        namespace_argument("namespace for all nodes and their relative topics (e.g. robot1)"),
        params_file_argument("world_model.yaml", "YAML with sim_node, encoder_node and world_model_node blocks"),
        use_sim_time_argument("true", "encoder and world model follow the simulator's /clock (false with sim:=false "
                                      "on a real robot)"),
        fastdds_profile_argument("Fast DDS XML profile for large messages (the simulator's sensors)."),
        DeclareLaunchArgument("sim", default_value="true", description="true: run sim_node (false: a real robot "
                                                                       "publishes scan and takes cmd_vel)"),
        DeclareLaunchArgument("model", default_value=PathJoinSubstitution(
            [FindPackageShare(PACKAGE), "models", "control_default"]),
            description="LaserScan VAE model directory for the encoder and the world model (default: the packaged "
                        "control model)"),
        DeclareLaunchArgument("dynamics", default_value="",
                              description="dynamics directory (vae-ros train-dynamics); empty: <model>/dynamics"),
        DeclareLaunchArgument("seed", default_value="", description="simulator world seed (empty: params_file)"),
        DeclareLaunchArgument("initial_pose", default_value="",
                              description="simulator start [x, y, yaw] (empty: params_file)"),
        DeclareLaunchArgument("mujoco_gl", default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering: egl (headless), glfw (with a display) or osmesa"),
        log_level_argument(),
        *parameter_arguments(PARAMETER_ARGUMENTS),
        OpaqueFunction(function=_launch_pipeline),
    ])
