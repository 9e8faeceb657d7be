"""`vae-ros demo` (placeholder until its issue lands: it answers --help and says it is not built yet)."""

from __future__ import annotations

import argparse

from vae_ros.core.errors import ConfigError


def register(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    raise ConfigError("this subcommand is not available in this version yet")
