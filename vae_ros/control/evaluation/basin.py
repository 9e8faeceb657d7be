"""Basin of attraction of latent-distance descent: how often does descending |z - z*| reach the goal?

Over 500 lines: the grid, the descent and the per-representation report are one measurement.

For goals (free poses in simulated worlds) a pose grid around each goal is observed once, every
representation encodes it, and two descents run from every start cell (0.3-1.0 m, <= 45 deg from the goal):
- greedy: move to the 26-neighbour cell (+-1 step in any combination of x, y, yaw) of lowest latent distance;
  stop when none improves;
- goal Jacobian: J (D x 3) by central differences at the goal in (m, m, rad); pose <- pose - 1/2 J^+ (z - z*)
  with z read at the nearest grid cell, each step clipped to one grid step per axis; stop after 60 iterations,
  or (failing) when the pose leaves the grid or its nearest cell is in collision.
A start succeeds when the descent ends within 0.10 m and 5 deg of the goal. A representation fit for servoing
reaches the goal from most starts; the true pose reaches it from all. The Spearman correlation of latent
distance with pose distance sqrt(dxy^2 + (w dyaw)^2) over the grid tells whether distances rank poses at all.
Everything is vectorised over cells and starts; the cost is observing the grid (camera frames).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vae_ros.control.evaluation.representations import Observations, Representation, observe, sensors_of
from vae_ros.control.runtime.poses import sample_free_poses
from vae_ros.core.errors import ConfigError
from vae_ros.sim.geometry import ROBOT_RADIUS, collision_free
from vae_ros.sim.world import SimObject

# The 26 neighbour moves of the greedy descent, (26, 3) in grid steps (x, y, yaw).
NEIGHBOUR_MOVES = np.array([m for m in itertools.product((-1, 0, 1), repeat=3) if any(m)], dtype=np.int64)
# Grid offsets are multiples of a step; comparisons against thresholds allow for their rounding.
_EPS = 1e-9
# Descent outcomes besides "ran its course".
STATUS_RAN, STATUS_LEFT_GRID, STATUS_COLLISION = 0, 1, 2


@dataclass
class BasinConfig:
    """The grid around each goal, the start set, the success test and the descents."""

    extent: float = 1.0  # m: the grid spans goal +- extent in x and y
    step: float = 0.1  # m
    yaw_extent_deg: float = 45.0  # the grid spans goal yaw +- this
    yaw_step_deg: float = 5.0
    start_min: float = 0.3  # m: starts lie this far from the goal or further...
    start_max: float = 1.0  # m: ...up to this
    start_yaw_max_deg: float = 45.0  # and at most this far in yaw
    tolerance_xy: float = 0.10  # m: success = final pose within this and tolerance_yaw_deg of the goal
    tolerance_yaw_deg: float = 5.0
    yaw_split_deg: float = 20.0  # results are also split by start yaw offset <= / > this
    jacobian_gain: float = 0.5
    jacobian_iterations: int = 60
    goal_clearance: float = 0.6  # m from the goal's centre to any wall or object surface
    yaw_weight: float = 1.0  # m per rad in the pose distance
    chunk: int = 256  # poses observed and encoded at a time (bounds memory: frames are large)

    def validate(self) -> None:
        """Raise ConfigError for a grid or test that cannot be built or would not mean anything."""
        positive = {"extent": self.extent, "step": self.step, "yaw_extent_deg": self.yaw_extent_deg,
                    "yaw_step_deg": self.yaw_step_deg, "tolerance_xy": self.tolerance_xy,
                    "jacobian_gain": self.jacobian_gain, "yaw_weight": self.yaw_weight}
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value}")
        for name, value in (("start_min", self.start_min), ("start_max", self.start_max),
                            ("start_yaw_max_deg", self.start_yaw_max_deg),
                            ("tolerance_yaw_deg", self.tolerance_yaw_deg), ("yaw_split_deg", self.yaw_split_deg)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value}")
        if self.step > self.extent:
            raise ConfigError(f"step ({self.step} m) must not exceed extent ({self.extent} m)")
        if self.yaw_step_deg > self.yaw_extent_deg:
            raise ConfigError(f"yaw_step_deg ({self.yaw_step_deg}) must not exceed yaw_extent_deg "
                              f"({self.yaw_extent_deg})")
        if self.yaw_extent_deg >= 180.0:
            raise ConfigError(f"yaw_extent_deg must be below 180, got {self.yaw_extent_deg}")
        if self.start_min > self.start_max:
            raise ConfigError(f"start_min ({self.start_min} m) must not exceed start_max ({self.start_max} m)")
        if self.jacobian_iterations < 1:
            raise ConfigError(f"jacobian_iterations must be >= 1, got {self.jacobian_iterations}")
        if self.chunk < 1:
            raise ConfigError(f"chunk must be >= 1, got {self.chunk}")
        # The goal and its Jacobian neighbours (one step away) must be free for every goal drawn.
        if self.goal_clearance < ROBOT_RADIUS + self.step:
            raise ConfigError(f"goal_clearance must be >= robot radius + step = {ROBOT_RADIUS + self.step:.2f} m, "
                              f"got {self.goal_clearance}")
        cells = (2 * self.half_cells + 1) ** 2 * (2 * self.yaw_half_cells + 1)
        if cells > 2_000_000:
            raise ConfigError(f"the grid would have {cells} cells per goal; use a coarser step or a smaller extent")

    @property
    def half_cells(self) -> int:
        """Cells on each side of the goal in x and y."""
        return int(math.floor(self.extent / self.step + 1e-6))

    @property
    def yaw_half_cells(self) -> int:
        return int(math.floor(self.yaw_extent_deg / self.yaw_step_deg + 1e-6))

    @property
    def steps(self) -> np.ndarray:
        """(3,) grid steps in (m, m, rad)."""
        return np.array([self.step, self.step, math.radians(self.yaw_step_deg)])


@dataclass
class PoseGrid:
    """Poses around a goal: offsets per axis and which cells are free. Cell (i, j, k) is the pose
    goal + (x[i], y[j], yaw[k]); the goal is the centre cell."""

    goal: np.ndarray  # (3,) x, y, yaw (m, m, rad)
    x: np.ndarray  # (nx,) offsets in m
    y: np.ndarray  # (ny,)
    yaw: np.ndarray  # (nyaw,) offsets in rad
    valid: np.ndarray  # (nx, ny, nyaw) bool: free of collision

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.x), len(self.y), len(self.yaw))

    @property
    def centre(self) -> np.ndarray:
        """(3,) index of the goal cell."""
        return np.array([len(self.x) // 2, len(self.y) // 2, len(self.yaw) // 2])

    def offsets(self, index: np.ndarray) -> np.ndarray:
        """(..., 3) cell indices -> (..., 3) offsets from the goal in (m, m, rad)."""
        index = np.asarray(index)
        return np.stack([self.x[index[..., 0]], self.y[index[..., 1]], self.yaw[index[..., 2]]], axis=-1)

    def poses(self, index: np.ndarray) -> np.ndarray:
        """(..., 3) cell indices -> (..., 3) absolute poses."""
        return self.goal + self.offsets(index)

    def all_offsets(self) -> np.ndarray:
        """(nx, ny, nyaw, 3) offset of every cell."""
        grids = np.meshgrid(self.x, self.y, self.yaw, indexing="ij")
        return np.stack(grids, axis=-1)


def make_grid(goal: np.ndarray | Sequence[float], objects: Sequence[SimObject], config: BasinConfig) -> PoseGrid:
    """The grid around a goal with its cells in collision (SimWorld.set_pose's rule) marked invalid."""
    goal = np.asarray(goal, dtype=np.float64).reshape(3)
    n, m = config.half_cells, config.yaw_half_cells
    x = config.step * np.arange(-n, n + 1)
    yaw = math.radians(config.yaw_step_deg) * np.arange(-m, m + 1)
    xy = goal[:2] + np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1)  # (nx, ny, 2)
    free = collision_free(xy, objects)  # (nx, ny): collision does not depend on yaw (round robot)
    valid = np.repeat(free[:, :, None], len(yaw), axis=2)
    return PoseGrid(goal, x, x.copy(), yaw, valid)


