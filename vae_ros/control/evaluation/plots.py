"""PNG plots of basin measurements, closed-loop episodes and taught routes (matplotlib Agg through
vae_ros.core.plots' figure helpers, never pyplot)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.evaluation.basin import BasinConfig, GoalResult, pose_distance
from vae_ros.core.plots import _figure, _save

_GOOD, _BAD, _BLOCKED = "#2e9d4a", "#d0342c", "#bdbdbd"
_MAX_GOALS_SHOWN = 8


def file_stem(name: str) -> str:
    """A representation name as a safe file name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "representation"


def save_basin_map(results: Sequence[GoalResult], name: str, config: BasinConfig, path: str | Path) -> Path:
    """Start positions at zero yaw offset around each goal, green where the descent reached the goal and red
    where it did not (top row greedy, bottom row goal Jacobian); grey cells are in collision."""
    shown = list(results)[:_MAX_GOALS_SHOWN]
    fig = _figure(2.6 * len(shown) + 0.6, 5.6)
    axes = np.array(fig.subplots(2, len(shown), squeeze=False))
    for col, result in enumerate(shown):
        grid, descent = result.grid, result.descents[name]
        k0 = grid.centre[2]
        blocked = ~grid.valid[:, :, k0]
        bx, by = np.nonzero(blocked)
        at_zero = result.starts[:, 2] == k0
        start_xy = grid.offsets(result.starts[at_zero])[:, :2]
        for row, (success, label) in enumerate(((descent.greedy_success, "greedy"),
                                                (descent.jacobian_success, "Jacobian"))):
            ax = axes[row, col]
            ax.scatter(grid.x[bx], grid.y[by], s=10, marker="s", c=_BLOCKED, linewidths=0)
            ok = success[at_zero]
            ax.scatter(start_xy[ok, 0], start_xy[ok, 1], s=10, marker="s", c=_GOOD, linewidths=0)
            ax.scatter(start_xy[~ok, 0], start_xy[~ok, 1], s=10, marker="s", c=_BAD, linewidths=0)
            ax.plot([0], [0], marker="*", markersize=12, color="black")
            yaw = float(grid.goal[2])
            ax.arrow(0, 0, 0.25 * math.cos(yaw), 0.25 * math.sin(yaw), width=0.015, color="black")
            ax.set_aspect("equal")
            limit = grid.x[-1] + config.step
            ax.set_xlim(-limit, limit)
            ax.set_ylim(-limit, limit)
            rate = 100.0 * success.mean() if success.size else math.nan
            ax.set_title(f"{label}: {rate:.0f}% (all yaw)\nseed {result.seed} goal "
                         f"({grid.goal[0]:.1f}, {grid.goal[1]:.1f})", fontsize=8)
            ax.tick_params(labelsize=7)
            if row == 1:
                ax.set_xlabel("x - goal (m)", fontsize=8)
            if col == 0:
                ax.set_ylabel("y - goal (m)", fontsize=8)
    fig.suptitle(f"{name}: starts at the goal's yaw\ngreen reached the goal, red did not, grey collision",
                 fontsize=9)
    return _save(fig, path)


