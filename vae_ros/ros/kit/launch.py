"""What the launch files under launch/ share: typed parameter overrides, the Fast DDS profile environment,
the common launch arguments and the OpaqueFunction that starts one vae_ros node.

Only launch files import this module: it imports ROS 2's `launch` and `launch_ros`, which the nodes, the
CLI and the core do not need (no other vae_ros module imports it). Nothing runs at import time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from vae_ros.ros.interface import GOAL_LATENT_TOPIC, LATENT_STAMPED_TOPIC, LATENT_TOPIC, SET_GOAL_SERVICE
from vae_ros.ros.kit.params import NODE_PARAMS, specs_of
from vae_ros.ros.kit.run import FASTDDS_PROFILE_NAME, PROFILE_VARIABLES, profile_variables_for

PACKAGE = "vae_ros"

# A node parameter a user sets from the command line: (name, type, description). Empty = params_file's value.
ParameterArgument = tuple[str, type, str]
# A topic argument: (argument, contract topic it remaps, description).
TopicArgument = tuple[str, str, str]
# Launch configurations (argument name -> text) -> extra (from, to) remappings.
RemappingRule = Callable[[Mapping[str, str]], list[tuple[str, str]]]

_EXAMPLES = {bool: "true", int: "10", float: "1.5", list: "[0.0, 0.0, 0.0]"}
# Which simulated LiDAR each encoder modality needs.
LIDAR_FOR_MODALITY = {"image": "scan", "scan": "scan", "pointcloud": "pointcloud"}


# -- resolving arguments (inside OpaqueFunctions) ---------------------------------------------------------
def typed(name: str, text: str, kind: type) -> object:
    """A launch argument's text as the node parameter's type (launch arguments are always strings)."""
    if kind is str:
        return text
    value = yaml.safe_load(text)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is list and isinstance(value, list) and all(isinstance(v, int | float) for v in value):
        return [float(v) for v in value]
    raise ValueError(f"launch argument {name}:={text!r} is not a {kind.__name__} (e.g. {_EXAMPLES[kind]})")


def flag(config: Mapping[str, str], name: str) -> bool:
    """A true/false launch argument of a pipeline file (strictly true or false, any case)."""
    value = config[name].strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"launch argument {name}:={config[name]!r} must be true or false")
    return value == "true"


def modality_of(config: Mapping[str, str]) -> str:
    """The modality launch argument of a pipeline file, checked."""
    modality = config["modality"]
    if modality not in LIDAR_FOR_MODALITY:
        raise ValueError(f"launch argument modality:={modality!r} is not one of {sorted(LIDAR_FOR_MODALITY)}")
    return modality


def profile_actions(context: Any, profile: str) -> list[SetEnvironmentVariable]:
    """Point Fast DDS at the profile in every process started from here (empty: leave the environment).

    FASTRTPS_DEFAULT_PROFILES_FILE is set too only where $ROS_DISTRO is a Fast DDS 2.x distribution
    (humble, iron, jazzy); Kilted's RMW reports the old name as deprecated (vae_ros.ros.kit.run' rule).
    """
    if not profile:
        return []
    # Through a substitution, as every launch version supports (older LaunchContexts lack .environment).
    ros_distro = EnvironmentVariable("ROS_DISTRO", default_value="").perform(context)
    variables = profile_variables_for(ros_distro)
    return [SetEnvironmentVariable(name, profile) for name in variables]


# Launch configurations that `launch` and `launch_ros` themselves keep (ros2 launch --launch-prefix,
# sigterm_timeout:=..., an including file's PushRosNamespace / SetParameter / SetRemap): they must reach every
# include, unlike the arguments of the including file.
LAUNCH_OWN_CONFIGURATIONS = ("launch-prefix", "launch-prefix-filter", "sigterm_timeout", "sigkill_timeout",
                             "emulate_tty", "anon", "ros_namespace", "global_params", "ros_remaps")


def include(package: str, file_name: str, arguments: Mapping[str, str]) -> GroupAction:
    """A package's launch/file_name that sees only `arguments`, and whose own configurations stay inside.

    A scoped GroupAction alone forwards every launch configuration of the including file (the command
    line's too) into the include: `perception.launch.py seed:=3` would set the seed of every included
    file that declares one. The configurations are therefore cleared inside the scope, except launch's
    own (LAUNCH_OWN_CONFIGURATIONS), before the include sets its arguments. This works on every
    distribution; GroupAction(forwarding=False) does not exist on Humble's first releases, and it would
    drop launch's own configurations and the environment as well.
    """
    path = PathJoinSubstitution([FindPackageShare(package), "launch", file_name])
    return GroupAction([OpaqueFunction(function=_keep_only_launch_own_configurations),
                        IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                                 launch_arguments=list(arguments.items()))], scoped=True)


def _keep_only_launch_own_configurations(context: Any) -> list[Any]:
    configurations = context.launch_configurations
    kept = {name: configurations[name] for name in LAUNCH_OWN_CONFIGURATIONS if name in configurations}
    configurations.clear()
    configurations.update(kept)
    return []


# -- declaring arguments ----------------------------------------------------------------------------------
_NODE_NAMESPACE = "namespace for the node and its relative topics (e.g. robot1)"


def namespace_argument(description: str = _NODE_NAMESPACE) -> DeclareLaunchArgument:
    return DeclareLaunchArgument("namespace", default_value="", description=description)


def params_file_argument(file_name: str, description: str) -> DeclareLaunchArgument:
    """params_file, defaulting to the packaged config/file_name."""
    return DeclareLaunchArgument(
        "params_file", default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", file_name]),
        description=description)


def use_sim_time_argument(default: str = "false",
                          description: str = "true: follow /clock (simulators, bag playback)",
                          ) -> DeclareLaunchArgument:
    return DeclareLaunchArgument("use_sim_time", default_value=default, description=description)


def fastdds_profile_argument(purpose: str) -> DeclareLaunchArgument:
    """fastdds_profile: the user's profile variables, else the packaged large-data profile.

    purpose: the description's opening sentence, saying which large messages it is for.
    """
    packaged = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", FASTDDS_PROFILE_NAME])
    return DeclareLaunchArgument(
        "fastdds_profile",
        default_value=EnvironmentVariable(PROFILE_VARIABLES[0], default_value=EnvironmentVariable(
            PROFILE_VARIABLES[1], default_value=packaged)),
        description=purpose + " Default: $FASTDDS_DEFAULT_PROFILES_FILE, $FASTRTPS_DEFAULT_PROFILES_FILE, "
                              "else the packaged one; empty: leave the environment")


def log_level_argument() -> DeclareLaunchArgument:
    return DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error")


def respawn_argument() -> DeclareLaunchArgument:
    return DeclareLaunchArgument("respawn", default_value="false",
                                 description="true: restart the node if it exits")


def vae_arguments(model_description: str) -> list[DeclareLaunchArgument]:
    """modality, model, backend and device of a pipeline's encoder and decoder."""
    return [
        DeclareLaunchArgument("modality", default_value="image",
                              description="what the encoder encodes: image | scan | pointcloud"),
        DeclareLaunchArgument("model", default_value="", description=model_description),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | torch | onnxruntime | tensorrt (empty: params_file)"),
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda (empty: params_file)"),
    ]


def node_parameters(node: str, names: Sequence[str]) -> list[ParameterArgument]:
    """(name, type, description) of the named parameters of `node`, from the node's own declarations
    (vae_ros.ros.kit.params), so that a launch argument says what the parameter says."""
    specs = {spec.name: spec for spec in specs_of(NODE_PARAMS[node])}
    unknown = [name for name in names if name not in specs]
    if unknown:
        raise ValueError(f"{node} has no parameter {', '.join(unknown)}; it has {', '.join(specs)}")
    return [(name, specs[name].kind, specs[name].description) for name in names]


def parameter_arguments(parameters: Sequence[ParameterArgument]) -> list[DeclareLaunchArgument]:
    """One argument per node parameter, empty by default (empty: keep params_file's value)."""
    return [DeclareLaunchArgument(name, default_value="", description=f"{text} (Argument empty: params_file's value.)")
            for name, _, text in parameters]


def topic_arguments(topics: Sequence[TopicArgument]) -> list[DeclareLaunchArgument]:
    """One argument per contract topic, defaulting to the topic itself (no remapping)."""
    return [DeclareLaunchArgument(name, default_value=topic, description=text)
            for name, topic, text in topics]


def latent_stamped_follows(config: Mapping[str, str]) -> list[tuple[str, str]]:
    """A RemappingRule: when latent_topic is remapped and latent_stamped_topic is not, the stamped latent
    goes to <latent_topic>_stamped, so that a remapped latent never shares vae/latent_stamped with another
    encoder's (a decoder would read one modality's latents as another's)."""
    latent, stamped = config["latent_topic"], config["latent_stamped_topic"]
    if latent == LATENT_TOPIC or stamped != LATENT_STAMPED_TOPIC:
        return []
    return [(LATENT_STAMPED_TOPIC, latent + "_stamped")]


# -- one node ---------------------------------------------------------------------------------------------
def node_launch_description(
    node: str,
    *,
    params_file: str,
    profile_purpose: str,
    parameters: Sequence[ParameterArgument],
    topics: Sequence[TopicArgument],
    use_sim_time: bool = True,
    extra_arguments: Sequence[DeclareLaunchArgument] = (),
    environment: Mapping[str, str] | None = None,
    extra_remappings: RemappingRule | None = None,
) -> LaunchDescription:
    """The launch description of one vae_ros node (executable and node name `node`).

    Declares namespace, params_file (config/params_file), use_sim_time (unless False), extra_arguments,
    fastdds_profile, log_level, respawn, then one argument per parameter and per topic. When launched it
    sets the Fast DDS profile and `environment` (variable -> launch argument whose value it takes) and
    starts the node with params_file, the typed parameter overrides and the topic remappings (plus
    extra_remappings(launch configurations)).
    """
    arguments = [namespace_argument(),
                 params_file_argument(params_file, f"YAML with a /**/{node} ros__parameters block")]
    if use_sim_time:
        arguments.append(use_sim_time_argument())
    arguments += [*extra_arguments, fastdds_profile_argument(profile_purpose), log_level_argument(),
                  respawn_argument(), *parameter_arguments(parameters), *topic_arguments(topics)]
    spec = {"node": node, "parameters": list(parameters), "topics": list(topics),
            "use_sim_time": use_sim_time, "environment": dict(environment or {}),
            "extra_remappings": extra_remappings}
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_node, kwargs=spec)])


