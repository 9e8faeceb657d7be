"""launch/*.launch.py: arguments, nodes, parameters files, remappings and the Fast DDS profile.

test_real_launch.py runs every launch file through the real ROS 2 launch (Jazzy and Humble wheels from
../shared/ros-launch) and checks the nodes, topics and parameters. This file covers, cheaply and on any
machine, what that cannot: many argument combinations, Gazebo (no ros_gz here) and distribution-dependent
environment. It injects a small FAKE of the parts the launch files use through sys.modules (where the real
launch is installed, test_the_fake_substitutions_and_conditions_agree_with_the_real_launch checks the
fake's semantics against it). The fake evaluates a launch
description the way `ros2 launch` does for these files: declared argument defaults, command-line
overrides, launch configurations shared with included files unless a GroupAction scopes them,
OpaqueFunction, conditions, environment actions and Node. It starts no processes; it records what would
be started. External includes (ros_gz_sim) are recorded, not loaded. Everything else is real: the files
under launch/ and config/, setup.py's console scripts.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LAUNCH_DIR = REPO / "launch"
FASTDDS_PROFILE = str(REPO / "config" / "fastdds_large_data.xml")

# The contract's topic table (shared/CONTRACT.md), relative names as the nodes use them.
CONTRACT_TOPICS = {
    "camera/image_raw", "camera/image_raw/compressed", "scan", "lidar/points", "odom", "cmd_vel",
    "vae/latent", "vae/latent_stamped", "vae/reconstruction", "vae/scan", "vae/points", "vae/anomaly_score",
    "servo/goal_image", "servo/goal_latent",
    "servo/error", "world_model/predicted_latent", "route/path", "/diagnostics", "/clock",
}
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
SUPPORT_MODULE = "vae_ros.ros.kit.launch"
LAUNCH_FILES = ["encoder.launch.py", "decoder.launch.py", "sim.launch.py", "perception.launch.py",
                "gazebo.launch.py", "base_station.launch.py", "jetson.launch.py",
                "latent_servo.launch.py", "servo.launch.py", "route_follower.launch.py", "route.launch.py"]
# Arguments a launch file requires (no default): given wherever a test runs every file.
REQUIRED_ARGUMENTS = {"route.launch.py": {"route": "/data/routes/r1"}}


# ----------------------------------------------------------------------------------------------------------
# The fake `launch` / `launch_ros`
# ----------------------------------------------------------------------------------------------------------
class FakeContext:
    """LaunchContext stand-in: launch configurations and environment, with GroupAction scoping."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.launch_configurations: dict[str, str] = {}
        self.environment = dict(environment)
        self.namespace = ""
        self._stack: list[tuple[dict[str, str], dict[str, str], str]] = []

    def push(self) -> None:
        self._stack.append((dict(self.launch_configurations), dict(self.environment), self.namespace))

    def pop(self) -> None:
        self.launch_configurations, self.environment, self.namespace = self._stack.pop()

    def perform_substitution(self, value: Any) -> str:
        return perform(value, self)


def perform(value: Any, context: FakeContext) -> str:
    """Substitution(s) -> text, as launch.utilities.perform_substitutions does."""
    if isinstance(value, str):
        return value
    if isinstance(value, Substitution):
        return value.perform(context)
    if isinstance(value, Iterable):
        return "".join(perform(part, context) for part in value)
    raise TypeError(f"not a substitution: {value!r}")


class Substitution:
    def perform(self, context: FakeContext) -> str:
        raise NotImplementedError


class TextSubstitution(Substitution):
    def __init__(self, *, text: str) -> None:
        self.text = text

    def perform(self, context: FakeContext) -> str:
        return self.text


class LaunchConfiguration(Substitution):
    def __init__(self, variable_name: str, *, default: Any = None) -> None:
        self.name, self.default = variable_name, default

    def perform(self, context: FakeContext) -> str:
        if self.name in context.launch_configurations:
            return context.launch_configurations[self.name]
        if self.default is None:
            raise KeyError(f"launch configuration {self.name!r} is not set")
        return perform(self.default, context)


class EnvironmentVariable(Substitution):
    """As launch's: a variable set to "" gives "", not the default; unset and no default is an error."""

    def __init__(self, name: str, *, default_value: Any = None) -> None:
        self.name, self.default_value = name, default_value

    def perform(self, context: FakeContext) -> str:
        value = context.environment.get(self.name)
        if value is not None:
            return value
        if self.default_value is None:
            raise KeyError(f"environment variable {self.name!r} does not exist")
        return perform(self.default_value, context)


class PathJoinSubstitution(Substitution):
    def __init__(self, substitutions: list[Any]) -> None:
        self.parts = substitutions

    def perform(self, context: FakeContext) -> str:
        return os.path.join(*(perform(part, context) for part in self.parts))


class FindPackageShare(Substitution):
    """vae_ros -> the source tree (it mirrors share/vae_ros); other packages -> a path outside it."""

    def __init__(self, package: str) -> None:
        self.package = package

    def perform(self, context: FakeContext) -> str:
        return str(REPO) if self.package == "vae_ros" else f"/opt/ros/fake/share/{self.package}"


class Condition:
    def __init__(self, predicate: Any) -> None:
        self.predicate = predicate

    def _value(self, context: FakeContext) -> bool:
        text = perform(self.predicate, context).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(f"condition expects true/false, got {text!r}")


class IfCondition(Condition):
    def evaluate(self, context: FakeContext) -> bool:
        return self._value(context)


class UnlessCondition(Condition):
    def evaluate(self, context: FakeContext) -> bool:
        return not self._value(context)


class Action:
    def __init__(self, *, condition: Condition | None = None) -> None:
        self.condition = condition


class LaunchDescription:
    def __init__(self, initial_entities: Iterable[Any] = ()) -> None:
        self.entities = list(initial_entities)

    def add_action(self, action: Any) -> None:
        self.entities.append(action)


