"""Benchmarks behind `vae-ros bench`, inside the package so an installed `vae-ros` can run them.

models.py times the encoder in every inference backend available here; the repository's bench/ folder
holds thin runnable wrappers (python bench/models.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def save_report_json(report: Any, path: str | Path) -> None:
    """Write a benchmark report's to_json() to `path` (ConfigError, one line, if it cannot be written)."""
    from vae_ros.core.errors import ConfigError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.to_json() + "\n")
    except OSError as err:
        raise ConfigError(f"cannot write --json {path}: {err}") from err
    print(f"saved {path}", file=sys.stderr)