def sample_goals(objects: Sequence[SimObject], count: int, rng: np.random.Generator,
                 config: BasinConfig) -> np.ndarray:
    """(count, 3) goal poses with config.goal_clearance to every wall and object, yaw uniform."""
    return sample_free_poses(objects, count, rng, min_clearance=config.goal_clearance)


def pose_distance(offsets: np.ndarray, yaw_weight: float = 1.0) -> np.ndarray:
    """(..., 3) offsets from the goal -> (...) sqrt(dx^2 + dy^2 + (w dyaw)^2)."""
    return np.sqrt(offsets[..., 0] ** 2 + offsets[..., 1] ** 2 + (yaw_weight * offsets[..., 2]) ** 2)


def within_tolerance(offsets: np.ndarray, config: BasinConfig) -> np.ndarray:
    """(..., 3) offsets from the goal -> (...) bool: within tolerance_xy and tolerance_yaw_deg."""
    return ((np.hypot(offsets[..., 0], offsets[..., 1]) <= config.tolerance_xy + _EPS)
            & (np.abs(offsets[..., 2]) <= math.radians(config.tolerance_yaw_deg) + _EPS))


def start_cells(grid: PoseGrid, config: BasinConfig) -> np.ndarray:
    """(S, 3) indices of the free cells start_min..start_max and <= start_yaw_max_deg from the goal."""
    offsets = grid.all_offsets()
    dxy = np.hypot(offsets[..., 0], offsets[..., 1])
    chosen = (grid.valid & (dxy >= config.start_min - _EPS) & (dxy <= config.start_max + _EPS)
              & (np.abs(offsets[..., 2]) <= math.radians(config.start_yaw_max_deg) + _EPS))
    return np.argwhere(chosen)


