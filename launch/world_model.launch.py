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
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from vae_ros.launch_support import (
    PACKAGE,
    fastdds_profile_argument,
    flag,
    include,
    log_level_argument,
    namespace_argument,
    params_file_argument,
    use_sim_time_argument,
)

CONTROL_MODEL = "control_default"  # vae_ros.control.control_model.CONTROL_MODEL (no torch import here)
# world_model_node parameters this file passes through when given (empty: params_file).
PASSED = ("dynamics", "goal_image", "horizon", "samples", "iterations", "max_linear", "max_angular",
          "stale_timeout", "tolerance")


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    sim = flag(config, "sim")
    use_sim_time = config["use_sim_time"].strip() or str(sim).lower()
    if use_sim_time.lower() not in ("true", "false"):
        raise ValueError(f"launch argument use_sim_time:={use_sim_time!r} must be true, false or empty")
    common = {name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level")}
    # The encoder and the world model must run the same model; '' = the packaged control model (the
    # encoder's own '' would mean the plain scan model, so the path is always given).
    model = config["model"] or PathJoinSubstitution(
        [FindPackageShare(PACKAGE), "models", CONTROL_MODEL]).perform(context)
    nodes = {"model": model, "use_sim_time": use_sim_time.lower()}
    actions = []
    if sim:
        # The simulator is the clock: it paces itself on the wall clock and publishes /clock.
        actions.append(include(PACKAGE, "sim.launch.py", {
            **common, "lidar": "scan", "seed": config["seed"], "initial_pose": config["initial_pose"],
            "mujoco_gl": config["mujoco_gl"]}))
    actions += [
        include(PACKAGE, "encoder.launch.py", {**common, **nodes, "modality": "scan"}),
        include(PACKAGE, "world_model_node.launch.py", {**common, **nodes,
                                                        **{name: config[name] for name in PASSED}}),
    ]
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        namespace_argument("namespace for all nodes and their relative topics (e.g. robot1)"),
        params_file_argument("world_model.yaml", "YAML with sim_node, encoder_node and world_model_node blocks"),
        use_sim_time_argument("", "true: follow /clock (empty: true with the simulator, false without)"),
        fastdds_profile_argument("Fast DDS XML profile for large messages (images between vae_ros processes)."),
        DeclareLaunchArgument("sim", default_value="true",
                              description="true: run sim_node; false: the robot's own scan, odom and cmd_vel"),
        DeclareLaunchArgument("seed", default_value="", description="simulator world seed (empty: params_file)"),
        DeclareLaunchArgument("initial_pose", default_value="",
                              description="robot start [x, y, yaw] in the simulator, e.g. '[0.5, -0.3, 0.4]' "
                                          "(empty: params_file)"),
        DeclareLaunchArgument("model", default_value="",
                              description="LaserScan model directory for the encoder and the world model (empty: "
                                          "the packaged models/control_default)"),
        DeclareLaunchArgument("dynamics", default_value="",
                              description="dynamics directory (vae-ros train-dynamics); empty: params_file, whose "
                                          "'' means <model>/dynamics"),
        DeclareLaunchArgument("goal_image", default_value="",
                              description="image file whose latent is the goal (camera models only; empty: teach "
                                          "with servo/set_goal or send servo/goal_latent)"),
        *[DeclareLaunchArgument(name, default_value="", description=f"world_model_node {name} (empty: params_file)")
          for name in PASSED if name not in ("dynamics", "goal_image")],
        DeclareLaunchArgument("mujoco_gl",
                              default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering: egl (headless), glfw (with a display) or osmesa"),
        log_level_argument(),
        OpaqueFunction(function=_launch_pipeline),
    ])
