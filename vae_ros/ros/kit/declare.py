"""Parameters of a node: declare every field of its parameters dataclass (vae_ros.ros.kit.params) with description,
read-only flag and range, read them once, validate runtime changes; parameter files and unknown parameters checked
at start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from vae_ros.core.errors import ConfigError
from vae_ros.ros.kit.params import NodeParams, specs_of

# -- parameters -----------------------------------------------------------------------------------------------
P = TypeVar("P", bound=NodeParams)


def declare_params(node: Any, params_type: type[P]) -> P:
    """Declare every field of a parameters dataclass (vae_ros.ros.kit.params) as a ROS parameter, with its
    description, read-only flag and range, and return the start-up values read into it, validated.
    ConfigError, in one line, for a value of the wrong type, out of range or invalid."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for spec in specs_of(params_type):
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        if spec.range is not None and spec.kind is float:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                                  to_value=float(spec.range[1]))]
        elif spec.range is not None and spec.kind is int:
            descriptor.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]))]
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        try:
            values[spec.name] = node.declare_parameter(spec.name, default, descriptor).value
        except InvalidParameterTypeException as err:
            raise ConfigError(
                f"parameter {spec.name!r} must be of type {spec.kind.__name__} (e.g. {default!r}): {err}"
            ) from err
        except InvalidParameterValueException as err:
            raise ConfigError(f"parameter {spec.name!r}: {err}") from err
    return params_type.from_values(values)


def on_parameter_changes(node: Any, current: Callable[[], P], apply: Callable[[P], None]) -> None:
    """Register the usual on-set-parameters callback: a validated copy of current() with the new values goes
    to apply(), which swaps it in (and may raise ConfigError to refuse it with a reason); a ConfigError
    refuses the change with its message as the reason."""
    from rcl_interfaces.msg import SetParametersResult

    def callback(parameters: list[Any]) -> Any:
        try:
            apply(current().updated({p.name: p.value for p in parameters}))
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)


def _params_file_loader() -> Any:
    """yaml.SafeLoader that also reads `!!python/tuple` sequences as lists: launch_ros writes list parameters
    (e.g. initial_pose) that way into the params files it passes to the nodes, and rcl reads them fine."""
    import yaml

    class ParamsFileLoader(yaml.SafeLoader):
        pass

    ParamsFileLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                                     lambda loader, node: loader.construct_sequence(node))
    return ParamsFileLoader


def check_params_files(args: Sequence[str]) -> None:
    """ConfigError in one line for a `--params-file` that is missing or not YAML (rcl's own error is a
    traceback with C source locations)."""
    import yaml

    for flag, value in zip(args, list(args)[1:], strict=False):
        if flag != "--params-file":
            continue
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"--params-file {path} does not exist or is not a file")
        try:
            content = yaml.load(path.read_text(), Loader=_params_file_loader())
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--params-file {path} cannot be read: {err}") from err
        except yaml.YAMLError as err:
            mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
            detail = (f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark and problem
                      else " ".join(str(err).split()))
            raise ConfigError(f"--params-file {path} is not valid YAML: {detail}") from err
        problem = _params_tree_problem(content)
        if problem:
            raise ConfigError(f"--params-file {path}: {problem}; expected node names (or namespaces) mapping to "
                              "'ros__parameters:' blocks, e.g. 'encoder_node: {ros__parameters: {backend: torch}}'")


def _params_tree_problem(tree: Any, where: str = "") -> str:
    """What rcl would refuse in a params file's structure ('' when nothing): a value where a node name or
    ros__parameters is expected, or ros__parameters that is not a mapping."""
    if not isinstance(tree, dict) or not tree:
        return f"{where or 'the file'} is not a mapping of node names"
    for key, value in tree.items():
        here = f"{where}/{key}" if where else str(key)
        if key == "ros__parameters":
            if not isinstance(value, dict):
                return f"{here} must be a mapping of parameter names to values"
        elif not isinstance(value, dict):
            return f"{here} has a value before any ros__parameters"
        else:
            problem = _params_tree_problem(value, here)
            if problem:
                return problem
    return ""


def unknown_parameters(node: Any) -> dict[str, str]:
    """Parameters given for this node (params file, -p) that it never declared -> a hint for each (the
    closest declared name, or the declared names)."""
    import difflib

    overrides = getattr(node, "_parameter_overrides", None) or {}  # rclpy keeps them here (Humble..Kilted)
    declared = sorted(name for name in getattr(node, "_parameters", {}))
    unknown = sorted(name for name in overrides if name not in declared and not name.startswith("qos_overrides."))
    hints = {}
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1)
        hints[name] = f"did you mean {close[0]!r}?" if close else f"its parameters are {', '.join(declared)}"
    return hints


def refuse_unknown_parameters(node: Any) -> None:
    """ConfigError, one line naming them (with the did-you-mean), when parameters were given for this node
    that it never declared: for every node that publishes cmd_vel (REFUSE_UNKNOWN_PARAMETERS), where a
    misspelt safety limit (`max_lineer`) would leave the robot running at the default."""
    hints = unknown_parameters(node)
    if not hints:
        return
    if len(hints) == 1:
        ((name, hint),) = hints.items()
        what = f"parameter {name!r} is not a parameter of {node.get_name()}; {hint}"
    else:
        what = (f"parameters {', '.join(f'{name!r} ({hint})' for name, hint in hints.items())} are not "
                f"parameters of {node.get_name()}")
    raise ConfigError(f"{what}{'' if what.endswith('?') else '.'} Not starting: this node publishes cmd_vel, "
                      "and a misspelt limit would leave its default in force")


def warn_unknown_parameters(node: Any) -> list[str]:
    """Warn, naming them, about parameters given for this node (params file, -p) that it never declared:
    a misspelt `modell:` would otherwise be ignored without a word. Returns the unknown names. A node whose
    class sets REFUSE_UNKNOWN_PARAMETERS refuses to start instead (refuse_unknown_parameters)."""
    if getattr(node, "REFUSE_UNKNOWN_PARAMETERS", False):
        refuse_unknown_parameters(node)
    hints = unknown_parameters(node)
    for name, hint in hints.items():
        node.get_logger().warning(f"parameter {name!r} is not a parameter of {node.get_name()} and is "
                                  f"ignored; {hint}")
    return list(hints)
