"""The world model's CEM plan() with its candidates scored in NumPy, in torch on the CPU and in torch on CUDA:
`python bench/plan_device.py [--devices numpy,torch-rollouts,torch-cpu,cuda] [--rounds N] [--json PATH]`.

The packaged control model (models/control_default: its dynamics ensemble and pose head) and the planner as
world_model_node runs it (planner.differential_drive_config: 150 samples x 3 iterations over 30 model steps,
commands held 5 steps, the pose cost, the servo's sequence and the motion primitives competing in the first
iteration), with a believed goal and 90 LiDAR points round the robot (the collision cost), from latents drawn
round the dynamics' training mean. Variants, interleaved one call each per round (load drifts hit all alike):

  numpy            sequence_costs in NumPy, NumPy rollouts (world_model_node's default: plan_device cpu, backend
                   auto or onnxruntime)
  torch-rollouts   the same with the dynamics' torch rollouts on the CPU (plan_device cpu, backend torch/tensorrt)
  torch-cpu        plan_torch.TorchPlanCosts on the CPU (all of the scoring in torch; not a node setting: the
                   device path's own cost without a GPU)
  cuda             plan_torch.TorchPlanCosts on the GPU (plan_device cuda)

Each variant plans from the same latents with the same seed, so the plans must be the same: the table says so
(largest |plan difference| against numpy). Medians and p90 of plan() in ms, and each median's ratio to numpy's
in the same run (above 1: faster than numpy). Torch runs one thread on the CPU, as world_model_node.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS = ("numpy", "torch-rollouts", "torch-cpu", "cuda")


def _ring(radius: float = 0.9, points: int = 90) -> np.ndarray:
    angles = np.linspace(0.3, 2 * math.pi - 0.3, points)
    return (radius * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(np.float32)


def run(devices: tuple[str, ...] = VARIANTS, rounds: int = 60, warmup: int = 5) -> dict[str, Any]:
    """The figures as a dict; variants that cannot run here (cuda without a GPU) are listed under skipped."""
    import torch

    from vae_ros.control.runtime.control_model import control_model_dir, servo_head_dir
    from vae_ros.control.runtime.dynamics import load_dynamics_dir
    from vae_ros.control.runtime.plan_torch import TorchPlanCosts
    from vae_ros.control.runtime.planner import (
        differential_drive_config,
        motion_primitives,
        plan,
        servo_rollout,
    )
    from vae_ros.control.runtime.pose_head import PoseHeadNumpy
    from vae_ros.control.runtime.servo import ServoConfig

    torch.set_num_threads(1)
    model_dir = control_model_dir("")
    head = PoseHeadNumpy.load(servo_head_dir(model_dir), load_dynamics_dir(model_dir / "dynamics").latent_dim)
    tolerance = 0.2
    configs: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in devices:
        dynamics = load_dynamics_dir(model_dir / "dynamics")  # each its own: rollout_backend differs
        dynamics.rollout_backend = "torch" if name == "torch-rollouts" else "numpy"
        config = differential_drive_config(dynamics, head, tolerance, servo=ServoConfig(tolerance=tolerance))
        if name in ("torch-cpu", "cuda"):
            if name == "cuda" and not torch.cuda.is_available():
                skipped[name] = f"torch {torch.__version__} sees no CUDA device"
                continue
            config = replace(config, device_costs=TorchPlanCosts(dynamics, head, "cuda" if name == "cuda" else "cpu"))
        configs[name] = config
    reference = next(iter(configs.values()))
    dyn = reference.dynamics
    rng = np.random.default_rng(0)
    latents = (dyn.z_mean + 0.8 * dyn.z_std * rng.standard_normal((16, dyn.latent_dim))).astype(np.float32)
    goal, obstacles, belief = latents[-1], _ring(), np.array([1.2, 0.4, 0.5])
    times: dict[str, list[float]] = {name: [] for name in configs}
    worst = dict.fromkeys(configs, 0.0)
    for index in range(warmup + rounds):
        z = latents[index % (len(latents) - 1)]
        extra = np.concatenate([servo_rollout(reference, z, goal, (0.1, 0.0))[None], motion_primitives(reference)])
        plans = {}
        for name, config in configs.items():
            started = time.perf_counter()
            plans[name] = plan(config, z, goal, None, (0.1, 0.0), np.random.default_rng(index), obstacles, extra,
                               belief)[0]
            if index >= warmup:
                times[name].append((time.perf_counter() - started) * 1e3)
        for name in configs:
            worst[name] = max(worst[name], float(np.abs(plans[name] - plans[next(iter(configs))]).max()))
    base = statistics.median(times[next(iter(configs))])
    rows = {name: {"median_ms": statistics.median(t), "p90_ms": float(np.percentile(t, 90)),
                   "speedup_vs_first": base / statistics.median(t), "max_plan_difference": worst[name]}
            for name, t in times.items()}
    return {"planner": {"samples": reference.samples, "iterations": reference.iterations,
                        "horizon": reference.horizon, "action_repeat": reference.action_repeat,
                        "cost": reference.cost, "obstacle_points": int(len(obstacles))},
            "rounds": rounds, "baseline": next(iter(configs)), "rows": rows, "skipped": skipped,
            "cuda_device": torch.cuda.get_device_name(0) if "cuda" in configs else None}


def format_table(report: dict[str, Any]) -> str:
    p = report["planner"]
    lines = [f"plan(): {p['samples']} samples x {p['iterations']} iterations over {p['horizon']} steps (held "
             f"{p['action_repeat']}), {p['cost']} cost, {p['obstacle_points']} LiDAR points; medians of "
             f"{report['rounds']} interleaved rounds" + (f"; GPU {report['cuda_device']}" if report["cuda_device"] else ""),
             f"{'variant':<16}{'median ms':>11}{'p90 ms':>9}  {'vs ' + report['baseline']:>10}  max |plan diff|"]
    for name, row in report["rows"].items():
        lines.append(f"{name:<16}{row['median_ms']:>11.2f}{row['p90_ms']:>9.2f}  {row['speedup_vs_first']:>9.2f}x  "
                     f"{row['max_plan_difference']:.2g}")
    for name, why in report["skipped"].items():
        lines.append(f"{name:<16}skipped: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default=",".join(VARIANTS), metavar="A,B",
                        help=f"variants to time, the first the baseline (default {','.join(VARIANTS)})")
    parser.add_argument("--rounds", type=int, default=60, help="timed rounds (60)")
    parser.add_argument("--warmup", type=int, default=5, help="rounds before timing (5)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    devices = tuple(filter(None, args.devices.split(",")))
    unknown = [d for d in devices if d not in VARIANTS]
    if unknown or not devices:
        parser.error(f"--devices takes {', '.join(VARIANTS)}; got {args.devices!r}")
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    if devices[0] == "cuda":
        parser.error("--devices: the first variant is the baseline; put cuda after a CPU one")
    report = run(devices, args.rounds, args.warmup)
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
