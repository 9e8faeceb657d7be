"""Closed-loop latent MPC episodes in the simulator, in-process: `python bench/world_model_episodes.py`.

The same episodes as the servo's evaluation (vae_ros.control.evaluation.episodes.sample_episodes: starts 0.3-1.0 m and
up to 45 deg from the goal, free straight path) or hard ones (--hard: goal behind the robot, 90-180 deg of
yaw, 1-2 m away), run with the world model's planner (vae_ros.control.runtime.planner.plan_step, what
world_model_node runs) on a LaserScan VAE's latents, judged by ground truth (0.10 m and 5 deg). A
first measurement until `vae-ros eval-control` runs the world model beside the servo.

    python bench/world_model_episodes.py --model models/scan_default --dynamics DIR --seed 0 --episodes 20
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="LaserScan VAE model directory")
    parser.add_argument("--dynamics", required=True, help="dynamics directory trained on that model's latents")
    parser.add_argument("--seed", type=int, default=0, help="world seed (0: never used for training here)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--hard", action="store_true", help="goal behind the robot (90-180 deg), 1-2 m away")
    parser.add_argument("--time-limit", type=float, default=30.0, help="simulated seconds per episode (30)")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--no-collision", action="store_true", help="no LiDAR collision cost")
    parser.add_argument("--json", metavar="PATH", help="write per-episode results as JSON")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)

    from vae_ros.control.evaluation.episodes import (
        SUCCESS_POSITION_M,
        SUCCESS_YAW_RAD,
        pose_error,
        sample_episodes,
    )
    from vae_ros.control.runtime.dynamics import load_dynamics_dir
    from vae_ros.control.runtime.planner import MpcConfig, MpcState, plan_step, scan_obstacles
    from vae_ros.core.backends import create_backend
    from vae_ros.core.preprocess import preprocess_scan
    from vae_ros.sim.world import SimConfig, SimWorld

    backend = create_backend(args.model, "auto", "cpu")
    dynamics = load_dynamics_dir(args.dynamics)
    config = MpcConfig(dynamics=dynamics, samples=args.samples, iterations=args.iterations,
                       elites=max(1, args.samples // 10), horizon=args.horizon, tolerance=1e-6)
    rng = np.random.default_rng(1000 + args.seed)
    results = []
    with SimWorld(SimConfig(seed=args.seed)) as world:
        geo = world.scan_geometry
        spec = backend.config.scan_spec

        def encode(scans: np.ndarray) -> np.ndarray:  # (K, beams) ranges -> (K, D), as encoder_node does
            batch = np.stack([preprocess_scan(r, geo.angle_min, geo.angle_increment, geo.range_min, geo.range_max,
                                              spec) for r in scans])
            return backend.encode(batch)[0]

        if args.hard:
            episodes = sample_episodes(world, args.episodes, rng, min_distance=1.0, max_distance=2.0,
                                       max_yaw=math.pi)
            episodes = [e for e in episodes if e.start_yaw_error >= math.radians(90)] or episodes
        else:
            episodes = sample_episodes(world, args.episodes, rng)
        for k, episode in enumerate(episodes):
            world.set_pose(*episode.goal)
            z_goal = encode(world.scan()[None])[0]
            world.set_pose(*episode.start)
            state, plan_ms, t = MpcState(), [], 0.0
            collided = False
            while t < args.time_limit:
                ranges = world.scan()
                z = encode(ranges[None])[0]
                obstacles = None if args.no_collision else scan_obstacles(ranges, geo.angle_min, geo.angle_increment)
                started = time.perf_counter()
                state, (v, w) = plan_step(state, z, z_goal, config, obstacles)
                plan_ms.append((time.perf_counter() - started) * 1e3)
                world.step(v, w, dynamics.dt)
                t += dynamics.dt
                pose = world.pose()
                collided = collided or world.clearance(pose.x, pose.y) < 0.0
            world.step(0.0, 0.0, 0.5)
            pose = world.pose()
            pos_err, yaw_err = pose_error((pose.x, pose.y, pose.yaw), episode.goal)
            ok = pos_err <= SUCCESS_POSITION_M and yaw_err <= SUCCESS_YAW_RAD
            results.append({"start": episode.start, "goal": episode.goal, "success": ok, "collided": collided,
                            "position_error_m": pos_err, "yaw_error_deg": math.degrees(yaw_err),
                            "plan_ms_p50": float(np.median(plan_ms)), "plan_ms_p90": float(np.percentile(plan_ms, 90))})
            print(f"episode {k + 1}/{len(episodes)}: {'success' if ok else 'failure'} {pos_err:.3f} m "
                  f"{math.degrees(yaw_err):.1f} deg (start {episode.start_distance:.2f} m, "
                  f"{math.degrees(episode.start_yaw_error):.0f} deg), plan p50 {np.median(plan_ms):.1f} ms",
                  flush=True)
    success = np.mean([r["success"] for r in results])
    pos = np.array([r["position_error_m"] for r in results])
    yaw = np.array([r["yaw_error_deg"] for r in results])
    print(f"success {success:.0%} of {len(results)} ({'hard' if args.hard else 'servo'} episodes, seed {args.seed}); "
          f"final error median {np.median(pos):.3f} m / {np.median(yaw):.1f} deg; collisions "
          f"{sum(r['collided'] for r in results)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
