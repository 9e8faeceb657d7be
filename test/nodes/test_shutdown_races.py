"""Ctrl-C while a node is mid-message: the context is shut down under a publish. That is the shutdown asked
for, not an error (it would log a traceback and count an ERROR on every Ctrl-C); the same exception while
the node runs still is one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from vae_ros.node_utils import MessageGuard


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