def _launch_node(context: Any, *, node: str, parameters: Sequence[ParameterArgument],
                 topics: Sequence[TopicArgument], use_sim_time: bool, environment: Mapping[str, str],
                 extra_remappings: RemappingRule | None) -> list[Any]:
    """Resolve the arguments once: Fast DDS profile, parameter overrides, remappings, then the node."""
    config = context.launch_configurations
    overrides = {name: typed(name, config[name], kind) for name, kind, _ in parameters if config[name]}
    if use_sim_time:
        overrides["use_sim_time"] = typed("use_sim_time", config["use_sim_time"], bool)
    remappings = [(topic, config[arg]) for arg, topic, _ in topics if config[arg] != topic]
    if extra_remappings is not None:
        remappings += extra_remappings(config)
    started = Node(
        package=PACKAGE,
        executable=node,
        name=node,
        namespace=config["namespace"],
        parameters=[config["params_file"], overrides],
        remappings=remappings,
        arguments=["--ros-args", "--log-level", config["log_level"]],
        respawn=typed("respawn", config["respawn"], bool),
        respawn_delay=2.0,
        output="screen",
        emulate_tty=True,
    )
    variables = [SetEnvironmentVariable(variable, config[argument])
                 for variable, argument in environment.items()]
    return [*profile_actions(context, config["fastdds_profile"]), *variables, started]


