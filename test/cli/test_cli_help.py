"""`vae-ros --help` lists the contract's subcommands, and each one answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

CONTRACT_SUBCOMMANDS = ["collect", "record", "train", "train-dynamics", "export", "eval", "teach", "demo", "bench"]


def _vae_ros(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vae_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_top_level_help_lists_every_subcommand() -> None:
    result = _vae_ros("--help")
    assert result.returncode == 0, result.stderr
    for name in CONTRACT_SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", CONTRACT_SUBCOMMANDS)
def test_each_subcommand_answers_help(name: str) -> None:
    result = _vae_ros(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: vae-ros " + name)


def test_unknown_subcommand_is_one_line_and_nonzero() -> None:
    result = _vae_ros("frobnicate")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") <= 2  # argparse usage line + one error line
    assert "Traceback" not in result.stderr
