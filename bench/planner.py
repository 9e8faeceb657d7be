"""Planning time of the world model's MPC (CEM) on this machine: `python bench/planner.py --dynamics DIR`.

For each (samples x iterations, horizon) setting it times `plan_step` (NumPy rollouts, what
world_model_node runs) over a stream of real latents from a held-out bag, warm-started as in the node, and
reports the distribution (p50 / p90 / p99 / max ms and the re-planning rate it allows). `--torch` also
times the same CEM with the rollouts in torch (batched bmm), to compare the two on this machine's cores.

    python bench/planner.py --dynamics /tmp/dyn --model models/scan_default --bag /tmp/test_s0 --threads 2
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

SETTINGS = [  # (samples, iterations, elites, horizon)
    (1000, 10, 100, 12),  # PlaNet's reference
    (1000, 4, 100, 12),
    (400, 4, 40, 12),  # world_model_node's default
    (200, 3, 20, 12),
    (400, 4, 40, 20),
]


def _latents(args: argparse.Namespace, dim: int, count: int) -> np.ndarray:
    if args.bag and args.model:
        from vae_ros.control.dynamics_data import read_sensor_bag
        from vae_ros.core.backends import create_backend

        backend = create_backend(args.model, "auto", "cpu")
        traj = read_sensor_bag(args.bag, args.topic, lambda b: backend.encode(b)[0], backend.config)
        return traj.z[: count + 50]
    return np.random.default_rng(0).normal(size=(count + 50, dim)).astype(np.float32)


def _torch_costs(dynamics, threads: int):  # type: ignore[no-untyped-def]
    """sequence_costs with torch rollouts (same model, same cost without collision)."""
    import torch

    torch.set_num_threads(threads)
    w = [torch.from_numpy(wi) for wi, _ in dynamics.layers]
    b = [torch.from_numpy(bi) for _, bi in dynamics.layers]
    c = {k: torch.from_numpy(np.asarray(getattr(dynamics, k), np.float32)) for k in
         ("z_mean", "z_std", "a_scale", "dz_mean", "dz_std")}
    d = dynamics.latent_dim

    def costs(config, z, z_goal, actions, obstacles=None):  # type: ignore[no-untyped-def]
        del obstacles
        with torch.no_grad():
            n, h = actions.shape[:2]
            e = dynamics.members
            per = -(-n // e)
            acts = torch.from_numpy(np.resize(actions, (per * e, h, 2))).reshape(per, e, h, 2).transpose(0, 1)
            cur = torch.from_numpy(z.astype(np.float32)).expand(e, per, d)
            goal = torch.from_numpy(z_goal.astype(np.float32))
            preds = []
            for step in range(h):
                x = torch.cat([(cur - c["z_mean"]) / c["z_std"], acts[:, :, step] / c["a_scale"]], -1)
                for i in range(len(w)):
                    x = torch.baddbmm(b[i], x, w[i])
                    if i < len(w) - 1:
                        x = torch.nn.functional.silu(x)
                cur = cur + x[..., :d] * c["dz_std"] + c["dz_mean"]
                preds.append(cur)
            pred = torch.stack(preds, 2).transpose(0, 1).reshape(per * e, h, d)[:n]
            dist = ((pred - goal) ** 2).sum(-1)
            weights = torch.ones(h)
            weights[-1] = config.terminal_weight
            cost = (dist * weights).sum(1) / weights.sum()
            lim = torch.tensor([config.max_linear, config.max_angular])
            cost = cost + config.effort_weight * ((torch.from_numpy(actions) / lim) ** 2).sum((1, 2))
            return cost.numpy(), pred.numpy()

    return costs


def run_setting(config, latents: np.ndarray, goal: np.ndarray, steps: int, obstacles) -> list[float]:  # type: ignore[no-untyped-def]
    from vae_ros.control.planner import MpcState, plan_step

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
    parser.add_argument("--threads", type=int, default=2, help="BLAS / torch threads (2, the robot's cores)")
    parser.add_argument("--torch", action="store_true", help="also time torch rollouts")
    parser.add_argument("--collision", action="store_true", help="include the LiDAR collision cost (90 points)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    from vae_ros.control import planner
    from vae_ros.control.dynamics import load_dynamics_dir
    from vae_ros.control.planner import MpcConfig

    dynamics = load_dynamics_dir(args.dynamics)
    latents = _latents(args, dynamics.latent_dim, args.steps + 3)
    goal = latents[-1]
    obstacles = None
    if args.collision:
        angles = np.linspace(-math.pi, math.pi, 90, endpoint=False)
        obstacles = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32) * 1.2
    results = []
    variants = [("numpy", planner.sequence_costs)]
    if args.torch:
        variants.append(("torch", _torch_costs(dynamics, args.threads)))
    print(f"dynamics {args.dynamics}: D={dynamics.latent_dim}, {dynamics.members} members, hidden "
          f"{dynamics.config.hidden}; {args.threads} threads; {args.steps} plans per setting")
    print("| rollouts | samples x iterations | horizon | p50 ms | p90 ms | p99 ms | max ms | Hz at p90 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    original = planner.sequence_costs
    try:
        for name, costs in variants:
            planner.sequence_costs = costs  # plan() looks it up at call time
            for samples, iterations, elites, horizon in SETTINGS:
                config = MpcConfig(dynamics=dynamics, samples=samples, iterations=iterations, elites=elites,
                                   horizon=horizon, tolerance=1e-6)
                s = summary(run_setting(config, latents, goal, args.steps, obstacles))
                results.append({"rollouts": name, "samples": samples, "iterations": iterations, "horizon": horizon,
                                "collision": args.collision, **s})
                print(f"| {name} | {samples} x {iterations} | {horizon} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | "
                      f"{s['p99_ms']:.1f} | {s['max_ms']:.1f} | {s['rate_hz_at_p90']:.1f} |", flush=True)
    finally:
        planner.sequence_costs = original
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
