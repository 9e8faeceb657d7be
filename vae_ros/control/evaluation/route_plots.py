"""PNG plots of teach-and-repeat runs: taught vs repeated paths per route, and the methods' success side by side
(matplotlib Agg through vae_ros.core.plots' figure helpers, never pyplot)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.plots import _figure, _save

_COLOURS = {"odometry": "#8c8c8c", "raw_scan": "#e08a1e", "pixels": "#9c5fb5", "image": "#1f77b4",
            "control": "#2e9d4a"}


def save_route_paths(routes: Sequence[dict[str, Any]], repeats: Sequence[dict[str, Any]], path: str | Path,
                     title: str, max_shown: int = 12) -> Path:
    """One panel per route (ground truth, world frame): the taught path in black, each method's repeat in its
    colour (dashed where it failed), the start and the taught end marked."""
    shown = [r for r in routes if r.get("taught")][:max_shown]
    cols = min(4, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig = _figure(3.4 * cols, 3.4 * rows + 0.8)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, route in zip(axes, shown, strict=False):
        taught = np.asarray(route["taught"], dtype=np.float64)
        ax.plot(taught[:, 0], taught[:, 1], "-", color="black", linewidth=2.2, alpha=0.35, label="taught")
        ax.plot([taught[-1, 0]], [taught[-1, 1]], marker="*", color="black", markersize=10)
        ax.plot([route["start"][0]], [route["start"][1]], marker="o", markerfacecolor="none", color="black")
        for rep in repeats:
            if rep["seed"] != route["seed"] or rep["route"] != route["route"] or not rep.get("trajectory"):
                continue
            traj = np.asarray(rep["trajectory"], dtype=np.float64)
            style = "-" if rep["success"] else "--"
            ax.plot(traj[:, 0], traj[:, 1], style, linewidth=1.0, color=_COLOURS.get(rep["method"], "#444444"),
                    label=f"{rep['method']}@{rep['lighting']} {'ok' if rep['success'] else 'fail'}")
        ax.set_aspect("equal")
        ax.set_xlim(-3.1, 3.1)
        ax.set_ylim(-3.1, 3.1)
        ax.tick_params(labelsize=6)
        ax.set_title(f"seed {route['seed']} route {route['route']}: {route.get('length_m', 0):.1f} m", fontsize=8)
        ax.legend(fontsize=5, loc="lower left")
    for ax in axes[len(shown):]:
        ax.axis("off")
    fig.suptitle(f"{title}\ntaught path (grey), repeats (solid: success, dashed: failure), start o, end *; "
                 "the room's walls at +-3 m", fontsize=9)
    return _save(fig, path)


def save_route_success(table: dict[str, dict[str, Any]], path: str | Path, title: str) -> Path:
    """Bars: route success rate and relocalisation recall per method and lighting."""
    names = list(table)
    fig = _figure(max(5.0, 1.0 * len(names) + 2.0), 3.8)
    ax = fig.subplots()
    x = np.arange(len(names))
    success = [100 * table[n]["success_rate"] for n in names]
    recall = [100 * ((table[n].get("relocalise") or {}).get("recall") or 0.0) for n in names]
    ax.bar(x - 0.2, success, width=0.4, color="#2e9d4a", label="route success")
    ax.bar(x + 0.2, recall, width=0.4, color="#1f77b4", label="relocalisation recall (0.5 m)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