def jacobian_cells(grid: PoseGrid) -> np.ndarray:
    """(7, 3) indices: the goal, then -1 and +1 step along x, y and yaw (for central differences)."""
    centre = grid.centre
    cells = [centre]
    for axis in range(3):
        for sign in (-1, 1):
            cell = centre.copy()
            cell[axis] += sign
            cells.append(cell)
    return np.stack(cells)


def goal_jacobian(z_cells: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latents at jacobian_cells (7, D) -> (z* (D,), J (D, 3)) by central differences, in (m, m, rad)."""
    z_goal = z_cells[0]
    columns = [(z_cells[2 + 2 * axis] - z_cells[1 + 2 * axis]) / (2.0 * steps[axis]) for axis in range(3)]
    return z_goal, np.stack(columns, axis=1)


def greedy_descent(distance: np.ndarray, starts: np.ndarray, max_moves: int | None = None) -> np.ndarray:
    """Simultaneous greedy descent of all starts on a distance field.

    distance: (nx, ny, nyaw), +inf at cells that may not be entered. starts: (S, 3) cell indices.
    Each start moves to its lowest 26-neighbour while that is strictly lower than where it stands.
    Returns (S, 3) final cell indices.
    """
    shape = np.array(distance.shape)
    pos = np.array(starts, dtype=np.int64).reshape(-1, 3)
    current = distance[tuple(pos.T)]
    active = np.arange(len(pos))
    limit = distance.size if max_moves is None else max_moves
    for _ in range(limit):  # each move strictly lowers the distance, so this ends well before the limit
        if active.size == 0:
            break
        candidates = pos[active, None, :] + NEIGHBOUR_MOVES[None]  # (A, 26, 3)
        inside = np.all((candidates >= 0) & (candidates < shape), axis=-1)  # (A, 26)
        clipped = np.clip(candidates, 0, shape - 1)
        values = np.where(inside, distance[clipped[..., 0], clipped[..., 1], clipped[..., 2]], np.inf)
        best = np.argmin(values, axis=1)  # (A,)
        best_value = values[np.arange(len(active)), best]
        improves = best_value < current[active]
        movers = active[improves]
        pos[movers] = candidates[improves, best[improves]]
        current[movers] = best_value[improves]
        active = movers
    return pos


def jacobian_descent(direction: np.ndarray, valid: np.ndarray, centre: np.ndarray, steps: np.ndarray,
                     starts: np.ndarray, gain: float = 0.5, iterations: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous goal-Jacobian descent of all starts.

    direction: (nx, ny, nyaw, 3) J^+ (z - z*) of each cell, in (m, m, rad). valid: (nx, ny, nyaw) free cells.
    centre: (3,) index of the goal cell; steps: (3,) grid steps; starts: (S, 3) offsets from the goal.
    Each iteration reads the direction at the pose's nearest cell and moves by -gain * direction, clipped to
    one grid step per axis. A pose whose nearest cell is off the grid or in collision stops there.
    Returns (final offsets (S, 3), status (S,) STATUS_RAN / STATUS_LEFT_GRID / STATUS_COLLISION).
    """
    shape = np.array(valid.shape)
    pose = np.array(starts, dtype=np.float64).reshape(-1, 3)
    status = np.full(len(pose), STATUS_RAN, dtype=np.int64)
    active = np.arange(len(pose))
    for iteration in range(iterations + 1):  # the last pass only checks where the final step landed
        cells = np.rint(pose[active] / steps).astype(np.int64) + centre  # (A, 3)
        inside = np.all((cells >= 0) & (cells < shape), axis=1)
        clipped = np.clip(cells, 0, shape - 1)
        free = inside & valid[clipped[:, 0], clipped[:, 1], clipped[:, 2]]
        status[active[~inside]] = STATUS_LEFT_GRID
        status[active[inside & ~free]] = STATUS_COLLISION
        active, clipped = active[free], clipped[free]
        if iteration == iterations or active.size == 0:
            break
        delta = np.clip(-gain * direction[clipped[:, 0], clipped[:, 1], clipped[:, 2]], -steps, steps)
        pose[active] += delta
        active = active[np.any(delta != 0.0, axis=1)]  # at rest where z = z*: nothing will change
    return pose, status


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of values, ties sharing their mean rank (as Spearman's coefficient needs)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_values) != 0) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    mean_rank = (starts + ends - 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long 1-D arrays (NaN when either is constant)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ConfigError(f"spearman needs two arrays of the same length >= 2, got {a.size} and {b.size}")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb / denom) if denom > 0 else math.nan


@dataclass
class LatentField:
    """One representation over one goal's grid."""

    distance: np.ndarray  # (nx, ny, nyaw) |z - z*|; +inf at cells in collision
    direction: np.ndarray  # (nx, ny, nyaw, 3) J^+ (z - z*), the Jacobian step before the gain; 0 in collision
    jacobian: np.ndarray  # (D, 3) at the goal, per (m, m, rad)


@dataclass
class DescentResult:
    """Both descents of one representation from one goal's starts."""

    greedy_final: np.ndarray  # (S, 3) final cell indices
    greedy_success: np.ndarray  # (S,) bool
    jacobian_final: np.ndarray  # (S, 3) final offsets (m, m, rad)
    jacobian_status: np.ndarray  # (S,) STATUS_*
    jacobian_success: np.ndarray  # (S,) bool
    spearman: float  # latent distance vs pose distance over the goal's free cells


@dataclass
class GoalResult:
    """Everything measured around one goal."""

    seed: int
    grid: PoseGrid
    starts: np.ndarray  # (S, 3) cell indices
    fields: dict[str, LatentField] = field(default_factory=dict)
    descents: dict[str, DescentResult] = field(default_factory=dict)


def encode_grid(world: Any, grid: PoseGrid, representations: Sequence[Representation], config: BasinConfig,
                on_progress: Callable[[int], None] | None = None) -> dict[str, LatentField]:
    """Observe the grid's free cells once (in chunks) and turn each representation's latents into a field."""
    sensors = sensors_of(representations)
    steps = config.steps
    # z* and J first (7 observations), so each chunk reduces to distances and Jacobian steps right away and
    # no representation's latents of the whole grid (12k-D for pixels) are ever held.
    key_cells = jacobian_cells(grid)
    if not grid.valid[tuple(key_cells.T)].all():
        raise ConfigError(f"the goal {grid.goal} or a cell next to it is in collision; sample goals with more "
                          "clearance")
    key_obs = observe(world, grid.poses(key_cells), sensors)
    goal_latent: dict[str, np.ndarray] = {}
    pinv: dict[str, np.ndarray] = {}
    fields: dict[str, LatentField] = {}
    for rep in representations:
        z_goal, jacobian = goal_jacobian(rep.encode(key_obs), steps)
        goal_latent[rep.name], pinv[rep.name] = z_goal, np.linalg.pinv(jacobian)  # (3, D)
        fields[rep.name] = LatentField(np.full(grid.shape, np.inf), np.zeros((*grid.shape, 3)), jacobian)
    cells = np.argwhere(grid.valid)  # (M, 3)
    for start in range(0, len(cells), config.chunk):
        chunk = cells[start:start + config.chunk]
        obs: Observations = observe(world, grid.poses(chunk), sensors)
        where = tuple(chunk.T)
        for rep in representations:
            error = rep.encode(obs) - goal_latent[rep.name]  # (C, D)
            fields[rep.name].distance[where] = np.linalg.norm(error, axis=1)
            fields[rep.name].direction[where] = error @ pinv[rep.name].T
        if on_progress is not None:
            on_progress(len(chunk))
    return fields


def descend(grid: PoseGrid, starts: np.ndarray, latent: LatentField, config: BasinConfig) -> DescentResult:
    """Greedy and goal-Jacobian descents from every start, their success, and the distance correlation."""
    greedy_final = greedy_descent(latent.distance, starts)
    jac_final, jac_status = jacobian_descent(latent.direction, grid.valid, grid.centre, config.steps,
                                             grid.offsets(starts), config.jacobian_gain, config.jacobian_iterations)
    free = grid.valid
    rho = spearman(latent.distance[free], pose_distance(grid.all_offsets()[free], config.yaw_weight))
    return DescentResult(
        greedy_final=greedy_final,
        greedy_success=within_tolerance(grid.offsets(greedy_final), config),
        jacobian_final=jac_final,
        jacobian_status=jac_status,
        jacobian_success=(jac_status == STATUS_RAN) & within_tolerance(jac_final, config),
        spearman=rho,
    )


def fit_representations(representations: Sequence[Representation], seeds: Sequence[int], samples_per_seed: int,
                        rng_seed: int = 0, on_progress: Callable[[int], None] | None = None) -> None:
    """Fit every representation that learns (PCA) on random free poses of training worlds `seeds`."""
    from vae_ros.sim.world import SimConfig, SimWorld

    sensors = sensors_of(representations)
    parts: list[Observations] = []
    for seed in seeds:
        with SimWorld(SimConfig(seed=int(seed))) as world:
            rng = np.random.default_rng([rng_seed, int(seed)])
            poses = sample_free_poses(world.objects, samples_per_seed, rng)
            parts.append(observe(world, poses, sensors))
        if on_progress is not None:
            on_progress(samples_per_seed)
    if not parts:
        raise ConfigError("fitting needs at least one training world seed")

    def join(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        return None if arrays[0] is None else np.concatenate(arrays)

    obs = Observations(images=join("images"), scans=join("scans"), poses=join("poses"),
                       scan_geometry=parts[0].scan_geometry)
    for rep in representations:
        rep.fit(obs)


def measure_basin(representations: Sequence[Representation], seeds: Sequence[int], goals_per_seed: int,
                  config: BasinConfig | None = None, progress: bool = True) -> list[GoalResult]:
    """Goals in each world seed, their grids observed once and encoded by every representation, both descents.

    Goals of a world come from np.random.default_rng(seed), so they do not depend on the other arguments.
    """
    from vae_ros.sim.world import SimConfig, SimWorld

    config = config if config is not None else BasinConfig()
    config.validate()
    if not representations:
        raise ConfigError("measure_basin needs at least one representation")
    names = [rep.name for rep in representations]
    if len(set(names)) != len(names):
        raise ConfigError(f"representation names must be unique, got {names}")
    if goals_per_seed < 1:
        raise ConfigError(f"goals per seed must be >= 1, got {goals_per_seed}")
    if not seeds:
        raise ConfigError("measure_basin needs at least one world seed")

    from tqdm import tqdm

    # Goals and grids first (building a world without rendering is cheap), so progress counts every pose.
    grids: dict[int, list[PoseGrid]] = {}
    for seed in dict.fromkeys(int(s) for s in seeds):
        with SimWorld(SimConfig(seed=seed)) as world:
            goals = sample_goals(world.objects, goals_per_seed, np.random.default_rng(seed), config)
            grids[seed] = [make_grid(goal, world.objects, config) for goal in goals]
    total = sum(int(grid.valid.sum()) for seed_grids in grids.values() for grid in seed_grids)
    results: list[GoalResult] = []
    with tqdm(total=total, unit="pose", desc="basin", disable=not progress, smoothing=0.1) as bar:
        for seed, seed_grids in grids.items():
            with SimWorld(SimConfig(seed=seed)) as world:
                for grid in seed_grids:
                    fields = encode_grid(world, grid, representations, config, on_progress=bar.update)
                    starts = start_cells(grid, config)
                    result = GoalResult(seed, grid, starts, fields)
                    for name, latent in fields.items():
                        result.descents[name] = descend(grid, starts, latent, config)
                    results.append(result)
    return results


def _rate(success: np.ndarray) -> float | None:
    return float(100.0 * success.mean()) if success.size else None


def summarise(results: Sequence[GoalResult], config: BasinConfig) -> dict[str, dict[str, Any]]:
    """Per representation: success rates (%) of both descents, overall, split by start yaw and per goal, how
    Jacobian descents stopped, the number of starts, and the Spearman correlation (mean over goals, per goal)."""
    if not results:
        return {}
    split = math.radians(config.yaw_split_deg) + _EPS
    summary: dict[str, dict[str, Any]] = {}
    for name in results[0].descents:
        greedy, jacobian, status, small_yaw, rhos = [], [], [], [], []
        for result in results:
            d = result.descents[name]
            greedy.append(d.greedy_success)
            jacobian.append(d.jacobian_success)
            status.append(d.jacobian_status)
            small_yaw.append(np.abs(result.grid.offsets(result.starts)[:, 2]) <= split)
            rhos.append(d.spearman)
        g, j, s = np.concatenate(greedy), np.concatenate(jacobian), np.concatenate(small_yaw)
        stopped = np.concatenate(status)

        def per_goal(rates: list[np.ndarray]) -> list[float | None]:
            return [None if r.size == 0 else round(100.0 * float(r.mean()), 1) for r in rates]
        finite = [r for r in rhos if math.isfinite(r)]
        summary[name] = {
            "starts": int(g.size),
            "greedy_pct": _rate(g),
            "jacobian_pct": _rate(j),
            "greedy_pct_small_yaw": _rate(g[s]),
            "greedy_pct_large_yaw": _rate(g[~s]),
            "jacobian_pct_small_yaw": _rate(j[s]),
            "jacobian_pct_large_yaw": _rate(j[~s]),
            "starts_small_yaw": int(s.sum()),
            # Why Jacobian descents failed besides ending too far: they walked off the grid or into an obstacle.
            "jacobian_left_grid_pct": _rate(stopped == STATUS_LEFT_GRID),
            "jacobian_collision_pct": _rate(stopped == STATUS_COLLISION),
            "greedy_pct_per_goal": per_goal(greedy),
            "jacobian_pct_per_goal": per_goal(jacobian),
            "spearman": float(np.mean(finite)) if finite else None,
            "spearman_per_goal": [None if not math.isfinite(r) else round(r, 4) for r in rhos],
            "latent_dim": int(results[0].fields[name].jacobian.shape[0]),
        }
    return summary


def report(results: Sequence[GoalResult], config: BasinConfig) -> dict[str, Any]:
    """JSON-ready record of a measurement: config, goals and per-representation summary."""
    return {
        "config": asdict(config),
        "goals": [{"seed": r.seed, "pose": [round(float(v), 4) for v in r.grid.goal],
                   "free_cells": int(r.grid.valid.sum()), "starts": int(len(r.starts))} for r in results],
        "representations": summarise(results, config),
    }


def format_table(summary: dict[str, dict[str, Any]], yaw_split_deg: float = 20.0) -> str:
    """A plain-text (Markdown) table of the summary, one row per representation."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}%"

    split = f"{yaw_split_deg:g}°"
    lines = [f"| representation | D | greedy | Jacobian | greedy ≤{split} / >{split} | Jacobian ≤{split} / >{split} "
             "| Spearman | starts |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in summary.items():
        rho = "-" if row["spearman"] is None else f"{row['spearman']:.2f}"
        lines.append(f"| {name} | {row['latent_dim']} | {pct(row['greedy_pct'])} | {pct(row['jacobian_pct'])} | "
                     f"{pct(row['greedy_pct_small_yaw'])} / {pct(row['greedy_pct_large_yaw'])} | "
                     f"{pct(row['jacobian_pct_small_yaw'])} / {pct(row['jacobian_pct_large_yaw'])} | "
                     f"{rho} | {row['starts']} |")
    return "\n".join(lines)