# -- controller pipelines (servo.launch.py, world_model.launch.py) ------------------------------------------
CONTROL_MODEL = "control_default"  # vae_ros.control.runtime.control_model.CONTROL_MODEL (no torch import here)
# The simulated LiDAR a controller pipeline's encoder needs, by its model's modality: a fused camera + LiDAR model
# (vae_ros.core.fused) gets one encoder_node (modality fused) on the camera and the 2-D scan.
CONTROLLER_LIDAR = {**LIDAR_FOR_MODALITY, "fused": "scan"}
CAMERA_MODALITIES = ("image", "fused")


def model_modality(model_dir: str) -> str:
    """The modality a model directory's model.json names (what its encoder reads), for a pipeline that starts
    the encoder a controller's model needs; ValueError, one line, for a directory that is not a model."""
    from vae_ros.core.config import read_json_object
    from vae_ros.core.errors import VaeRosError

    try:
        modality = read_json_object(f"{model_dir}/model.json").get("modality", "image")
    except VaeRosError as err:
        raise ValueError(f"launch argument model:={model_dir!r} is not a model directory: {err}") from err
    if modality not in CONTROLLER_LIDAR:
        raise ValueError(f"model {model_dir} has modality {modality!r}; this pipeline starts encoders for "
                         f"{', '.join(sorted(CONTROLLER_LIDAR))}")
    return str(modality)