def save_success_bars(summary: dict[str, dict[str, Any]], config: BasinConfig, path: str | Path) -> Path:
    """Greedy and goal-Jacobian success per representation, over all starts and over small-yaw starts."""
    names = list(summary)
    fig = _figure(max(6.0, 1.3 * len(names) + 2.0), 4.2)
    ax = fig.subplots()
    series = [("greedy_pct", "greedy", "#4c72b0", 1.0), ("greedy_pct_small_yaw", f"greedy, yaw ≤{config.yaw_split_deg:g}°",
                                                       "#4c72b0", 0.45),
              ("jacobian_pct", "Jacobian", "#dd8452", 1.0), ("jacobian_pct_small_yaw",
                                                            f"Jacobian, yaw ≤{config.yaw_split_deg:g}°", "#dd8452", 0.45)]
    width = 0.8 / len(series)
    centres = np.arange(len(names))
    for i, (key, label, colour, alpha) in enumerate(series):
        values = [math.nan if summary[n][key] is None else summary[n][key] for n in names]
        bars = ax.bar(centres + (i - (len(series) - 1) / 2) * width, values, width, label=label, color=colour,
                      alpha=alpha)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(centres)
    ax.set_xticklabels(names, rotation=15, fontsize=8)
    ax.set_ylabel("starts reaching the goal (%)")
    ax.set_ylim(0, 120)
    ax.set_title(f"basin of attraction: starts {config.start_min:g}-{config.start_max:g} m, "
                 f"≤{config.start_yaw_max_deg:g}° from the goal; success ≤{config.tolerance_xy:g} m and "
                 f"{config.tolerance_yaw_deg:g}°", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", ncol=len(series), frameon=False)
    return _save(fig, path)


def save_distance_scatter(results: Sequence[GoalResult], config: BasinConfig, path: str | Path,
                          max_points: int = 4000, seed: int = 0) -> Path:
    """Latent distance to the goal against pose distance, one panel per representation (coloured by |dyaw|)."""
    names = list(results[0].descents)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = _figure(4.2 * cols, 3.4 * rows)
    axes = np.array(fig.subplots(rows, cols, squeeze=False)).ravel()
    rng = np.random.default_rng(seed)
    image = None
    for ax, name in zip(axes, names, strict=False):
        pose_d, latent_d, yaw_d = [], [], []
        for result in results:
            free = result.grid.valid
            offsets = result.grid.all_offsets()[free]
            pose_d.append(pose_distance(offsets, config.yaw_weight))
            latent_d.append(result.fields[name].distance[free])
            yaw_d.append(np.degrees(np.abs(offsets[:, 2])))
        p, d, y = np.concatenate(pose_d), np.concatenate(latent_d), np.concatenate(yaw_d)
        if len(p) > max_points:
            pick = rng.choice(len(p), max_points, replace=False)
            p, d, y = p[pick], d[pick], y[pick]
        image = ax.scatter(p, d, s=3, c=y, cmap="viridis", vmin=0, vmax=config.yaw_extent_deg, linewidths=0)
        rhos = [r.descents[name].spearman for r in results]
        finite = [r for r in rhos if math.isfinite(r)]
        rho = f"{np.mean(finite):.2f}" if finite else "-"
        ax.set_title(f"{name} (Spearman {rho})", fontsize=9)
        ax.set_xlabel(f"pose distance (m, yaw at {config.yaw_weight:g} m/rad)", fontsize=8)
        ax.set_ylabel("latent distance to goal", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[:len(names)]), label="|yaw offset| (deg)", shrink=0.8)
    return _save(fig, path)


