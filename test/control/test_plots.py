"""vae_ros.control.evaluation.plots: the closed-loop episode plots show every episode they draw, failures first."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vae_ros.control.evaluation.episodes import Episode, EpisodeResult
from vae_ros.control.evaluation.plots import (
    _square_limits,
    episodes_to_draw,
    save_episode_errors,
    save_episode_trajectories,
)


def _result(success: bool, start: tuple[float, float, float], goal: tuple[float, float, float] = (0.5, -0.5, 1.0),
            steps: int = 20) -> EpisodeResult:
    xs = np.linspace(start[0], goal[0] if success else start[0] - 0.4, steps)
    ys = np.linspace(start[1], goal[1] if success else start[1] + 0.3, steps)
    return EpisodeResult(Episode(0, start, goal), success, success, "converged" if success else "lost",
                         0.02 if success else 1.9, 0.01 if success else 2.0, 9.0, 1.0, 1.1,
                         trajectory=[(x, y, start[2]) for x, y in zip(xs, ys, strict=True)],
                         latent_error=list(np.geomspace(1.5, 0.05 if success else 0.5, steps)))


def test_failures_are_drawn_first_and_the_caption_says_how_many_of_how_many() -> None:
    results = [_result(i % 3 != 1, (0.0, 0.0, 0.0)) for i in range(30)]  # failures: 2, 5, 8, ... (10)
    shown, caption = episodes_to_draw(results, 24)
    numbers = [n for n, _ in shown]
    assert numbers[:10] == [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]  # 1-based, in episode order
    assert numbers[10:] == [1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19, 21]
    assert caption == "24 of 30 episodes drawn, failures first (10 of 10)"
    assert episodes_to_draw(results[:1], 24)[1] == "1 of 1 episodes drawn"
    assert episodes_to_draw(results, 4)[1] == "4 of 30 episodes drawn, failures first (4 of 10)"


def test_each_panel_holds_its_whole_episode_and_the_goal() -> None:
    # A hard start 2 m from the goal: the old fixed +-1.2 m axes left such a panel empty.
    x, y = np.array([2.0, 1.4, 1.9]), np.array([-0.5, -0.9, 0.3])
    (x0, x1), (y0, y1) = _square_limits(np.append(x, 0.0), np.append(y, 0.0))
    assert x0 < 0.0 and x1 > 2.0 and y0 < -0.9 and y1 > 0.3
    assert math.isclose(x1 - x0, y1 - y0)  # equal scales: the path's shape is kept
    (x0, x1), (y0, y1) = _square_limits(np.array([0.0, 0.01]), np.array([0.0, 0.0]))
    assert x1 - x0 >= 0.6 and y1 - y0 >= 0.6  # a short path is not blown up to fill the panel


def test_episode_plots_are_written(tmp_path: Path) -> None:
    results = [_result(True, (1.5, 0.8, 0.0)), _result(False, (-1.2, 1.6, 2.0))]
    assert save_episode_trajectories(results, tmp_path / "t.png", "test").stat().st_size > 10_000
    assert save_episode_errors(results, 0.1, tmp_path / "e.png", "test").stat().st_size > 10_000
