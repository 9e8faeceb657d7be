"""Basin of attraction harness: the descents succeed on the true pose, fail on noise, respect collisions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_ros.control.evaluation.basin import (
    STATUS_COLLISION,
    STATUS_LEFT_GRID,
    STATUS_RAN,
    BasinConfig,
    PoseGrid,
    encode_grid,
    format_table,
    greedy_descent,
    jacobian_descent,
    make_grid,
    measure_basin,
    report,
    spearman,
    start_cells,
    summarise,
    within_tolerance,
)
from vae_ros.control.evaluation.representations import (
    Observations,
    PoseRepresentation,
    Representation,
    observe,
)
from vae_ros.core.errors import ConfigError
from vae_ros.sim.world import SimConfig, SimWorld

# A tiny grid: +-0.4 m at 0.1 m, +-10 deg at 5 deg (9 x 9 x 5 cells), starts from 0.2 m.
TINY = BasinConfig(extent=0.4, step=0.1, yaw_extent_deg=10.0, yaw_step_deg=5.0, start_min=0.2)


class NoiseRepresentation(Representation):
    """A deterministic function of the pose that changes completely from one grid cell to the next."""

    name = "noise"

    def __init__(self, dim: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self._weights = rng.normal(size=(3, dim)) * 1e4
        self._phase = rng.uniform(0, 2 * np.pi, size=dim)

    def encode(self, obs: Observations) -> np.ndarray:
        return np.sin(obs.require("poses") @ self._weights + self._phase)


class RecordingPose(PoseRepresentation):
    """The pose representation, remembering every pose it was asked to encode."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def encode(self, obs: Observations) -> np.ndarray:
        self.seen.append(obs.require("poses").copy())
        return super().encode(obs)


@pytest.fixture(scope="module")
def pose_and_noise() -> dict:
    results = measure_basin([PoseRepresentation(), NoiseRepresentation()], [0], 2, TINY, progress=False)
    return {"results": results, "summary": summarise(results, TINY)}


def test_greedy_and_jacobian_on_the_true_pose_reach_every_start(pose_and_noise: dict) -> None:
    row = pose_and_noise["summary"]["pose"]
    assert row["starts"] > 300  # 2 goals x ~ 30-50 positions x 5 yaws: the check ran on many starts
    assert row["greedy_pct"] == 100.0 and row["jacobian_pct"] == 100.0
    assert row["spearman"] > 0.999
    for result in pose_and_noise["results"]:
        descent = result.descents["pose"]
        assert (descent.jacobian_status == STATUS_RAN).all()
        # Every start really ended at (or next to) the goal, not merely "counted as success".
        assert np.all(np.abs(result.grid.offsets(descent.greedy_final)) < 1e-9)


def test_descents_on_noise_almost_never_reach_the_goal(pose_and_noise: dict) -> None:
    # The same starts as above: proves the success test can fail.
    row = pose_and_noise["summary"]["noise"]
    assert row["starts"] == pose_and_noise["summary"]["pose"]["starts"]
    assert row["greedy_pct"] < 5.0 and row["jacobian_pct"] < 10.0
    assert abs(row["spearman"]) < 0.15


def test_summary_table_and_report(pose_and_noise: dict) -> None:
    summary = pose_and_noise["summary"]
    table = format_table(summary)
    assert "| pose | 3 | 100% | 100% |" in table and "| noise | 8 |" in table
    record = report(pose_and_noise["results"], TINY)
    assert len(record["goals"]) == 2 and record["config"]["extent"] == 0.4
    assert record["representations"]["pose"]["starts"] == sum(g["starts"] for g in record["goals"])
    assert record["representations"]["pose"]["greedy_pct_per_goal"] == [100.0, 100.0]
    assert record["representations"]["pose"]["jacobian_left_grid_pct"] == 0.0


def _pose_field(grid: PoseGrid) -> tuple[np.ndarray, np.ndarray]:
    """Distance and Jacobian direction of the pose itself (J = I) on a grid."""
    offsets = grid.all_offsets()
    return np.linalg.norm(offsets, axis=-1), offsets.copy()


def _free_grid(config: BasinConfig) -> PoseGrid:
    return make_grid([0.0, 0.0, 0.3], [], config)


def test_jacobian_descent_on_the_pose_converges_from_the_grid_edge() -> None:
    config = BasinConfig(extent=1.0, step=0.1, yaw_extent_deg=45.0, yaw_step_deg=5.0)
    grid = _free_grid(config)
    _, direction = _pose_field(grid)
    starts = grid.offsets(start_cells(grid, config))
    final, status = jacobian_descent(direction, grid.valid, grid.centre, config.steps, starts,
                                     gain=0.5, iterations=60)
    assert (status == STATUS_RAN).all()
    assert within_tolerance(final, config).all()
    assert np.abs(final).max() < 0.06  # inside the goal cell, where z = z*: it came to rest there
    # Three iterations of at most one step cannot bring starts 0.5 m or more away within 0.1 m of the goal.
    far = starts[np.hypot(starts[:, 0], starts[:, 1]) >= 0.5 - 1e-9]
    final_short, _ = jacobian_descent(direction, grid.valid, grid.centre, config.steps, far, iterations=3)
    assert len(far) > 1000 and not within_tolerance(final_short, config).any()