# -- closed-loop episodes ----------------------------------------------------------------------------------
def save_episode_trajectories(results: Sequence[Any], path: str | Path, title: str, max_shown: int = 24) -> Path:
    """Small multiples: each episode's path in the goal frame (goal at the origin facing +x), start marked.

    Failures are drawn first (they are what a reader looks for), then successes, up to `max_shown`; each panel
    is scaled to its own episode (hard starts are 1-2 m away), and the title says how many of how many are
    drawn."""
    shown, drawn = episodes_to_draw(results, max_shown)
    cols = 6
    rows = max(1, math.ceil(len(shown) / cols))
    fig = _figure(2.2 * cols, 2.2 * rows + 0.7)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, (number, result) in zip(axes, shown, strict=False):
        gx, gy, gyaw = result.episode.goal
        c, s = math.cos(gyaw), math.sin(gyaw)
        traj = np.asarray(result.trajectory, dtype=np.float64).reshape(-1, 3)
        x = c * (traj[:, 0] - gx) + s * (traj[:, 1] - gy)
        y = -s * (traj[:, 0] - gx) + c * (traj[:, 1] - gy)
        colour = _GOOD if result.success else _BAD
        ax.plot(x, y, "-", color=colour, linewidth=1.2)
        ax.plot([x[0]], [y[0]], marker="o", markersize=4, markerfacecolor="none", color="black")
        for px, py, yaw in ((x[0], y[0], traj[0, 2] - gyaw), (x[-1], y[-1], traj[-1, 2] - gyaw)):
            ax.annotate("", xy=(px + 0.12 * math.cos(yaw), py + 0.12 * math.sin(yaw)), xytext=(px, py),
                        arrowprops={"arrowstyle": "->", "color": "black", "linewidth": 0.8})
        ax.plot([0.0], [0.0], marker="*", color="black", markersize=9)
        ax.annotate("", xy=(0.15, 0.0), xytext=(0.0, 0.0), arrowprops={"arrowstyle": "->", "color": "black"})
        ax.add_patch(_circle(0.10))
        ax.set_aspect("equal")
        (x0, x1), (y0, y1) = _square_limits(np.concatenate([x, [0.0]]), np.concatenate([y, [0.0]]))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.tick_params(labelsize=6)
        ax.set_title(f"#{number} {result.status}, {result.final_position_error * 100:.0f} cm / "
                     f"{math.degrees(result.final_yaw_error):.1f} deg", fontsize=7)
    for ax in axes[len(shown):]:
        ax.axis("off")
    fig.suptitle(f"{title}: paths in the goal frame, each panel scaled to its episode; {drawn}\n"
                 "goal * facing +x, 0.10 m circle; start o; arrows: start and end heading; green success, red failure",
                 fontsize=10)
    return _save(fig, path)


def episodes_to_draw(results: Sequence[Any], max_shown: int) -> tuple[list[tuple[int, Any]], str]:
    """(the (1-based episode number, result) pairs to draw: failures first, then successes, each in episode
    order, at most max_shown; the caption saying how many of how many)."""
    numbered = list(enumerate(results, 1))
    failures = [(n, r) for n, r in numbered if not r.success]
    shown = (failures + [(n, r) for n, r in numbered if r.success])[:max_shown]
    caption = f"{len(shown)} of {len(numbered)} episodes drawn"
    if failures:
        caption += f", failures first ({sum(1 for _, r in shown if not r.success)} of {len(failures)})"
    return shown, caption


def _square_limits(x: np.ndarray, y: np.ndarray, margin: float = 0.2,
                   min_half: float = 0.3) -> tuple[tuple[float, float], tuple[float, float]]:
    """Equal-sized x and y limits around the points, with a margin (the heading arrows are 0.12-0.15 m)."""
    cx, cy = 0.5 * (float(np.min(x)) + float(np.max(x))), 0.5 * (float(np.min(y)) + float(np.max(y)))
    half = max(min_half, 0.5 * max(float(np.ptp(x)), float(np.ptp(y))) + margin)
    return (cx - half, cx + half), (cy - half, cy + half)


def _circle(radius: float) -> Any:
    from matplotlib.patches import Circle

    return Circle((0.0, 0.0), radius, fill=False, linestyle=":", color="grey")


