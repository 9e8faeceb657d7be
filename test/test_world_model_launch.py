"""launch/world_model.launch.py through the fake launch of test_launch_files: sim + scan encoder + world model,
one model for encoder and controller, typed overrides, sim:=false for a real robot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from test_launch_files import (  # noqa: F401 - run_launch is a fixture
    FASTDDS_PROFILE,
    REPO,
    LaunchResult,
    _yaml_parameters,
    console_scripts,
    run_launch,
)

FILE = "world_model.launch.py"
YAML = str(REPO / "config" / "world_model.yaml")


def test_starts_sim_scan_encoder_and_world_model(run_launch: Callable[..., LaunchResult]) -> None:  # noqa: F811
    result = run_launch(FILE, model="/models/scan_default", dynamics="/dyn", seed="3",
                        initial_pose="[1.0, 0.5, 0.0]", samples="200", namespace="robot1")
    assert sorted(n.executable for n in result.nodes) == ["encoder_node", "sim_node", "world_model_node"]
    assert {"world_model_node", "encoder_node", "sim_node"} <= console_scripts()
    sim, encoder, world = (result.node(name) for name in ("sim_node", "encoder_node", "world_model_node"))
    assert sim.parameters == [YAML, {"lidar": "scan", "seed": 3, "initial_pose": [1.0, 0.5, 0.0]}]
    assert encoder.parameters == [YAML, {"modality": "scan", "model": "/models/scan_default", "use_sim_time": True}]
    assert world.parameters == [YAML, {"samples": 200, "model": "/models/scan_default", "dynamics": "/dyn",
                                       "use_sim_time": True}]
    assert {n.namespace for n in result.nodes} == {"robot1"}
    for node in result.nodes:
        assert _yaml_parameters(YAML, node), node.name
        assert node.environment.get("FASTDDS_DEFAULT_PROFILES_FILE") == FASTDDS_PROFILE, node.executable
    for argument in result.arguments.values():
        assert argument.description.strip(), argument.name


def test_default_model_is_the_packaged_control_model_and_sim_can_be_off(
        run_launch: Callable[..., LaunchResult]) -> None:  # noqa: F811
    result = run_launch(FILE, sim="false", use_sim_time="false")
    assert sorted(n.executable for n in result.nodes) == ["encoder_node", "world_model_node"]
    world = result.node("world_model_node")
    model = world.parameters[1]["model"]
    assert Path(model).parts[-2:] == ("models", "control_default")
    assert result.node("encoder_node").parameters[1]["model"] == model
    assert world.parameters[1]["use_sim_time"] is False and world.parameters[1]["dynamics"] == ""
