"""Latent servoing in the simulator: sim_node + encoder_node on the control model + latent_servo_node.

    ros2 launch vae_ros servo.launch.py
    ros2 launch vae_ros servo.launch.py seed:=1 initial_pose:="[0.5, -0.3, 0.4]"
    ros2 launch vae_ros servo.launch.py sim:=false namespace:=robot1     # a real robot's scan and cmd_vel

With no goal the servo publishes zero velocity and waits. Teach a goal where the robot stands with
`ros2 service call /servo/set_goal std_srvs/srv/Trigger`, move the robot (e.g. `ros2 param set /sim_node
initial_pose "[x, y, yaw]"`) and it drives back; or send a goal latent on servo/goal_latent. The packaged
control model (models/control_default) reads LaserScans: the simulator runs with its 2-D LiDAR and without
the camera, and one encoder_node (modality scan) feeds the servo. `model` sets the control model of both
the encoder and the servo (they must match). All nodes read params_file (config/servo.yaml). This file
only includes sim.launch.py, encoder.launch.py and latent_servo.launch.py, each in its own scope.
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


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    sim = flag(config, "sim")
    use_sim_time = config["use_sim_time"].strip() or str(sim).lower()
    if use_sim_time.lower() not in ("true", "false"):
        raise ValueError(f"launch argument use_sim_time:={use_sim_time!r} must be true, false or empty")
    common = {name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level")}
    # The encoder and the servo must run the same control model; '' = the packaged one (the encoder's own
    # '' would mean the plain scan model, so the path is always given).
    model = config["model"] or PathJoinSubstitution(
        [FindPackageShare(PACKAGE), "models", CONTROL_MODEL]).perform(context)
    nodes = {"model": model, "backend": config["backend"], "device": config["device"],
             "use_sim_time": use_sim_time.lower()}
    actions = []
    if sim:
        # The simulator is the clock: it paces itself on the wall clock and publishes /clock.
        actions.append(include(PACKAGE, "sim.launch.py", {
            **common, "lidar": "scan", "seed": config["seed"], "initial_pose": config["initial_pose"],
            "mujoco_gl": config["mujoco_gl"]}))
    actions += [
        include(PACKAGE, "encoder.launch.py", {**common, **nodes, "modality": "scan"}),
        include(PACKAGE, "latent_servo.launch.py", {**common, **nodes, "goal_image": config["goal_image"]}),
    ]
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        namespace_argument("namespace for all nodes and their relative topics (e.g. robot1)"),
        params_file_argument("servo.yaml", "YAML with sim_node, encoder_node and latent_servo_node blocks"),
        use_sim_time_argument("", "true: follow /clock (empty: true with the simulator, false without)"),
        fastdds_profile_argument("Fast DDS XML profile for large messages (images between vae_ros processes)."),
        DeclareLaunchArgument("sim", default_value="true",
                              description="true: run sim_node; false: the robot's own scan, odom and cmd_vel"),
        DeclareLaunchArgument("seed", default_value="", description="simulator world seed (empty: params_file)"),
        DeclareLaunchArgument("initial_pose", default_value="",
                              description="robot start [x, y, yaw] in the simulator, e.g. '[0.5, -0.3, 0.4]' "
                                          "(empty: params_file)"),
        DeclareLaunchArgument("goal_image", default_value="",
                              description="image file whose latent is the goal (camera control models only; "
                                          "empty: teach with servo/set_goal or send servo/goal_latent)"),
        DeclareLaunchArgument("model", default_value="",
                              description="control model directory for the encoder and the servo (empty: the "
                                          "packaged models/control_default)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | torch | onnxruntime | tensorrt (empty: params_file)"),
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda (empty: params_file)"),
        DeclareLaunchArgument("mujoco_gl",
                              default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering: egl (headless), glfw (with a display) or osmesa"),
        log_level_argument(),
        OpaqueFunction(function=_launch_pipeline),
    ])
