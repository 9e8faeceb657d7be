"""What a real `ros2 launch` does to the nodes, found by test_real_launch.py.

Ctrl-C while a node is mid-message shuts the context down under a publish: that is the shutdown asked for,
not an error (it would log a traceback and count an ERROR on every stop); the same exception while the node
runs still is one. And launch_ros writes list parameters into its params files as Python tuples."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from vae_ros.ros.kit.guard import MessageGuard


class _Logger:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def warning(self, text: str, **_: Any) -> None:
        pass

    def error(self, text: str, **_: Any) -> None:
        self.errors.append(text)


def _node(ok: bool) -> Any:
    logger = _Logger()
    return SimpleNamespace(context=SimpleNamespace(ok=lambda: ok), get_logger=lambda: logger, logger=logger)


def _publish_on_a_closed_context() -> None:
    raise RuntimeError("Failed to publish: publisher's context is invalid")


def test_an_error_after_shutdown_is_dropped_quietly() -> None:
    node, errors = _node(ok=False), []
    guard = MessageGuard(node, lambda reason: None, errors.append)
    assert guard.run("a latent", _publish_on_a_closed_context) is False
    assert errors == [] and node.logger.errors == []


def test_the_same_error_while_running_is_logged_and_counted() -> None:
    node, errors = _node(ok=True), []
    guard = MessageGuard(node, lambda reason: None, errors.append)
    assert guard.run("a latent", _publish_on_a_closed_context) is False
    assert errors == ["RuntimeError: Failed to publish: publisher's context is invalid"]
    assert "Traceback" in node.logger.errors[0]


def test_params_files_written_by_launch_ros_are_accepted(tmp_path: Any) -> None:
    # launch_ros dumps list parameters as Python tuples (!!python/tuple); rcl reads them, so must the check.
    import pytest
    import yaml

    from vae_ros.core.errors import ConfigError
    from vae_ros.ros.kit.declare import check_params_files

    path = tmp_path / "launch_params"
    path.write_text(yaml.dump({"/**": {"ros__parameters": {"initial_pose": (0.5, 0.0, 1.0), "seed": 3}}}))
    assert "!!python/tuple" in path.read_text()
    check_params_files(["--params-file", str(path)])
    path.write_text("/**:\n  ros__parameters:\n    x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):  # still a safe loader
        check_params_files(["--params-file", str(path)])