def test_jacobian_descent_stops_off_the_grid_and_in_collision() -> None:
    grid = _free_grid(TINY)
    _, direction = _pose_field(grid)
    # A field pointing away from the goal walks every start off the grid.
    final, status = jacobian_descent(-direction, grid.valid, grid.centre, TINY.steps,
                                     grid.offsets(start_cells(grid, TINY)), iterations=60)
    assert (status == STATUS_LEFT_GRID).all()
    # A wall of collision cells at x = -0.1 m between the starts at x = -0.3 m and the goal.
    valid = grid.valid.copy()
    valid[grid.centre[0] - 1] = False
    start = np.array([[-0.3, 0.0, 0.0]])
    _, status = jacobian_descent(direction, valid, grid.centre, TINY.steps, start, iterations=60)
    assert status.tolist() == [STATUS_COLLISION]


def test_greedy_descent_stops_in_a_local_minimum_and_never_enters_blocked_cells() -> None:
    grid = _free_grid(TINY)
    distance, _ = _pose_field(grid)
    centre = grid.centre
    trap = centre + np.array([3, 0, 0])
    distance[tuple(trap)] = -1.0  # a deeper minimum than the goal: starts next to it fall in
    near_trap = trap + np.array([1, 1, 0])
    far = centre + np.array([-3, -3, 1])
    final = greedy_descent(distance, np.stack([near_trap, far]))
    assert final.tolist() == [trap.tolist(), centre.tolist()]
    # Blocked cells (+inf) are walls: with every cell of x index centre-1 blocked, a start at centre-3 stops short.
    blocked = np.linalg.norm(grid.all_offsets(), axis=-1)
    blocked[centre[0] - 1] = np.inf
    final = greedy_descent(blocked, (centre + np.array([-3, 0, 0]))[None])
    assert final[0, 0] == centre[0] - 2


def test_collision_exclusion_matches_the_simulator_and_nothing_in_collision_is_observed() -> None:
    with SimWorld(SimConfig(seed=0)) as world:
        box = next(o for o in world.objects if o.name == "red_box")
        # A goal beside the red box: part of its grid overlaps the box.
        goal = np.array([box.x - box.radius - 0.65, box.y, 0.0])
        config = BasinConfig(extent=0.6, step=0.1, yaw_extent_deg=5.0, yaw_step_deg=5.0, start_min=0.2)
        grid = make_grid(goal, world.objects, config)
        assert 0 < grid.valid.sum() < grid.valid.size
        index = np.argwhere(np.ones(grid.shape[:2], dtype=bool))
        for i, j in index:
            x, y = goal[0] + grid.x[i], goal[1] + grid.y[j]
            try:
                world.set_pose(x, y, 0.0)
                accepted = True
            except ConfigError:
                accepted = False
            assert accepted == bool(grid.valid[i, j, 0]), (x, y)
        with pytest.raises(ConfigError):
            blocked = np.argwhere(~grid.valid)[0]
            observe(world, grid.poses(blocked)[None], {"scan"})
        recorder = RecordingPose()
        fields = encode_grid(world, grid, [recorder], config)
        seen = np.concatenate(recorder.seen)
        assert len(seen) == 7 + grid.valid.sum()  # the Jacobian's 7 cells, then every free cell once
        assert np.isinf(fields["recording"].distance[~grid.valid]).all()
        starts = start_cells(grid, config)
        assert grid.valid[tuple(starts.T)].all()


def test_spearman_ranks_with_ties() -> None:
    x = np.array([1.0, 2.0, 2.0, 3.0, 10.0])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # Ties take their mean rank: ranks (0, 1.5, 1.5, 3, 4) vs (0, 1, 2, 3, 4).
    ra = np.array([0, 1.5, 1.5, 3, 4]) - 2
    rb = np.arange(5.0) - 2
    assert spearman(x, np.arange(5.0)) == pytest.approx(ra @ rb / math.sqrt((ra @ ra) * (rb @ rb)))
    assert math.isnan(spearman(np.ones(4), np.arange(4.0)))


@pytest.mark.parametrize("changes", [{"step": 0.0}, {"step": 2.0}, {"yaw_step_deg": 50.0},
                                     {"start_min": 1.5}, {"goal_clearance": 0.25}, {"jacobian_iterations": 0}])
def test_bad_configs_are_refused(changes: dict) -> None:
    config = BasinConfig(**changes)
    with pytest.raises(ConfigError):
        config.validate()


def test_bad_measurement_requests_are_refused() -> None:
    with pytest.raises(ConfigError, match="unique"):
        measure_basin([PoseRepresentation(), PoseRepresentation()], [0], 1, TINY, progress=False)
    with pytest.raises(ConfigError):
        measure_basin([PoseRepresentation()], [0], 0, TINY, progress=False)