def controller_pipeline(context: Any, controller_file: str, encoder_only: Sequence[str] = (),
                        controller_arguments: Mapping[str, str] | None = None, sim_arguments: Sequence[str] = (),
                        modality: str = "") -> list[Any]:
    """sim.launch.py (unless sim:=false) + an encoder_node on the control model + the controller's file.

    The encoder and the controller get the same `model` ('' = the packaged control model, given as a path:
    the encoder's own '' would mean the plain scan model), `use_sim_time` ('' = follow the simulator when it
    runs); the encoder also gets the launch configurations named in `encoder_only` (its runtime: the
    controller encodes no sensor data), the controller `goal_image` (where the file declares it) and
    `controller_arguments`, the simulator the launch configurations named in `sim_arguments`. The encoder reads
    `modality` (the model's, model_modality: scan for the packaged control model, fused for a camera + LiDAR
    model); the simulator publishes the LiDAR it needs, and its camera for an image or fused model.
    """
    config = context.launch_configurations
    sim = flag(config, "sim")
    use_sim_time = config["use_sim_time"].strip() or str(sim).lower()
    if use_sim_time.lower() not in ("true", "false"):
        raise ValueError(f"launch argument use_sim_time:={use_sim_time!r} must be true, false or empty")
    common = {name: config[name] for name in ("namespace", "params_file", "fastdds_profile", "log_level")}
    model = config["model"] or PathJoinSubstitution(
        [FindPackageShare(PACKAGE), "models", CONTROL_MODEL]).perform(context)
    if not modality:  # the encoder the model needs: its model.json's (scan where there is none: the node says why)
        modality = model_modality(model) if os.path.isfile(os.path.join(model, "model.json")) else "scan"
    nodes = {"model": model, "use_sim_time": use_sim_time.lower()}
    encoder = {name: config[name] for name in encoder_only}
    goal = {"goal_image": config["goal_image"]} if "goal_image" in config else {}
    controller = {**goal, **(controller_arguments or {})}
    actions: list[Any] = []
    if sim:
        # The simulator is the clock: it paces itself on the wall clock and publishes /clock.
        camera = {"publish_camera": "true"} if modality in CAMERA_MODALITIES else {}
        actions.append(include(PACKAGE, "sim.launch.py", {
            **common, "lidar": CONTROLLER_LIDAR[modality], **camera, "seed": config["seed"],
            "initial_pose": config["initial_pose"], "mujoco_gl": config["mujoco_gl"],
            **{name: config[name] for name in sim_arguments}}))
    actions += [
        include(PACKAGE, "encoder.launch.py", {**common, **nodes, **encoder, "modality": modality}),
        include(PACKAGE, controller_file, {**common, **nodes, **controller}),
    ]
    return actions


def controller_pipeline_arguments(params_file: str, params_description: str,
                                   goal_image: bool = True) -> list[DeclareLaunchArgument]:
    """The arguments every controller pipeline declares (the controller's own come beside them); `goal_image`
    only where the controller takes goal images."""
    goal = [DeclareLaunchArgument("goal_image", default_value="",
                                  description="camera frame the robot has seen: the goal once a remembered view "
                                              "matches it (view_memory); empty: teach with "
                                              f"{SET_GOAL_SERVICE} or send {GOAL_LATENT_TOPIC})")] if goal_image else []
    return [
        namespace_argument("namespace for all nodes and their relative topics (e.g. robot1)"),
        params_file_argument(params_file, params_description),
        use_sim_time_argument("", "true: follow /clock (empty: true with the simulator, false without)"),
        fastdds_profile_argument("Fast DDS XML profile for large messages (images between vae_ros processes)."),
        DeclareLaunchArgument("sim", default_value="true",
                              description="true: run sim_node; false: the robot's own scan, odom and cmd_vel"),
        *goal,
        DeclareLaunchArgument("seed", default_value="", description="simulator world seed (empty: params_file)"),
        DeclareLaunchArgument("initial_pose", default_value="",
                              description="robot start [x, y, yaw] in the simulator, e.g. '[0.5, -0.3, 0.4]' "
                                          "(empty: params_file)"),
        DeclareLaunchArgument("mujoco_gl", default_value=EnvironmentVariable("MUJOCO_GL", default_value="egl"),
                              description="MuJoCo rendering: egl (headless), glfw (with a display) or osmesa"),
        log_level_argument(),
    ]
