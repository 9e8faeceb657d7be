"""`vae-ros demo`: the main job — the simulated robot, the encoders and the decoder over real ROS 2."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of closed-loop driving (30)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for summary.json, PNGs, logs")
    parser.add_argument("--seed", type=int, default=0, help="world and policy seed (0)")
    parser.add_argument("--rate", type=float, default=10.0, help="simulator sensor rate in Hz (10)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"],
                        help="inference backend of the nodes (auto)")
    parser.add_argument("--startup-timeout", type=float, default=90.0, help="seconds to wait for the nodes (90)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vae_ros.demo import DemoConfig, format_summary, run_demo

    config = DemoConfig(duration=args.duration, out=args.out, seed=args.seed, rate=args.rate,
                        backend=args.backend, startup_timeout=args.startup_timeout, progress=not args.quiet)
    summary = run_demo(config)
    print("vae-ros demo: perception loop over ROS 2 with the packaged models")
    print(format_summary(summary))
    print(f"wrote {args.out}/summary.json, demo_trajectory.png, demo_reconstructions.png, logs/")
    if summary["image_latents"] == 0 or summary["scan_latents"] == 0 or summary["reconstructions"] == 0:
        print("vae-ros demo: error: the loop did not close (see the logs)")
        return 1
    return 0
