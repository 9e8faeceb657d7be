"""config/*.yaml: every file parses as a ROS 2 parameters file, names only nodes this package has, and
sets only parameters those nodes declare, with the type they declare (rclpy refuses `rate: 10` for a
float parameter). Declarations are the nodes' own (vae_ros.ros.kit.params, which each node declares from), so
a parameter renamed or removed in a node makes this fail; a node's own params file (the one its launch
file defaults to) gives each parameter it sets the node's default, so the file documents the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vae_ros.ros.kit.params import NODE_PARAMS, specs_of

REPO = Path(__file__).resolve().parent.parent
CONFIG_FILES = sorted((REPO / "config").glob("*.yaml"))
IMPLICIT = {"use_sim_time": False}  # rclpy declares it on every node
# The params file each node's own launch file defaults to; its values are the node's defaults.
OWN_PARAMS_FILE = {"encoder_node": "encoder.yaml", "decoder_node": "decoder.yaml", "sim_node": "sim.yaml",
                   "latent_servo_node": "servo.yaml", "world_model_node": "world_model.yaml",
                   "route_follower_node": "route.yaml"}


def declared_parameters(node_name: str) -> dict[str, Any]:
    """{parameter: default} that the node declares (arrays as lists, as a params file writes them)."""
    declared = dict(IMPLICIT)
    for spec in specs_of(NODE_PARAMS[node_name]):
        declared[spec.name] = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    return declared


def node_name_of(key: str) -> str:
    """The node a params-file key addresses: '/**/encoder_node', '/encoder_node' or 'encoder_node'."""
    return key.rstrip("/").rsplit("/", 1)[-1]


def same_type(value: Any, default: Any) -> bool:
    """Whether rclpy would accept `value` for a parameter declared with `default` (no dynamic typing)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, list | tuple):
        return isinstance(value, list) and all(type(v) is type(default[0]) for v in value) if default \
            else isinstance(value, list)
    return type(value) is type(default)


def test_there_are_params_files() -> None:
    names = {path.name for path in CONFIG_FILES}
    assert {"encoder.yaml", "decoder.yaml", "sim.yaml", "perception.yaml"} <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_params_file_sets_only_declared_parameters_with_their_types(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, f"{path.name} is not a mapping of node blocks"
    for key, block in data.items():
        node = node_name_of(key)
        assert node in NODE_PARAMS and (REPO / "vae_ros" / "ros" / "nodes" / f"{node}.py").is_file(), \
            f"{path.name}: {key} names no vae_ros node"
        assert key.startswith("/**/"), f"{path.name}: {key} should be /**/{node} to match in any namespace"
        assert set(block) == {"ros__parameters"}, f"{path.name}: {key} needs exactly a ros__parameters block"
        parameters = block["ros__parameters"]
        declared = declared_parameters(node)
        undeclared = set(parameters) - set(declared)
        assert not undeclared, f"{path.name}: {node} does not declare {sorted(undeclared)}"
        for name, value in parameters.items():
            assert same_type(value, declared[name]), (
                f"{path.name}: {node}.{name} = {value!r} does not have the declared type of {declared[name]!r}")


@pytest.mark.parametrize(("node", "file_name"), sorted(OWN_PARAMS_FILE.items()))
def test_a_nodes_own_params_file_gives_the_declared_defaults(node: str, file_name: str) -> None:
    data = yaml.safe_load((REPO / "config" / file_name).read_text())
    parameters = data[f"/**/{node}"]["ros__parameters"]
    declared = declared_parameters(node)
    differ = {name: (value, declared[name]) for name, value in parameters.items() if value != declared[name]}
    assert not differ, f"{file_name}: {node} (value in the file, node default): {differ}"


def test_every_node_has_its_parameters_declared() -> None:
    nodes = {path.stem for path in (REPO / "vae_ros" / "ros" / "nodes").glob("*_node.py")}
    assert nodes == set(NODE_PARAMS) == set(OWN_PARAMS_FILE)
    for params_type in NODE_PARAMS.values():
        for spec in specs_of(params_type):
            assert spec.description.strip(), f"{params_type.__name__}.{spec.name} has no description"


def test_the_checks_catch_mistakes() -> None:
    """The helpers above do reject what rclpy would: a typo'd name, an int for a float, ints in a float list."""
    declared = declared_parameters("sim_node")
    assert "rate" in declared and "rat" not in declared
    assert isinstance(declared["rate"], float) and not same_type(10, declared["rate"])
    assert same_type([0.0, 1.0, 2.0], declared["initial_pose"])
    assert not same_type([0, 1, 2], declared["initial_pose"])
    assert not same_type("true", False) and same_type(True, False)
    assert node_name_of("/**/encoder_node") == "encoder_node" == node_name_of("encoder_node")


def test_fastdds_profile_is_valid_xml_with_a_large_shared_memory_segment() -> None:
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(REPO / "config" / "fastdds_large_data.xml").getroot()
    sizes = [int(e.text or 0) for e in root.iter() if e.tag.endswith("segment_size")]
    assert sizes and min(sizes) >= 4 * 1024 * 1024  # a 640x480 rgb8 frame is 0.9 MB; leave room
    # Ports of a CPU-starved process are not declared dead after Fast DDS's default 1 s.
    checks = [int(e.text or 0) for e in root.iter() if e.tag.endswith("healthy_check_timeout_ms")]
    assert checks and min(checks) >= 3000