class DeclareLaunchArgument(Action):
    def __init__(self, name: str, *, default_value: Any = None, description: str = "",
                 choices: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices


class SetEnvironmentVariable(Action):
    def __init__(self, name: Any, value: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name, self.value = name, value


class UnsetEnvironmentVariable(Action):
    def __init__(self, name: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name


class OpaqueFunction(Action):
    def __init__(self, *, function: Callable[..., Any], args: Any = None, kwargs: Any = None,
                 **action_kwargs: Any) -> None:
        super().__init__(**action_kwargs)
        self.function, self.args, self.kwargs = function, args or [], kwargs or {}


class GroupAction(Action):
    def __init__(self, actions: Iterable[Any], *, scoped: bool = True, forwarding: bool = True,
                 launch_configurations: dict[Any, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.actions, self.scoped = list(actions), scoped
        self.launch_configurations = launch_configurations or {}


class PythonLaunchDescriptionSource:
    def __init__(self, launch_file_path: Any) -> None:
        self.path = launch_file_path


class IncludeLaunchDescription(Action):
    def __init__(self, launch_description_source: Any, *, launch_arguments: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = launch_description_source
        self.launch_arguments = list(dict(launch_arguments).items() if isinstance(launch_arguments, dict)
                                     else launch_arguments or [])


class Node(Action):
    def __init__(self, *, package: Any, executable: Any, condition: Condition | None = None,
                 **kwargs: Any) -> None:
        super().__init__(condition=condition)
        self.package, self.executable, self.kwargs = package, executable, kwargs


class PushRosNamespace(Action):
    def __init__(self, namespace: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.namespace = namespace


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def fake_launch_modules() -> dict[str, types.ModuleType]:
    actions = _module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
                      SetEnvironmentVariable=SetEnvironmentVariable,
                      UnsetEnvironmentVariable=UnsetEnvironmentVariable, OpaqueFunction=OpaqueFunction,
                      GroupAction=GroupAction, IncludeLaunchDescription=IncludeLaunchDescription)
    substitutions = _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration,
                            EnvironmentVariable=EnvironmentVariable, PathJoinSubstitution=PathJoinSubstitution,
                            TextSubstitution=TextSubstitution)
    conditions = _module("launch.conditions", IfCondition=IfCondition, UnlessCondition=UnlessCondition)
    sources = _module("launch.launch_description_sources",
                      PythonLaunchDescriptionSource=PythonLaunchDescriptionSource)
    launch = _module("launch", LaunchDescription=LaunchDescription, LaunchContext=FakeContext,
                     actions=actions, substitutions=substitutions, conditions=conditions,
                     launch_description_sources=sources)
    ros_actions = _module("launch_ros.actions", Node=Node, PushRosNamespace=PushRosNamespace)
    ros_substitutions = _module("launch_ros.substitutions", FindPackageShare=FindPackageShare)
    launch_ros = _module("launch_ros", actions=ros_actions, substitutions=ros_substitutions)
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": substitutions,
            "launch.conditions": conditions, "launch.launch_description_sources": sources,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions,
            "launch_ros.substitutions": ros_substitutions}


# ----------------------------------------------------------------------------------------------------------
# Evaluating a launch file with the fake
# ----------------------------------------------------------------------------------------------------------
@dataclass
class StartedNode:
    package: str
    executable: str
    name: str
    namespace: str
    parameters: list[Any]  # file paths (str) and dicts, in order
    remappings: dict[str, str]
    arguments: list[str]
    environment: dict[str, str]


@dataclass
class LaunchResult:
    arguments: dict[str, DeclareLaunchArgument] = field(default_factory=dict)  # of the top-level file
    nodes: list[StartedNode] = field(default_factory=list)
    external_includes: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def node(self, executable: str) -> StartedNode:
        found = [n for n in self.nodes if n.executable == executable]
        assert len(found) == 1, f"expected one {executable}, got {[n.executable for n in self.nodes]}"
        return found[0]


def _load_launch_file(path: Path) -> LaunchDescription:
    spec = importlib.util.spec_from_file_location("launch_file_" + path.name.replace(".", "_"), path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    return description


def _perform_parameter(value: Any, context: FakeContext) -> Any:
    if isinstance(value, dict):
        return {perform(k, context): v if isinstance(v, bool | int | float | list) else perform(v, context)
                for k, v in value.items()}
    return perform(value, context)


def _visit(entities: Iterable[Any], context: FakeContext, result: LaunchResult, top: bool) -> None:
    for entity in entities:
        if isinstance(entity, LaunchDescription):
            _visit(entity.entities, context, result, top)
            continue
        if entity.condition is not None and not entity.condition.evaluate(context):
            continue
        if isinstance(entity, DeclareLaunchArgument):
            if top:
                result.arguments[entity.name] = entity
            if entity.name not in context.launch_configurations:
                if entity.default_value is None:
                    raise KeyError(f"launch argument {entity.name!r} has no default and was not given")
                context.launch_configurations[entity.name] = perform(entity.default_value, context)
            value = context.launch_configurations[entity.name]
            if entity.choices is not None and value not in entity.choices:
                raise ValueError(f"{entity.name}:={value!r} not in {entity.choices}")
        elif isinstance(entity, SetEnvironmentVariable):
            context.environment[perform(entity.name, context)] = perform(entity.value, context)
        elif isinstance(entity, UnsetEnvironmentVariable):
            context.environment.pop(perform(entity.name, context), None)
        elif isinstance(entity, OpaqueFunction):
            _visit(entity.function(context, *entity.args, **entity.kwargs) or [], context, result, top)
        elif isinstance(entity, GroupAction):
            if entity.scoped:
                context.push()
            for key, value in entity.launch_configurations.items():
                context.launch_configurations[perform(key, context)] = perform(value, context)
            _visit(entity.actions, context, result, top=False)
            if entity.scoped:
                context.pop()
        elif isinstance(entity, PushRosNamespace):
            namespace = perform(entity.namespace, context).strip("/")
            context.namespace = "/".join(part for part in (context.namespace, namespace) if part)
        elif isinstance(entity, IncludeLaunchDescription):
            path = perform(entity.source.path, context)
            # Include arguments become launch configurations, visible afterwards unless a group scopes them.
            arguments = {perform(k, context): perform(v, context) for k, v in entity.launch_arguments}
            context.launch_configurations.update(arguments)
            if Path(path).parent == LAUNCH_DIR:
                _visit([_load_launch_file(Path(path))], context, result, top=False)
            else:
                result.external_includes.append((path, arguments))
        elif isinstance(entity, Node):
            kwargs = entity.kwargs
            node_namespace = perform(kwargs.get("namespace", ""), context).strip("/")
            result.nodes.append(StartedNode(
                package=perform(entity.package, context),
                executable=perform(entity.executable, context),
                name=perform(kwargs.get("name", entity.executable), context),
                namespace="/".join(p for p in (context.namespace, node_namespace) if p),
                parameters=[_perform_parameter(p, context) for p in kwargs.get("parameters", [])],
                remappings={perform(a, context): perform(b, context) for a, b in kwargs.get("remappings", [])},
                arguments=[perform(a, context) for a in kwargs.get("arguments", [])],
                environment=dict(context.environment),
            ))
        else:
            raise TypeError(f"the fake launch does not know {type(entity).__name__}")


@pytest.fixture
def run_launch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LaunchResult]]:
    """run_launch("encoder.launch.py", modality="scan", _environ={...}) -> what ros2 launch would start.

    The environment is this process's without the Fast DDS profile variables and ROS_DISTRO (as on a
    distribution after Jazzy), plus _environ.
    """
    for name, module in fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    # The launch files' shared module imports `launch` at its top: import it afresh, against the fakes.
    monkeypatch.delitem(sys.modules, SUPPORT_MODULE, raising=False)

    def run(file_name: str, _environ: dict[str, str] | None = None, **arguments: str) -> LaunchResult:
        environment = {k: v for k, v in os.environ.items() if k not in (*PROFILE_VARIABLES, "ROS_DISTRO")}
        context = FakeContext({**environment, **(_environ or {})})
        context.launch_configurations.update(arguments)  # `ros2 launch vae_ros FILE name:=value ...`
        result = LaunchResult()
        _visit([_load_launch_file(LAUNCH_DIR / file_name)], context, result, top=True)
        unknown = set(arguments) - set(result.arguments)
        assert not unknown, f"{file_name} does not declare {unknown}"
        return result

    yield run
    sys.modules.pop(SUPPORT_MODULE, None)  # bound to the fakes: no other test may get this copy


def console_scripts() -> set[str]:
    """Executable names from setup.py's console_scripts (what `ros2 run vae_ros NAME` can start)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(item).split("=")[0].strip() for item in value.elts}
    raise AssertionError("setup.py has no console_scripts")


def _yaml_parameters(path: str, node: StartedNode) -> dict[str, Any]:
    """The ros__parameters a params file gives this node (keys as rcl matches them: name, /**/name, /**)."""
    data = yaml.safe_load(Path(path).read_text())
    fully_qualified = "/" + "/".join(p for p in (node.namespace, node.name) if p)
    merged: dict[str, Any] = {}
    for key in ("/**", f"/**/{node.name}", fully_qualified, fully_qualified.lstrip("/")):
        if key in data and (key != fully_qualified.lstrip("/") or not node.namespace):
            merged.update(data[key]["ros__parameters"])
    return merged


# ----------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------
# sim.launch.py has no use_sim_time: the simulator is the clock (it publishes /clock, paced on wall time).
COMMON_ARGUMENTS = {"namespace", "params_file", "fastdds_profile", "log_level"}
SIM_TIME_FILES = {"encoder.launch.py", "decoder.launch.py", "perception.launch.py", "gazebo.launch.py",
                  "base_station.launch.py", "jetson.launch.py",
                  "latent_servo.launch.py", "servo.launch.py", "route_follower.launch.py", "route.launch.py"}


@pytest.mark.parametrize("file_name", LAUNCH_FILES)
def test_launch_file_declares_the_common_arguments_and_starts_known_executables(
        run_launch: Callable[..., LaunchResult], file_name: str) -> None:
    result = run_launch(file_name, **REQUIRED_ARGUMENTS.get(file_name, {}))
    expected = COMMON_ARGUMENTS | ({"use_sim_time"} if file_name in SIM_TIME_FILES else set())
    assert expected <= set(result.arguments), f"{file_name} lacks {expected - set(result.arguments)}"
    for argument in result.arguments.values():
        assert argument.description.strip(), f"{file_name}: argument {argument.name} has no description"
    ours = [n for n in result.nodes if n.package == "vae_ros"]
    assert ours, f"{file_name} starts no vae_ros node"
    executables = console_scripts()
    for node in ours:
        assert node.executable in executables, f"{node.executable} is not a console script in setup.py"
        assert node.name == node.executable  # the params files' blocks are keyed by these names
        files = [p for p in node.parameters if isinstance(p, str)]
        assert files, f"{node.executable} gets no parameters file"
        for path in files:
            assert Path(path).is_file(), path
            assert _yaml_parameters(path, node), f"{path} has no ros__parameters block for {node.name}"
        assert set(node.remappings) <= CONTRACT_TOPICS, node.remappings
    for node in result.nodes:  # the bridge too: every process that may carry images
        assert node.environment.get("FASTDDS_DEFAULT_PROFILES_FILE") == FASTDDS_PROFILE, node.executable
    assert Path(FASTDDS_PROFILE).is_file()


@pytest.mark.parametrize("file_name", LAUNCH_FILES)
@pytest.mark.parametrize(("ros_distro", "fastdds2"), [("humble", True), ("iron", True), ("jazzy", True),
                                                      ("kilted", False), ("rolling", False), ("", False)])
def test_fastrtps_variable_is_set_only_for_fast_dds_2_distributions(
        run_launch: Callable[..., LaunchResult], file_name: str, ros_distro: str, fastdds2: bool) -> None:
    # Fast DDS 2.x (Humble, Iron, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE; Kilted's RMW warns about it.
    result = run_launch(file_name, _environ={"ROS_DISTRO": ros_distro}, **REQUIRED_ARGUMENTS.get(file_name, {}))
    assert result.nodes
    for node in result.nodes:
        assert node.environment["FASTDDS_DEFAULT_PROFILES_FILE"] == FASTDDS_PROFILE, node.executable
        if fastdds2:
            assert node.environment["FASTRTPS_DEFAULT_PROFILES_FILE"] == FASTDDS_PROFILE, node.executable
        else:
            assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in node.environment, node.executable


def test_only_launch_files_import_the_launch_support_module() -> None:
    # It imports ROS 2's launch packages, which the nodes, the CLI and the core must not need.
    def imports_it(path: Path) -> bool:
        """Any form: import vae_ros.ros.kit.launch, from vae_ros(.launch_support) import ..., relative."""
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module or ''}.{alias.name}" for alias in node.names]
            else:
                continue
            if any(name.startswith(SUPPORT_MODULE) or name.endswith(".kit.launch") for name in names):
                return True
        return False

    importers = [str(path.relative_to(REPO)) for path in sorted((REPO / "vae_ros").rglob("*.py"))
                 if imports_it(path)]
    assert importers == []
    for file_name in LAUNCH_FILES:
        assert imports_it(LAUNCH_DIR / file_name), file_name


def test_encoder_defaults_take_everything_from_the_params_file(run_launch: Callable[..., LaunchResult]) -> None:
    node = run_launch("encoder.launch.py").node("encoder_node")
    assert node.parameters == [str(REPO / "config" / "encoder.yaml"), {"use_sim_time": False}]
    assert node.remappings == {}
    assert node.namespace == ""
    assert node.arguments == ["--ros-args", "--log-level", "info"]


def test_encoder_arguments_override_typed_parameters(run_launch: Callable[..., LaunchResult]) -> None:
    node = run_launch("encoder.launch.py", modality="scan", compressed="true", publish_variance="False",
                      backend="onnxruntime", use_sim_time="true", namespace="robot1").node("encoder_node")
    assert node.parameters[-1] == {"modality": "scan", "compressed": True, "publish_variance": False,
                                   "backend": "onnxruntime", "use_sim_time": True}
    assert node.namespace == "robot1"


def test_sim_arguments_are_typed_like_the_node_declares_them(run_launch: Callable[..., LaunchResult]) -> None:
    node = run_launch("sim.launch.py", rate="20", image_width="320", initial_pose="[1, -0.5, 1.57]",
                      lidar="both").node("sim_node")
    assert node.parameters[-1] == {"rate": 20.0, "image_width": 320, "initial_pose": [1.0, -0.5, 1.57],
                                   "lidar": "both"}
    assert isinstance(node.parameters[-1]["rate"], float)  # a float parameter refuses an int value
    assert "use_sim_time" not in node.parameters[-1]
    assert node.environment["MUJOCO_GL"] in ("egl", os.environ.get("MUJOCO_GL"))


@pytest.mark.parametrize(("file_name", "argument", "value"), [
    ("encoder.launch.py", "compressed", "maybe"),
    ("sim.launch.py", "image_width", "wide"),
    ("sim.launch.py", "initial_pose", "[1, x]"),
    ("perception.launch.py", "modality", "sonar"),
    ("gazebo.launch.py", "headless", "yes please"),
    ("base_station.launch.py", "robot_namespace", "robot 1"),
    ("base_station.launch.py", "use_sim_time", "sometimes"),
    ("servo.launch.py", "initial_pose", "[1, x]"),
    ("servo.launch.py", "sim", "maybe"),
    ("servo.launch.py", "use_sim_time", "sometimes"),
    ("latent_servo.launch.py", "max_linear", "fast"),
    ("route.launch.py", "odom_error", "lots"),
    ("route.launch.py", "sim", "maybe"),
    ("route.launch.py", "route", ""),
    ("route.launch.py", "model", "/no/such/model"),
    ("route_follower.launch.py", "lost_timeout", "soon"),
])
def test_bad_argument_values_are_refused_with_their_name(
        run_launch: Callable[..., LaunchResult], file_name: str, argument: str, value: str) -> None:
    with pytest.raises(ValueError, match=argument):
        run_launch(file_name, **{**REQUIRED_ARGUMENTS.get(file_name, {}), argument: value})


def test_encoder_topic_arguments_remap_contract_topics(run_launch: Callable[..., LaunchResult]) -> None:
    node = run_launch("encoder.launch.py", image_topic="/front/image_raw", latent_topic="front/latent") \
        .node("encoder_node")
    assert node.remappings == {"camera/image_raw": "/front/image_raw",
                               "camera/image_raw/compressed": "/front/image_raw/compressed",
                               "vae/latent": "front/latent",
                               "vae/latent_stamped": "front/latent_stamped"}  # follows latent_topic


def test_fastdds_profile_respects_the_users_environment(run_launch: Callable[..., LaunchResult]) -> None:
    mine = run_launch("encoder.launch.py", _environ={"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"})
    for variable in PROFILE_VARIABLES:
        assert mine.node("encoder_node").environment[variable] == "/etc/mine.xml"
    untouched = run_launch("decoder.launch.py", fastdds_profile="")
    for variable in PROFILE_VARIABLES:
        assert variable not in untouched.node("decoder_node").environment


@pytest.mark.parametrize(("modality", "lidar"), [("image", "scan"), ("scan", "scan"),
                                                  ("pointcloud", "pointcloud")])
def test_perception_runs_sim_encoder_decoder_on_sim_time(
        run_launch: Callable[..., LaunchResult], modality: str, lidar: str) -> None:
    result = run_launch("perception.launch.py", modality=modality, namespace="robot1", backend="torch")
    assert sorted(n.executable for n in result.nodes) == ["decoder_node", "encoder_node", "sim_node"]
    perception_yaml = str(REPO / "config" / "perception.yaml")
    sim, encoder, decoder = (result.node(name) for name in ("sim_node", "encoder_node", "decoder_node"))
    # The clock itself: no use_sim_time. The camera renders only for the image encoder.
    assert sim.parameters == [perception_yaml, {"lidar": lidar, "publish_camera": modality == "image"}]
    assert encoder.parameters == [perception_yaml, {"modality": modality, "backend": "torch",
                                                    "use_sim_time": True}]
    assert decoder.parameters == [perception_yaml, {"modality": modality, "backend": "torch",
                                                    "use_sim_time": True}]
    assert {n.namespace for n in result.nodes} == {"robot1"}


def test_perception_without_decoder(run_launch: Callable[..., LaunchResult]) -> None:
    result = run_launch("perception.launch.py", decoder="false", lidar="none")
    assert sorted(n.executable for n in result.nodes) == ["encoder_node", "sim_node"]
    assert result.node("sim_node").parameters[-1] == {"lidar": "none", "publish_camera": True}


@pytest.mark.parametrize(("modality", "camera", "rendered"), [("scan", "true", True), ("image", "False", False)])
def test_perception_camera_argument_overrides_the_modality(
        run_launch: Callable[..., LaunchResult], modality: str, camera: str, rendered: bool) -> None:
    sim = run_launch("perception.launch.py", modality=modality, camera=camera).node("sim_node")
    assert sim.parameters[-1]["publish_camera"] is rendered


def test_included_files_get_only_what_the_including_file_passes(run_launch: Callable[..., LaunchResult]) -> None:
    # sim_node (world) and decoder_node (prior samples) both take `seed`: the command line's seed:=3 goes to
    # the simulator only, as perception.launch.py passes it; it must not leak into decoder.launch.py.
    result = run_launch("perception.launch.py", seed="3", initial_pose="[1, 2, 0]")
    assert result.node("sim_node").parameters[-1]["seed"] == 3
    assert result.node("sim_node").parameters[-1]["initial_pose"] == [1.0, 2.0, 0.0]
    assert "seed" not in result.node("decoder_node").parameters[-1]
    assert "seed" not in result.node("encoder_node").parameters[-1]


def test_launch_own_configurations_still_reach_the_included_files(run_launch: Callable[..., LaunchResult]) -> None:
    # ros2 launch --launch-prefix, sigterm_timeout:=, an including file's PushRosNamespace: launch reads these
    # from the configurations wherever a process starts, so the scoping must keep them. (run_launch: the
    # fakes, so that vae_ros.ros.kit.launch imports here.)
    from vae_ros.ros.kit.launch import LAUNCH_OWN_CONFIGURATIONS, _keep_only_launch_own_configurations

    context = FakeContext({})
    context.launch_configurations.update({"sigterm_timeout": "30", "launch-prefix": "gdb -ex run --args",
                                          "ros_namespace": "/team", "seed": "3", "model": "/x"})
    assert _keep_only_launch_own_configurations(context) == []
    assert context.launch_configurations == {"sigterm_timeout": "30", "launch-prefix": "gdb -ex run --args",
                                             "ros_namespace": "/team"}
    assert {"launch-prefix", "sigterm_timeout", "ros_namespace", "global_params"} <= set(LAUNCH_OWN_CONFIGURATIONS)


def test_gazebo_starts_the_world_the_bridge_and_the_vae_nodes(run_launch: Callable[..., LaunchResult]) -> None:
    result = run_launch("gazebo.launch.py", headless="true", modality="scan", namespace="robot1")
    (path, arguments), = result.external_includes
    assert path == "/opt/ros/fake/share/ros_gz_sim/launch/gz_sim.launch.py"
    world = arguments["gz_args"].split()[-1]
    assert world == str(REPO / "config" / "gazebo" / "vae_world.sdf") and Path(world).is_file()
    assert arguments["gz_args"].startswith("-r -s")  # headless: server only
    bridge = result.node("parameter_bridge")
    assert bridge.package == "ros_gz_bridge" and bridge.namespace == "robot1"
    (bridge_parameters,) = bridge.parameters
    assert Path(bridge_parameters["config_file"]).is_file()
    assert bridge_parameters["use_sim_time"] is True
    assert result.node("encoder_node").parameters[-1] == {"modality": "scan", "use_sim_time": True}
    assert result.node("decoder_node").namespace == "robot1"
    with_gui = run_launch("gazebo.launch.py", encoder="false", decoder="false")
    assert with_gui.external_includes[0][1]["gz_args"].split()[0:2] == ["-r", world]
    assert [n.executable for n in with_gui.nodes] == ["parameter_bridge"]


@pytest.mark.parametrize(("file_name", "node_name"), [("encoder.launch.py", "encoder_node"),
                                                      ("decoder.launch.py", "decoder_node"),
                                                      ("sim.launch.py", "sim_node"),
                                                      ("latent_servo.launch.py", "latent_servo_node"),
                                                      ("world_model_node.launch.py", "world_model_node"),
                                                      ("route_follower.launch.py", "route_follower_node")])
def test_parameter_arguments_are_declared_by_the_node_with_the_same_type_and_description(
        run_launch: Callable[..., LaunchResult], file_name: str, node_name: str) -> None:
    from test_config_files import declared_parameters

    spec = importlib.util.spec_from_file_location("launch_module_" + node_name, LAUNCH_DIR / file_name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the fakes are in sys.modules (run_launch fixture)
    from vae_ros.ros.kit.params import NODE_PARAMS, specs_of

    declared = declared_parameters(node_name)
    descriptions = {spec.name: spec.description for spec in specs_of(NODE_PARAMS[node_name])}
    for name, kind, text in module.PARAMETER_ARGUMENTS:
        assert name in declared, f"{file_name}: {node_name} does not declare {name}"
        assert text == descriptions[name], f"{file_name}: {name} is described apart from the node's declaration"
        assert isinstance(declared[name], kind), f"{file_name}: {name} is {kind.__name__} here, " \
                                                 f"{type(declared[name]).__name__} in {node_name}"


def test_base_station_decodes_the_robots_stamped_latents_in_its_own_namespace(
        run_launch: Callable[..., LaunchResult]) -> None:
    result = run_launch("base_station.launch.py", model="/data/models/scan_run3")
    node = result.node("decoder_node")
    assert node.namespace == "base"
    # Only the stamped topic crosses between the machines; outputs stay under the base's namespace.
    assert node.remappings == {"vae/latent_stamped": "/robot1/vae/latent_stamped"}
    assert node.parameters == [str(REPO / "config" / "decoder.yaml"),
                               {"model": "/data/models/scan_run3", "use_sim_time": False}]
    assert node.environment["FASTDDS_DEFAULT_PROFILES_FILE"] == FASTDDS_PROFILE

    other = run_launch("base_station.launch.py", robot_namespace="/team/robot2/", namespace="base/robot2",
                       modality="scan", backend="onnxruntime", params_file=str(REPO / "config" / "decoder.yaml"))
    node = other.node("decoder_node")
    assert node.namespace == "base/robot2"
    assert node.remappings == {"vae/latent_stamped": "/team/robot2/vae/latent_stamped"}
    assert node.parameters[-1] == {"modality": "scan", "backend": "onnxruntime", "use_sim_time": False}
    no_namespace = run_launch("base_station.launch.py", robot_namespace="").node("decoder_node")
    assert no_namespace.remappings == {"vae/latent_stamped": "/vae/latent_stamped"}


def test_decoder_topic_arguments_remap_the_stamped_and_lidar_topics(run_launch: Callable[..., LaunchResult]) -> None:
    node = run_launch("decoder.launch.py", latent_stamped_topic="/robot1/vae/latent_stamped",
                      decoded_scan_topic="scan_decoded", decoded_points_topic="points_decoded").node("decoder_node")
    assert node.remappings == {"vae/latent_stamped": "/robot1/vae/latent_stamped", "vae/scan": "scan_decoded",
                               "vae/points": "points_decoded"}
    encoder = run_launch("encoder.launch.py", latent_stamped_topic="front/latent_stamped").node("encoder_node")
    assert encoder.remappings == {"vae/latent_stamped": "front/latent_stamped"}


@pytest.mark.parametrize("file_name", ["encoder.launch.py", "decoder.launch.py"])
def test_stamped_latent_topic_follows_a_remapped_latent_topic(run_launch: Callable[..., LaunchResult],
                                                              file_name: str) -> None:
    # Two encoders in one namespace (the demo's camera and scan) must not share vae/latent_stamped.
    node = run_launch(file_name, latent_topic="vae/scan_latent").nodes[0]
    assert node.remappings == {"vae/latent": "vae/scan_latent", "vae/latent_stamped": "vae/scan_latent_stamped"}
    node = run_launch(file_name, latent_topic="vae/scan_latent", latent_stamped_topic="mine").nodes[0]
    assert node.remappings == {"vae/latent": "vae/scan_latent", "vae/latent_stamped": "mine"}


def test_jetson_runs_the_encoder_on_tensorrt_with_an_engine_cache(run_launch: Callable[..., LaunchResult]) -> None:
    jetson_yaml = str(REPO / "config" / "jetson.yaml")
    result = run_launch("jetson.launch.py")
    encoder = result.node("encoder_node")
    assert [n.executable for n in result.nodes] == ["encoder_node"]
    assert encoder.parameters == [jetson_yaml, {"modality": "image", "use_sim_time": False}]
    from_file = _yaml_parameters(jetson_yaml, encoder)
    assert from_file["backend"] == "tensorrt" and from_file["device"] == "cuda"
    assert from_file["engine_cache"].startswith("~/") and from_file["warmup"] > 0

    result = run_launch("jetson.launch.py", modality="scan", decoder="true", sim="true", engine_cache="/ssd/engines",
                        warmup="3", namespace="robot1")
    assert sorted(n.executable for n in result.nodes) == ["decoder_node", "encoder_node", "sim_node"]
    for name in ("encoder_node", "decoder_node"):
        assert result.node(name).parameters[-1] == {"modality": "scan", "engine_cache": "/ssd/engines", "warmup": 3,
                                                    "use_sim_time": True}
    assert result.node("sim_node").parameters[-1] == {"lidar": "scan", "publish_camera": False}
    assert {n.namespace for n in result.nodes} == {"robot1"}


# -- servo.launch.py ---------------------------------------------------------------------------------------
CONTROL_MODEL = str(REPO / "models" / "control_default")


def test_servo_runs_sim_scan_encoder_and_servo_on_the_control_model(run_launch: Callable[..., LaunchResult]) -> None:
    result = run_launch("servo.launch.py")
    assert sorted(n.executable for n in result.nodes) == ["encoder_node", "latent_servo_node", "sim_node"]
    servo_yaml = str(REPO / "config" / "servo.yaml")
    sim, encoder, servo = (result.node(name) for name in ("sim_node", "encoder_node", "latent_servo_node"))
    assert sim.parameters == [servo_yaml, {"lidar": "scan"}]  # the clock itself: no use_sim_time
    # The encoder's own '' would be the plain scan model: both get the packaged control model's path.
    assert encoder.parameters == [servo_yaml, {"model": CONTROL_MODEL, "modality": "scan", "use_sim_time": True}]
    assert servo.parameters == [servo_yaml, {"model": CONTROL_MODEL, "use_sim_time": True}]
    assert Path(CONTROL_MODEL, "model.json").is_file()
    # The scan model reads no camera, but the servo remembers camera views so that goal images work.
    assert _yaml_parameters(servo_yaml, sim)["publish_camera"] is True
    assert _yaml_parameters(servo_yaml, servo)["view_memory"] > 0
    assert {n.namespace for n in result.nodes} == {""}
    assert all(n.remappings == {} for n in result.nodes)


def test_servo_arguments_reach_the_simulator_and_the_servo(run_launch: Callable[..., LaunchResult]) -> None:
    result = run_launch("servo.launch.py", seed="1", initial_pose="[0.5, -0.3, 0.4]", goal_image="/tmp/goal.png",
                        namespace="robot1", backend="onnxruntime", model="/data/control_run2")
    sim, encoder, servo = (result.node(name) for name in ("sim_node", "encoder_node", "latent_servo_node"))
    assert sim.parameters[-1] == {"lidar": "scan", "seed": 1, "initial_pose": [0.5, -0.3, 0.4]}
    assert encoder.parameters[-1] == {"model": "/data/control_run2", "modality": "scan", "backend": "onnxruntime",
                                      "use_sim_time": True}
    # The runtime is the encoder's: the servo encodes nothing (latents come in), so it declares no backend.
    assert servo.parameters[-1] == {"model": "/data/control_run2", "goal_image": "/tmp/goal.png",
                                    "use_sim_time": True}
    assert {n.namespace for n in result.nodes} == {"robot1"}


@pytest.mark.parametrize("file_name", ["servo.launch.py", "world_model.launch.py", "route.launch.py"])
def test_a_fused_model_gets_one_fused_encoder_on_camera_and_scan(run_launch: Callable[..., LaunchResult],
                                                                tmp_path: Path, file_name: str) -> None:
    from vae_ros.core.fused import FusedConfig

    FusedConfig(("camera", "scan"), 16).save(tmp_path)  # model.json is all the launch file reads
    route = {"route": "/data/route1"} if file_name == "route.launch.py" else {}
    result = run_launch(file_name, model=str(tmp_path), **route)
    sim, encoder = result.node("sim_node"), result.node("encoder_node")
    assert sim.parameters[-1]["lidar"] == "scan" and sim.parameters[-1]["publish_camera"] is True
    assert encoder.parameters[-1]["modality"] == "fused" and encoder.parameters[-1]["model"] == str(tmp_path)
    assert [n.executable for n in result.nodes].count("encoder_node") == 1


def test_servo_without_the_simulator_runs_on_the_robots_clock(run_launch: Callable[..., LaunchResult]) -> None:
    result = run_launch("servo.launch.py", sim="false")
    assert sorted(n.executable for n in result.nodes) == ["encoder_node", "latent_servo_node"]
    assert all(n.parameters[-1]["use_sim_time"] is False for n in result.nodes)
    bag = run_launch("servo.launch.py", sim="false", use_sim_time="true")  # e.g. a bag played with --clock
    assert all(n.parameters[-1]["use_sim_time"] is True for n in bag.nodes)


def test_latent_servo_topic_arguments_remap_contract_topics(run_launch: Callable[..., LaunchResult]) -> None:
    node = run_launch("latent_servo.launch.py", latent_stamped_topic="/robot1/vae/latent_stamped",
                      cmd_vel_topic="/robot1/cmd_vel_servo", max_linear="0.2").node("latent_servo_node")
    assert node.remappings == {"vae/latent_stamped": "/robot1/vae/latent_stamped",
                               "cmd_vel": "/robot1/cmd_vel_servo"}
    assert node.parameters == [str(REPO / "config" / "servo.yaml"), {"max_linear": 0.2, "use_sim_time": False}]


# ----------------------------------------------------------------------------------------------------------
# The fake against the real launch
# ----------------------------------------------------------------------------------------------------------
# (construct, arguments, environment, launch configurations): what the launch files evaluate.
SEMANTICS_CASES: list[tuple[str, list[Any], dict[str, str], dict[str, str]]] = [
    ("env", ["VAE_T", "d"], {}, {}),
    ("env", ["VAE_T", "d"], {"VAE_T": ""}, {}),  # set but empty: "" (an older fake gave the default)
    ("env", ["VAE_T", "d"], {"VAE_T": "x"}, {}),
    ("env", ["VAE_T", None], {}, {}),  # unset, no default: an error
    ("env", ["VAE_T", ""], {}, {}),
    ("config", ["a", "d"], {}, {}),
    ("config", ["a", "d"], {}, {"a": "given"}),
    ("config", ["a", None], {}, {}),
    ("join", [["x", "y", "z.yaml"]], {}, {}),
    *[("if", [text], {}, {}) for text in ("true", "True", "1", "false", "FALSE", "0", "yes")],
    *[("unless", [text], {}, {}) for text in ("true", "0", "maybe")],
]

_REAL_SEMANTICS = """
import json, os, sys
from launch import LaunchContext
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution

out = []
for kind, args, environ, configurations in json.loads(sys.argv[1]):
    for name in ("VAE_T",):
        os.environ.pop(name, None)
    os.environ.update(environ)  # the real LaunchContext's environment is os.environ
    context = LaunchContext()
    context.launch_configurations.update(configurations)
    try:
        if kind == "env":
            value = EnvironmentVariable(args[0], default_value=args[1]).perform(context)
        elif kind == "config":
            value = LaunchConfiguration(args[0], default=args[1]).perform(context)
        elif kind == "join":
            value = PathJoinSubstitution(args[0]).perform(context)
        else:
            value = (IfCondition if kind == "if" else UnlessCondition)(args[0]).evaluate(context)
    except Exception:
        value = "error"
    out.append(value)
print(json.dumps(out))
"""


def _fake_semantics(kind: str, args: list[Any], environ: dict[str, str], configurations: dict[str, str]) -> Any:
    context = FakeContext(environ)
    context.launch_configurations.update(configurations)
    try:
        if kind == "env":
            return EnvironmentVariable(args[0], default_value=args[1]).perform(context)
        if kind == "config":
            return LaunchConfiguration(args[0], default=args[1]).perform(context)
        if kind == "join":
            return PathJoinSubstitution(args[0]).perform(context)
        return (IfCondition if kind == "if" else UnlessCondition)(args[0]).evaluate(context)
    except (KeyError, ValueError):
        return "error"


@pytest.mark.parametrize("distro", ["jazzy", "humble"])
def test_the_fake_substitutions_and_conditions_agree_with_the_real_launch(distro: str) -> None:
    """Where the real launch is installed (../shared/ros-launch), the fake must evaluate as it does."""
    import real_launch

    if not (real_launch.SHARED_LAUNCH / distro).is_dir():
        pytest.skip(f"{real_launch.SHARED_LAUNCH / distro} is absent: the real launch wheels are only beside the "
                    "repository on development and CI machines")
    env = {k: v for k, v in os.environ.items() if k != "VAE_T"}
    env["PYTHONPATH"] = os.pathsep.join([str(real_launch.launch_site(distro)), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run([sys.executable, "-c", _REAL_SEMANTICS, json.dumps(SEMANTICS_CASES)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    real = json.loads(result.stdout.strip().splitlines()[-1])
    fake = [_fake_semantics(*case) for case in SEMANTICS_CASES]
    differ = [(case, r, f) for case, r, f in zip(SEMANTICS_CASES, real, fake, strict=True) if r != f]
    assert not differ, f"(case, real launch, fake): {differ}"


# -- route.launch.py ---------------------------------------------------------------------------------------
def test_route_runs_sim_scan_encoder_and_follower_on_the_control_model(run_launch: Callable[..., LaunchResult]) -> None:
    result = run_launch("route.launch.py", route="/data/routes/r1")
    assert sorted(n.executable for n in result.nodes) == ["encoder_node", "route_follower_node", "sim_node"]
    route_yaml = str(REPO / "config" / "route.yaml")
    sim, encoder, follower = (result.node(name) for name in ("sim_node", "encoder_node", "route_follower_node"))
    assert sim.parameters == [route_yaml, {"lidar": "scan"}]  # the clock itself: no use_sim_time
    assert encoder.parameters == [route_yaml, {"model": CONTROL_MODEL, "modality": "scan", "use_sim_time": True}]
    assert follower.parameters == [route_yaml, {"model": CONTROL_MODEL, "route": "/data/routes/r1",
                                                "use_sim_time": True}]
    assert _yaml_parameters(route_yaml, sim)["publish_camera"] is False  # a LiDAR model: no rendering
    assert "goal_image" not in result.arguments  # the route is the goal


def test_route_arguments_reach_the_simulator_and_the_follower(run_launch: Callable[..., LaunchResult]) -> None:
    result = run_launch("route.launch.py", route="/data/routes/r1", seed="4", initial_pose="[0.2, -0.1, 0.1]",
                        odom_error="1.0", lighting="dim", namespace="robot2", max_linear="0.2", lost_timeout="5",
                        backend="onnxruntime")
    sim, encoder, follower = (result.node(name) for name in ("sim_node", "encoder_node", "route_follower_node"))
    assert sim.parameters[-1] == {"lidar": "scan", "seed": 4, "initial_pose": [0.2, -0.1, 0.1], "odom_error": 1.0,
                                  "lighting": "dim"}
    assert encoder.parameters[-1] == {"model": CONTROL_MODEL, "modality": "scan", "backend": "onnxruntime",
                                      "use_sim_time": True}
    assert follower.parameters[-1] == {"model": CONTROL_MODEL, "route": "/data/routes/r1", "max_linear": 0.2,
                                       "lost_timeout": 5.0, "use_sim_time": True}
    assert {n.namespace for n in result.nodes} == {"robot2"}
    robot = run_launch("route.launch.py", route="/data/routes/r1", sim="false")
    assert sorted(n.executable for n in robot.nodes) == ["encoder_node", "route_follower_node"]
    assert robot.node("route_follower_node").parameters[-1]["use_sim_time"] is False


def test_route_starts_the_encoder_of_the_routes_model(run_launch: Callable[..., LaunchResult], tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"modality": "image"}))
    result = run_launch("route.launch.py", route="/data/routes/r1", model=str(tmp_path))
    assert result.node("encoder_node").parameters[-1] == {"model": str(tmp_path), "modality": "image",
                                                          "use_sim_time": True}
    assert result.node("sim_node").parameters[-1] == {"lidar": "scan", "publish_camera": True}


def test_route_requires_a_route(run_launch: Callable[..., LaunchResult]) -> None:
    with pytest.raises(KeyError, match="route"):
        run_launch("route.launch.py")


def test_route_follower_topic_arguments_remap_contract_topics(run_launch: Callable[..., LaunchResult]) -> None:
    node = run_launch("route_follower.launch.py", odom_topic="/robot1/odom", path_topic="taught",
                      route="/r", window="2.0").node("route_follower_node")
    assert node.remappings == {"odom": "/robot1/odom", "route/path": "taught"}
    assert node.parameters == [str(REPO / "config" / "route.yaml"), {"route": "/r", "window": 2.0,
                                                                     "use_sim_time": False}]
