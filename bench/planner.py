"""Planning time of the world model's MPC (CEM) on this machine: `python bench/planner.py --dynamics DIR`.

For each (samples x iterations, horizon) setting it times `plan_step` over a stream of real latents from a
held-out bag, warm-started as in the node, and reports the distribution (p50 / p90 / p99 / max ms and the
re-planning rate it allows). Rollouts run in torch (what world_model_node uses with backend torch or
tensorrt); `--numpy` also times the NumPy rollouts of the same model (what the node uses with its default
backend auto, and with onnxruntime: vae_ros.control.runtime.dynamics.rollout_runtime).

    OPENBLAS_NUM_THREADS=1 python bench/planner.py --dynamics DIR --model models/scan_default --bag BAG --numpy
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from vae_ros.ros.kit.params import WorldModelParams  # a dataclass: no rclpy

_NODE = WorldModelParams()
SETTINGS = [  # (samples, iterations, elites, horizon)
    (1000, 10, 100, 12),  # PlaNet's reference
    (1000, 4, 100, 12),
    (400, 4, 40, 12),
    (200, 3, 20, 12),
    (_NODE.samples, _NODE.iterations, _NODE.elites, _NODE.horizon),  # world_model_node's default
    (400, 4, 40, 20),
]


def _latents(args: argparse.Namespace, dim: int, count: int) -> np.ndarray:
    if args.bag and args.model:
        from vae_ros.control.training.dynamics_data import read_sensor_bag
        from vae_ros.core.backends import create_backend

        backend = create_backend(args.model, "auto", "cpu")
        traj = read_sensor_bag(args.bag, args.topic, lambda b: backend.encode(b)[0], backend.config)
        return traj.z[: count + 50]
    return np.random.default_rng(0).normal(size=(count + 50, dim)).astype(np.float32)


def run_setting(config, latents: np.ndarray, goal: np.ndarray, steps: int, obstacles) -> list[float]:  # type: ignore[no-untyped-def]
    from vae_ros.control.runtime.planner import MpcState, plan_step

    state = MpcState()
    times = []
    for k in range(steps + 3):
        started = time.perf_counter()
        state, _ = plan_step(state, latents[k], goal, config, obstacles)
        if k >= 3:  # warm-up
            times.append((time.perf_counter() - started) * 1e3)
    return times


def summary(times: list[float]) -> dict[str, float]:
    t = np.asarray(times)
    return {"p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
            "p99_ms": float(np.percentile(t, 99)), "max_ms": float(t.max()),
            "rate_hz_at_p90": 1000.0 / float(np.percentile(t, 90))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dynamics", required=True, help="dynamics directory (vae-ros train-dynamics --out)")
    parser.add_argument("--model", help="VAE model directory, to encode --bag")
    parser.add_argument("--bag", help="held-out sensor bag: the latents to plan from (else random latents)")
    parser.add_argument("--topic", default="scan", help="sensor topic of --bag (scan)")
    parser.add_argument("--steps", type=int, default=60, help="plans timed per setting (60)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1, as world_model_node)")
    parser.add_argument("--numpy", action="store_true", help="also time NumPy rollouts (BLAS threads: set "
                                                             "OPENBLAS_NUM_THREADS before starting)")
    parser.add_argument("--collision", action="store_true", help="include the LiDAR collision cost (90 points)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from vae_ros.control.runtime.dynamics import load_dynamics_dir
    from vae_ros.control.runtime.planner import MpcConfig

    dynamics = load_dynamics_dir(args.dynamics)
    latents = _latents(args, dynamics.latent_dim, args.steps + 3)
    goal = latents[-1]
    obstacles = None
    if args.collision:
        angles = np.linspace(-math.pi, math.pi, 90, endpoint=False)
        obstacles = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32) * 1.2
    results = []
    variants = ["torch", "numpy"] if args.numpy else ["torch"]
    print(f"dynamics {args.dynamics}: D={dynamics.latent_dim}, {dynamics.members} members, hidden "
          f"{dynamics.config.hidden}; torch threads {args.threads}, OPENBLAS_NUM_THREADS "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; load average {os.getloadavg()[0]:.1f}; "
          f"{args.steps} plans per setting")
    print("| rollouts | samples x iterations | horizon | p50 ms | p90 ms | p99 ms | max ms | Hz at p90 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in variants:
        dynamics.rollout_backend = name
        for samples, iterations, elites, horizon in SETTINGS:
            config = MpcConfig(dynamics=dynamics, samples=samples, iterations=iterations, elites=elites,
                               horizon=horizon, tolerance=1e-6)
            s = summary(run_setting(config, latents, goal, args.steps, obstacles))
            results.append({"rollouts": name, "samples": samples, "iterations": iterations, "horizon": horizon,
                            "collision": args.collision, "load_average": os.getloadavg()[0], **s})
            print(f"| {name} | {samples} x {iterations} | {horizon} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | "
                  f"{s['p99_ms']:.1f} | {s['max_ms']:.1f} | {s['rate_hz_at_p90']:.1f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