def save_episode_errors(results: Sequence[Any], tolerance: float, path: str | Path, title: str,
                        rate: float = 10.0) -> Path:
    """Latent error against time for every episode, with the convergence tolerance."""
    fig = _figure(7, 3.6)
    ax = fig.subplots()
    for result in results:
        errors = np.asarray(result.latent_error, dtype=np.float64)
        ax.plot(np.arange(errors.size) / rate, errors, color=_GOOD if result.success else _BAD, alpha=0.4,
                linewidth=0.8)
    ax.axhline(tolerance, color="black", linestyle="--", linewidth=1, label=f"tolerance {tolerance:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("latent error |z - z*|")
    ax.set_title(f"{title}\nlatent error over time, {len(results)} episodes (green success, red failure)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def save_episode_starts(results: Sequence[Any], path: str | Path, title: str) -> Path:
    """Start positions in the goal frame coloured by outcome: the closed-loop basin."""
    fig = _figure(9, 4)
    left, right = fig.subplots(1, 2)
    for result in results:
        gx, gy, gyaw = result.episode.goal
        sx, sy, syaw = result.episode.start
        c, s = math.cos(gyaw), math.sin(gyaw)
        x, y = c * (sx - gx) + s * (sy - gy), -s * (sx - gx) + c * (sy - gy)
        colour = _GOOD if result.success else _BAD
        left.plot([x], [y], marker="o", color=colour, markersize=4)
        right.plot([result.episode.start_distance], [math.degrees(result.episode.start_yaw_error)], marker="o",
                   color=colour, markersize=4)
    left.plot([0.0], [0.0], marker="*", color="black", markersize=10)
    left.set_aspect("equal")
    left.set_xlabel("start x in the goal frame (m)")
    left.set_ylabel("start y (m)")
    right.set_xlabel("start distance (m)")
    right.set_ylabel("start yaw error (deg)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: episode starts (green success, red failure)", fontsize=10)
    return _save(fig, path)


# -- taught routes -----------------------------------------------------------------------------------------
_REPEAT_COLOURS = ("#1f77b4", "#e08a1e", "#9c5fb5", "#2e9d4a", "#d0342c", "#8c564b")


def plot_route(route: Any, path: str | Path, repeats: Sequence[tuple[str, np.ndarray]] | None = None,
               title: str = "taught route") -> Path:
    """A route's keyframes in its odometry frame (metres, axes equal): the path as a line with a dot per
    keyframe, the start (o) and end (*) marked, a heading arrow every few keyframes; `repeats` are (label,
    (N, 3) poses) paths drawn over it (a repeat run, another method) in the same frame."""
    poses = np.asarray(route.poses, dtype=np.float64)  # (K, 3)
    fig = _figure(6.0, 6.0)
    ax = fig.subplots()
    ax.plot(poses[:, 0], poses[:, 1], "-", color="black", linewidth=1.2, alpha=0.6, label="taught")
    ax.plot(poses[:, 0], poses[:, 1], ".", color="black", markersize=4)
    span = max(float(np.ptp(poses[:, 0])), float(np.ptp(poses[:, 1])), 0.5)
    arrow = 0.06 * span
    every = max(1, len(poses) // 12)
    for x, y, yaw in poses[::every]:
        ax.annotate("", xy=(x + arrow * math.cos(yaw), y + arrow * math.sin(yaw)), xytext=(x, y),
                    arrowprops={"arrowstyle": "->", "color": "#444444", "linewidth": 0.8})
    shown = [poses[:, :2]]
    for n, (label, repeat) in enumerate(repeats or []):
        trace = np.asarray(repeat, dtype=np.float64).reshape(-1, 3)
        ax.plot(trace[:, 0], trace[:, 1], "-", linewidth=1.0, color=_REPEAT_COLOURS[n % len(_REPEAT_COLOURS)],
                label=label)
        shown.append(trace[:, :2])
    ax.plot([poses[0, 0]], [poses[0, 1]], marker="o", markersize=9, markerfacecolor="none", color="#2e9d4a",
            linestyle="none", label="start")
    ax.plot([poses[-1, 0]], [poses[-1, 1]], marker="*", markersize=12, color="#d0342c", linestyle="none",
            label="end")
    points = np.concatenate(shown)
    (x0, x1), (y0, y1) = _square_limits(points[:, 0], points[:, 1], margin=0.1 * span + 0.1)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, odometry frame)")
    ax.set_ylabel("y (m)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"{title}\n{len(poses)} keyframes, {float(route.length):.2f} m; arrows: heading", fontsize=9)
    return _save(fig, path)
