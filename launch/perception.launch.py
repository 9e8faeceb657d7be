"""Simulated robot + VAE encoder + decoder: the whole perception pipeline on one machine.

    ros2 launch vae_ros perception.launch.py
    ros2 launch vae_ros perception.launch.py modality:=scan seed:=3
    ros2 launch vae_ros perception.launch.py modality:=pointcloud namespace:=robot1 backend:=onnxruntime

sim_node publishes the sensors and /clock, encoder_node turns the chosen sensor into vae/latent and
decoder_node turns latents back into vae/reconstruction (view it with rqt_image_view). All three read
params_file (config/perception.yaml); encoder and decoder follow simulated time. The simulator renders
its camera only for modality image (camera:=true/false decides otherwise). This file only includes
sim.launch.py, encoder.launch.py and decoder.launch.py, each in its own scope, so later pipelines
(servoing, world model) can include the same files.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import EnvironmentVariable

from vae_ros.ros.kit.launch import (
    LIDAR_FOR_MODALITY,
    PACKAGE,
    fastdds_profile_argument,
    flag,
    include,
    log_level_argument,
    modality_of,
    namespace_argument,
    params_file_argument,
    use_sim_time_argument,
    vae_arguments,
)


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    modality = modality_of(config)
    common = {name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level")}
    vae = {name: config[name] for name in ("model", "backend", "device")}
    vae["modality"] = modality
    vae["use_sim_time"] = str(flag(config, "use_sim_time")).lower()
    # Rendering is most of the simulator's cost: only an image encoder (or the user) needs the camera.
    camera = flag(config, "camera") if config["camera"] else modality == "image"
    sim = {**common, "lidar": config["lidar"] or LIDAR_FOR_MODALITY[modality], "mujoco_gl": config["mujoco_gl"],
           "publish_camera": str(camera).lower(), "seed": config["seed"], "initial_pose": config["initial_pose"]}
    actions = [
        # The simulator is the clock: it paces itself on the wall clock and publishes /clock.
        include(PACKAGE, "sim.launch.py", sim),
        include(PACKAGE, "encoder.launch.py", {**common, **vae}),
    ]
    if flag(config, "decoder"):
        actions.append(include(PACKAGE, "decoder.launch.py", {**common, **vae}))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        namespace_argument("namespace for all nodes and their relative topics (e.g. robot1)"),
        params_file_argument("perception.yaml", "YAML with sim_node, encoder_node and decoder_node blocks"),
        use_sim_time_argument("true", "encoder and decoder follow the simulator's /clock"),
        fastdds_profile_argument("Fast DDS XML profile for large messages (camera images from the simulator "
                                 "to the encoder)."),
        *vae_arguments("model directory for encoder and decoder (empty: params_file, whose '' means the "
                       "packaged default)"),
        DeclareLaunchArgument("lidar", default_value="",
                              description="simulated LiDAR: scan | pointcloud | both | none (empty: what "
                                          "the modality needs)"),
        DeclareLaunchArgument("camera", default_value="",
                              description="true | false: the simulator renders camera/image_raw (empty: only "
                                          "for modality image)"),
        DeclareLaunchArgument("seed", default_value="",
                              description="the simulator's world seed (empty: params_file)"),
        DeclareLaunchArgument("initial_pose", default_value="",
                              description="the robot's start [x, y, yaw] in the odom frame (empty: "
                                          "params_file)"),
        DeclareLaunchArgument("decoder", default_value="true",
                              description="true: also run decoder_node (vae/reconstruction)"),
        DeclareLaunchArgument("mujoco_gl",
                              default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering: egl (headless), glfw (with a display) or "
                                          "osmesa"),
        log_level_argument(),
        OpaqueFunction(function=_launch_pipeline),
    ])
