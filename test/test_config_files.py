"""config/*.yaml: every file parses as a ROS 2 parameters file, names only nodes this package has, and
sets only parameters those nodes declare, with the type they declare (rclpy refuses `rate: 10` for a
float parameter). Declarations are read from the node sources (declare_parameter / ParamSpec calls), so
a parameter renamed or removed in a node makes this fail."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG_FILES = sorted((REPO / "config").glob("*.yaml"))
IMPLICIT = {"use_sim_time": False}  # rclpy declares it on every node
_UNKNOWN = object()  # a default the source does not spell out as a literal


def _literal(node: ast.expr, class_defaults: dict[str, Any]) -> Any:
    """A default from the source: a literal, list(<literal>), or `<obj>.name` of a dataclass default."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("list", "tuple") \
            and node.args:
        value = _literal(node.args[0], class_defaults)
        return list(value) if isinstance(value, list | tuple) else _UNKNOWN
    if isinstance(node, ast.Attribute):
        return class_defaults.get(node.attr, _UNKNOWN)
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _UNKNOWN


def declared_parameters(node_name: str) -> dict[str, Any]:
    """{parameter: default} that vae_ros/<node_name>.py declares (default _UNKNOWN when not a literal)."""
    source = REPO / "vae_ros" / f"{node_name}.py"
    tree = ast.parse(source.read_text())
    class_defaults: dict[str, Any] = {}
    for node in ast.walk(tree):  # dataclass field defaults, e.g. SimNodeParams.rate = 10.0
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value:
                    class_defaults.setdefault(item.target.id, _literal(item.value, {}))
    declared = dict(IMPLICIT)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if called not in ("declare_parameter", "ParamSpec"):
            continue
        arguments = {k.arg: k.value for k in node.keywords}
        name_node = node.args[0] if node.args else arguments.get("name")
        default_node = node.args[1] if len(node.args) > 1 else arguments.get("default",
                                                                             arguments.get("value"))
        if isinstance(name_node, ast.Constant) and isinstance(name_node.value, str):
            default = _literal(default_node, class_defaults) if default_node is not None else _UNKNOWN
            declared[name_node.value] = default
    return declared


def node_name_of(key: str) -> str:
    """The node a params-file key addresses: '/**/encoder_node', '/encoder_node' or 'encoder_node'."""
    return key.rstrip("/").rsplit("/", 1)[-1]


def same_type(value: Any, default: Any) -> bool:
    """Whether rclpy would accept `value` for a parameter declared with `default` (no dynamic typing)."""
    if default is _UNKNOWN:
        return True
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
        assert (REPO / "vae_ros" / f"{node}.py").is_file(), f"{path.name}: {key} names no vae_ros node"
        assert key.startswith("/**/"), f"{path.name}: {key} should be /**/{node} to match in any namespace"
        assert set(block) == {"ros__parameters"}, f"{path.name}: {key} needs exactly a ros__parameters block"
        parameters = block["ros__parameters"]
        declared = declared_parameters(node)
        undeclared = set(parameters) - set(declared)
        assert not undeclared, f"{path.name}: {node} does not declare {sorted(undeclared)}"
        for name, value in parameters.items():
            assert same_type(value, declared[name]), (
                f"{path.name}: {node}.{name} = {value!r} does not have the declared type of {declared[name]!r}")


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
