"""`vae-ros demo`: the main job — teach a goal, move the robot away, latent servoing brings it back (real ROS 2)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for summary.json, PNGs, logs")
    parser.add_argument("--seed", type=int, default=0,
                        help="world seed (0: sim_node's default world, never used to train the control model)")
    parser.add_argument("--goal", type=float, nargs=3, metavar=("X", "Y", "YAW"), default=(0.0, 0.0, 0.0),
                        help="goal pose in the odom frame: m, m, rad (0 0 0)")
    parser.add_argument("--offset", type=float, nargs=3, metavar=("DX", "DY", "DYAW"), default=(-0.6, -0.4, -0.4),
                        help="where the robot is moved to, in the goal's frame: m, m, rad (-0.6 -0.4 -0.4)")
    parser.add_argument("--timeout", type=float, default=40.0, help="simulated seconds for the servo (40)")
    parser.add_argument("--rate", type=float, default=10.0, help="simulator sensor rate in Hz (10)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"],
                        help="inference backend of the nodes (auto)")
    parser.add_argument("--startup-timeout", type=float, default=90.0, help="seconds to wait for the nodes (90)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from vae_ros.demo import DemoConfig, format_summary, run_demo

    config = DemoConfig(out=args.out, seed=args.seed, rate=args.rate, backend=args.backend,
                        goal=tuple(args.goal), offset=tuple(args.offset), timeout=args.timeout,
                        startup_timeout=args.startup_timeout, progress=not args.quiet)
    summary = run_demo(config)
    print("vae-ros demo: goal-reaching latent servoing over ROS 2 with the packaged models")
    print(format_summary(summary))
    print(f"wrote {args.out}/summary.json, demo_trajectory.png, demo_frames.png, logs/")
    return 0 if summary["success"] else 1
