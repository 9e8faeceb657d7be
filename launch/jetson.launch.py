"""The VAE pipeline on a Jetson: encoder (and decoder) on TensorRT FP16 on the GPU, engines cached on disk.

    ros2 launch vae_ros jetson.launch.py                                   # camera encoder, config/jetson.yaml
    ros2 launch vae_ros jetson.launch.py modality:=scan model:=/data/models/scan_run3 decoder:=true
    ros2 launch vae_ros jetson.launch.py engine_cache:=/ssd/vae_engines warmup:=20 namespace:=robot1
    ros2 launch vae_ros jetson.launch.py sim:=true modality:=scan         # with the simulator as the sensor

params_file (config/jetson.yaml) sets backend tensorrt, device cuda, the engine cache folder and the warm-up.
TensorRT engines are built on the first start on the device (a minute or so) and reused afterwards; they are
rebuilt when the GPU, the TensorRT version or the weights change. Before the first frame is accepted each
node runs `warmup` inferences on a blank input. Where torch_tensorrt is absent (NVIDIA's Jetson torch wheels
do not include it) the nodes fall back to ONNX Runtime's TensorRT, then CUDA execution provider, and say so
once at start in the log and in /diagnostics (key `fallback`). Sensor topics: the encoder.launch.py
defaults (camera/image_raw, scan, lidar/points) in `namespace`; remap them with encoder.launch.py instead
when the drivers publish elsewhere.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction

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
)

# Passed to encoder.launch.py and decoder.launch.py as given (empty: params_file's value).
PASSED_ON = ("namespace", "params_file", "fastdds_profile", "log_level", "model", "backend", "device",
             "engine_cache", "warmup")


def _launch_pipeline(context, *args, **kwargs):
    config = context.launch_configurations
    modality = modality_of(config)
    sim = flag(config, "sim")
    vae = {name: config[name] for name in PASSED_ON}
    vae["modality"] = modality
    # The simulator is the clock when it runs; a real robot's sensors stamp with the system clock.
    vae["use_sim_time"] = "true" if sim else str(flag(config, "use_sim_time")).lower()
    actions = [include(PACKAGE, "encoder.launch.py", vae)]
    if flag(config, "decoder"):
        actions.append(include(PACKAGE, "decoder.launch.py", vae))
    if sim:
        actions.append(include(PACKAGE, "sim.launch.py", {
            **{name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level")},
            "lidar": LIDAR_FOR_MODALITY[modality], "publish_camera": str(modality == "image").lower()}))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        namespace_argument("namespace for all nodes and their relative topics (e.g. robot1)"),
        params_file_argument("jetson.yaml", "YAML with encoder_node and decoder_node blocks (TensorRT, CUDA, "
                                            "engine cache, warm-up)"),
        use_sim_time_argument("false", "true: follow /clock (bag playback); sim:=true sets it"),
        fastdds_profile_argument("Fast DDS XML profile for large messages (camera images into the encoder)."),
        DeclareLaunchArgument("modality", default_value="image",
                              description="what the encoder encodes: image | scan | pointcloud"),
        DeclareLaunchArgument("model", default_value="",
                              description="model directory (empty: params_file, whose '' means the packaged "
                                          "default for the modality)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="tensorrt | onnxruntime | torch | auto (empty: params_file, tensorrt)"),
        DeclareLaunchArgument("device", default_value="", description="cuda | cpu (empty: params_file, cuda)"),
        DeclareLaunchArgument("engine_cache", default_value="",
                              description="folder kept across starts for TensorRT engines (empty: params_file, "
                                          "~/.cache/vae_ros/engines)"),
        DeclareLaunchArgument("warmup", default_value="",
                              description="inferences on a blank input before the first frame (empty: "
                                          "params_file)"),
        DeclareLaunchArgument("decoder", default_value="false",
                              description="true: also run decoder_node (vae/reconstruction, vae/scan, vae/points)"),
        DeclareLaunchArgument("sim", default_value="false",
                              description="true: also run the simulator as the sensor (and clock)"),
        log_level_argument(),
        OpaqueFunction(function=_launch_pipeline),
    ])
