"""A minimal stand-in for vae_ros.ros.route_file (branch `teach`) while that module is not on this branch:
save_route / load_route of a folder holding route.npz and route.json. Test-only; the node tests register it as
vae_ros.ros.route_file in the node's process (test_route_follower_node.start_follower). Delete once route_file.py
is merged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vae_ros.control.runtime.route import Route
from vae_ros.core.errors import DataError


def save_route(route: Route, folder: str | Path, force: bool = False) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=force)
    np.savez(folder / "route.npz", poses=route.poses, latents=route.latents, stamps_ns=route.stamps_ns)
    (folder / "route.json").write_text(json.dumps(route.meta))
    return folder


def load_route(folder: str | Path) -> Route:
    folder = Path(folder)
    try:
        arrays = np.load(folder / "route.npz", allow_pickle=False)
        meta = json.loads((folder / "route.json").read_text())
        return Route(arrays["poses"], arrays["latents"], arrays["stamps_ns"], None, meta)
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"route {folder} cannot be read: {err}") from err
