"""launch/world_model.launch.py and world_model_node.launch.py through the fake launch of test_launch_files:
sim + scan encoder + world model on one model, typed overrides, sim:=false for a real robot."""

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
CONTROL_MODEL = str(REPO / "models" / "control_default")


def test_starts_sim_scan_encoder_and_world_model_on_one_model(
        run_launch: Callable[..., LaunchResult]) -> None:  # noqa: F811
    result = run_launch(FILE)
    assert sorted(n.executable for n in result.nodes) == ["encoder_node", "sim_node", "world_model_node"]
    assert {"world_model_node", "encoder_node", "sim_node"} <= console_scripts()
    sim, encoder, world = (result.node(name) for name in ("sim_node", "encoder_node", "world_model_node"))
    assert sim.parameters == [YAML, {"lidar": "scan"}]
    # The encoder's own '' would be the plain scan model: both get the packaged control model's path.
    assert encoder.parameters == [YAML, {"model": CONTROL_MODEL, "modality": "scan", "use_sim_time": True}]
    assert world.parameters == [YAML, {"model": CONTROL_MODEL, "use_sim_time": True}]
    assert _yaml_parameters(YAML, sim)["publish_camera"] is True  # camera views for goal images (view_memory)
    for node in result.nodes:
        assert _yaml_parameters(YAML, node), node.name
        assert node.environment.get("FASTDDS_DEFAULT_PROFILES_FILE") == FASTDDS_PROFILE, node.executable
    for argument in result.arguments.values():
        assert argument.description.strip(), argument.name


def test_arguments_reach_the_simulator_and_the_world_model(
        run_launch: Callable[..., LaunchResult]) -> None:  # noqa: F811
    result = run_launch(FILE, model="/models/scan_default", dynamics="/dyn", seed="3",
                        initial_pose="[1.0, 0.5, 0.0]", samples="200", horizon="15", namespace="robot1")
    sim, encoder, world = (result.node(name) for name in ("sim_node", "encoder_node", "world_model_node"))
    assert sim.parameters[-1] == {"lidar": "scan", "seed": 3, "initial_pose": [1.0, 0.5, 0.0]}
    assert encoder.parameters[-1] == {"model": "/models/scan_default", "modality": "scan", "use_sim_time": True}
    assert world.parameters[-1] == {"model": "/models/scan_default", "dynamics": "/dyn", "horizon": 15,
                                    "samples": 200, "use_sim_time": True}
    assert {n.namespace for n in result.nodes} == {"robot1"}


def test_without_the_simulator_on_the_robots_clock(run_launch: Callable[..., LaunchResult]) -> None:  # noqa: F811
    result = run_launch(FILE, sim="false")
    assert sorted(n.executable for n in result.nodes) == ["encoder_node", "world_model_node"]
    assert all(n.parameters[-1]["use_sim_time"] is False for n in result.nodes)


def test_world_model_node_topic_arguments_remap_contract_topics(
        run_launch: Callable[..., LaunchResult]) -> None:  # noqa: F811
    node = run_launch("world_model_node.launch.py", latent_stamped_topic="/robot1/vae/latent_stamped",
                      cmd_vel_topic="/robot1/cmd_vel_mpc", samples="100").node("world_model_node")
    assert node.remappings == {"vae/latent_stamped": "/robot1/vae/latent_stamped", "cmd_vel": "/robot1/cmd_vel_mpc"}
    assert node.parameters == [YAML, {"samples": 100, "use_sim_time": False}]
    assert Path(YAML).is_file()
