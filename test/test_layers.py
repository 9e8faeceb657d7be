"""The layers of vae_ros hold: what each folder may import, and no import cycles between modules.

core/     ROS-free models, data, training, export, backends: imports only core
sim/      the MuJoCo world: imports core and sim
control/  runtime, training, evaluation (ROS-free): imports core, sim and control
ros/      everything that knows ROS (interface, conversions, QoS, bags, the node kit, the nodes): not apps
apps/     what people run (demo, CLI, benchmarks): anything

Every import counts for the folder rules, also one inside a function (a lazy import still needs the layer at
run time). For cycles only module-level imports count: a lazy import is how a module breaks a cycle on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vae_ros"
ALLOWED = {
    "core": {"core"},
    "sim": {"core", "sim"},
    "control": {"core", "sim", "control"},
    "ros": {"core", "sim", "control", "ros"},
    "apps": {"core", "sim", "control", "ros", "apps"},
}
TOP_LEVEL_MODULES = {"__init__", "resources"}  # vae_ros/*.py: the package face and where share files live


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, module_level_only: bool) -> set[str]:
    """The vae_ros modules a file imports (`from vae_ros.x import y` counts as vae_ros.x.y when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    if module_level_only:  # module level includes `if TYPE_CHECKING:` blocks? no: they never run
        nodes = [n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("vae_ros")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("vae_ros"):
            module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else module)
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] not in TOP_LEVEL_MODULES) else "top"


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_lives_in_a_layer() -> None:
    strays = [str(p.relative_to(PACKAGE)) for p in FILES if _layer(_module_name(p)) not in (*ALLOWED, "top")]
    assert not strays, f"modules outside core/, sim/, control/, ros/, apps/: {strays}"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    bad = []
    for path in FILES:
        module = _module_name(path)
        if _layer(module) != layer:
            continue
        for imported in _imports(path, module_level_only=False):
            target = _layer(imported)
            if target not in ALLOWED[layer] and target != "top":
                bad.append(f"{module} imports {imported}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    graph = {_module_name(p): {m for m in _imports(p, module_level_only=True)} for p in FILES}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]) if nxt in stack else nxt)
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # a package's __init__ importing its own modules is how packages work, not a cycle to fix
    cycles = [c for c in cycles if not all(part.endswith("__init__") for part in c.split(" -> "))]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    """The checker sees a lazy import of the ROS layer in the core (so the rule above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from vae_ros.ros.qos import LATENT_QOS\n    return LATENT_QOS\n")
    assert _imports(bad, module_level_only=False) == {"vae_ros.ros.qos"}
    assert _imports(bad, module_level_only=True) == set()
