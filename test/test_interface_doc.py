"""docs/INTERFACE.md is generated from the code and agrees with the contract (../shared/CONTRACT.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vae_ros.apps.interface_doc import DOC, render
from vae_ros.ros import interface
from vae_ros.ros.kit.params import NODE_PARAMS, specs_of

CONTRACT = Path(__file__).resolve().parents[2] / "shared" / "CONTRACT.md"

# Named by the contract, not built yet: each entry says which issue adds it. The test fails when one of them
# appears in the code, so the list (and the *planned* marks of vae_ros.ros.interface) cannot outlive the gap.
PLANNED_PARAMETERS: dict[tuple[str, str], str] = {}
PLANNED_NODES: dict[str, str] = {}


def _contract() -> str:
    if not CONTRACT.is_file():
        pytest.skip(f"no contract at {CONTRACT} (a clone without ../shared)")
    return CONTRACT.read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## )", text, re.S | re.M)
    if match is None:
        raise AssertionError(f"the contract has no section {title!r}")
    return match.group(1)


def test_interface_md_is_generated_from_the_code() -> None:
    assert DOC.is_file(), "docs/INTERFACE.md is missing: run `python -m vae_ros.apps.interface_doc`"
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/INTERFACE.md is out of date: run `python -m vae_ros.apps.interface_doc`")


def test_every_parameter_of_every_node_is_in_the_reference() -> None:
    text = render()
    for node, params_type in NODE_PARAMS.items():
        section = text.split(f"### {node}\n", 1)[1].split("\n\n", 1)[0]
        for spec in specs_of(params_type):
            assert f"| `{spec.name}` |" in section, f"{node}.{spec.name} is missing from the reference"


def test_every_contract_topic_and_service_is_in_the_interface() -> None:
    rows = re.findall(r"^\| `([^`]+)` \|", _section(_contract(), "Topics"), re.M)
    assert len(rows) > 15, rows  # the table was parsed
    names = {t.name for t in interface.TOPICS} | {s.name for s in interface.SERVICES}
    missing = [name for name in rows if name not in names]
    assert not missing, f"contract topics/services missing from vae_ros.ros.interface: {missing}"


def test_every_contract_parameter_is_declared_by_its_node() -> None:
    section = _section(_contract(), "Parameters")
    entries = re.findall(r"^- (?:`(\w+)`|A fused model .*? in `(\w+)`): (.*?)(?=^- |\Z)", section, re.M | re.S)
    assert len(entries) >= 6, entries
    missing, built = [], []
    for node_a, node_b, body in entries:
        node = node_a or node_b
        names = re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", body))
        if node in PLANNED_NODES:
            assert node not in NODE_PARAMS, f"{node} exists now: remove it from PLANNED_NODES"
            continue
        declared = {spec.name for spec in specs_of(NODE_PARAMS[node])}
        for name in names:
            planned = (node, name) in PLANNED_PARAMETERS
            if name not in declared and not planned:
                missing.append(f"{node}.{name}")
            if name in declared and planned:
                built.append(f"{node}.{name}")
    assert not missing, f"contract parameters not declared: {missing}"
    assert not built, f"built now, remove from PLANNED_PARAMETERS: {built}"


def test_planned_marks_name_only_what_is_not_built() -> None:
    planned = {t.name for t in interface.TOPICS if t.planned} | {s.name for s in interface.SERVICES if s.planned}
    assert planned == set(), f"built now (route/path by route_follower_node, issue 18): remove the marks of {planned}"


def _name_literals(path: Path, names: set[str]) -> list[str]:
    """The string literals of a source file that are exactly one of `names` (docstrings and f-strings that
    mention a name in a sentence are not literals of it)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names]


REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_ros_layer_takes_every_name_from_the_interface() -> None:
    """One name, one place: no node, app or launch file spells a topic or service name of the interface;
    they import it. ("scan" and "odom" are also a modality and a frame, so only names with a '/' and
    cmd_vel are looked for.)"""
    names = {t.name for t in interface.TOPICS} | {s.name for s in interface.SERVICES}
    names = {name for name in names if "/" in name or name == interface.CMD_TOPIC}
    sources = [path for folder in ("vae_ros/ros", "vae_ros/apps") for path in (REPO_ROOT / folder).rglob("*.py")
               if path.name != "interface.py"] + sorted((REPO_ROOT / "launch").glob("*.launch.py"))
    found = [hit for path in sources for hit in _name_literals(path, names)]
    assert not found, "spelt instead of imported from vae_ros.ros.interface:\n" + "\n".join(found)
