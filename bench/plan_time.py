"""Closed-loop planning time of the world model's MPC: `python bench/plan_time.py --episodes 10 --busy 1`.

Runs the hard episodes (vae_ros.control.evaluation.episodes.sample_hard_episodes: goal behind the robot, 1-2 m away,
every third path blocked) with the packaged control model and its dynamics, the planner configured as
world_model_node runs it (differential_drive_config, LiDAR collision cost), and times every control step
that ends with a plan (mode PLAN; the servo law's steps after the hand-over are not plans). The same
episodes run twice in this process: on a quiet machine (the baseline), then with `--busy` processes
spinning on the CPU beside it (a simulator and an encoder sharing a small computer). Reports p50 / p90 /
p99 / max per run, the share of plans over the 100 ms that 10 Hz leaves, and the ratio loaded / quiet.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/plan_time.py --episodes 10 --busy 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BUDGET_MS = 100.0  # re-planning at 10 Hz


def _spin() -> None:
    while True:
        pass


def _plan_times(episodes: int, seed: int) -> tuple[list[float], int]:
    """(ms of each step that planned, episodes reached) over the hard episodes of world `seed`."""
    from vae_ros.control.evaluation.episodes import (
        EpisodeConfig,
        WorldModelController,
        run_episode,
        sample_hard_episodes,
    )
    from vae_ros.control.runtime.control_model import ControlModel, control_model_dir
    from vae_ros.control.runtime.dynamics import load_dynamics_dir
    from vae_ros.control.runtime.planner import PLAN, differential_drive_config
    from vae_ros.control.runtime.servo import ServoConfig
    from vae_ros.sim.world import SimConfig, SimWorld

    model_dir = control_model_dir("")
    model = ControlModel(model_dir, "auto", "cpu")
    servo = ServoConfig(tolerance=model.tolerance)
    dynamics = load_dynamics_dir(model_dir / "dynamics")
    controller = WorldModelController(differential_drive_config(dynamics, model.head, model.tolerance, servo=servo),
                                      collision=True)
    times: list[float] = []
    step = controller.step

    def timed(state: Any, z: np.ndarray, z_goal: np.ndarray, world: Any) -> Any:
        started = time.perf_counter()
        out = step(state, z, z_goal, world)
        if out[0].mode == PLAN:
            times.append((time.perf_counter() - started) * 1e3)
        return out

    controller.step = timed  # type: ignore[method-assign]
    reached = 0
    with SimWorld(SimConfig(seed=seed, image_width=16, image_height=16)) as world:
        for episode in sample_hard_episodes(world, episodes, np.random.default_rng([0, seed])):
            reached += run_episode(world, model, episode, servo, EpisodeConfig(), keep_traces=False,
                                   controller=controller).success
    return times, reached


def _summary(times: list[float]) -> dict[str, float]:
    t = np.asarray(times)
    return {"plans": int(t.size), "p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
            "p99_ms": float(np.percentile(t, 99)), "max_ms": float(t.max()),
            "over_budget": float(np.mean(t > BUDGET_MS))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="hard episodes per run (10)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (0: never used for training)")
    parser.add_argument("--busy", type=int, default=1, help="processes spinning beside the loaded run (1)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.busy < 0:
        parser.error("--episodes must be >= 1 and --busy >= 0")

    import torch

    torch.set_num_threads(1)  # as world_model_node and eval-control run the planner
    runs: dict[str, Any] = {}
    quiet, reached = _plan_times(args.episodes, args.seed)
    runs["quiet"] = {**_summary(quiet), "reached": reached}
    print(f"quiet: {runs['quiet']}", file=sys.stderr, flush=True)
    if args.busy:
        spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
        for p in spinners:
            p.start()
        try:
            loaded, reached = _plan_times(args.episodes, args.seed)
        finally:
            for p in spinners:
                p.terminate()
                p.join()
        runs[f"busy_{args.busy}"] = {**_summary(loaded), "reached": reached}

    print(f"plan-step time, {args.episodes} hard episodes of world seed {args.seed} (budget {BUDGET_MS:.0f} ms = 10 Hz)")
    print("| run | plans | p50 ms | p90 ms | p99 ms | max ms | over budget | reached |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, s in runs.items():
        print(f"| {name} | {s['plans']} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | {s['p99_ms']:.1f} | "
              f"{s['max_ms']:.1f} | {s['over_budget']:.1%} | {s['reached']}/{args.episodes} |")
    if args.busy:
        loaded_run = runs[f"busy_{args.busy}"]
        print(f"loaded / quiet: p50 x{loaded_run['p50_ms'] / runs['quiet']['p50_ms']:.2f}, "
              f"p99 x{loaded_run['p99_ms'] / runs['quiet']['p99_ms']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
