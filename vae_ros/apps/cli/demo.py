"""`vae-ros demo`: the main job — teach a goal, move the robot away, latent servoing (or the world model's MPC:
`--controller world_model`) brings it back (real ROS 2). `--route`: teach a route by driving it, repeat it from a
displaced start with route_follower_node (vae_ros.apps.route_demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

# Defaults per controller live in vae_ros.apps.demo.DEFAULTS (not imported here: `vae-ros --help` stays light).


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for summary.json, PNGs, logs")
    parser.add_argument("--seed", type=int, default=0,
                        help="world seed (0: sim_node's default world, never used to train the control model)")
    parser.add_argument("--route", action="store_true",
                        help="teach and repeat instead: drive a 3.3 m path with a turn while recording latents and "
                             "odometry, teach the route from the bag (vae-ros teach), repeat it with "
                             "route_follower_node from 0.15 m / 10 deg beside its start; judged by ground truth, "
                             "plotted in demo_route.png")
    parser.add_argument("--odom-error", type=float, default=None, metavar="LEVEL",
                        help="--route: sim_node's wheel-odometry error (0 ideal, 1 typical; default 1)")
    parser.add_argument("--controller", choices=("servo", "world_model"), default="servo",
                        help="servo = latent_servo_node; world_model = world_model_node's MPC on the packaged "
                             "dynamics, from a start the servo cannot handle, plotting its plans (servo)")
    parser.add_argument("--dynamics", metavar="DIR", default="",
                        help="--controller world_model: dynamics directory (default: the control model's packaged "
                             "dynamics)")
    parser.add_argument("--goal", type=float, nargs=3, metavar=("X", "Y", "YAW"), default=None,
                        help="goal pose in the odom frame: m, m, rad (servo: 0 0 0; world_model: -1.0 -0.39 -2.96)")
    parser.add_argument("--offset", type=float, nargs=3, metavar=("DX", "DY", "DYAW"), default=None,
                        help="where the robot is moved to, in the goal's frame: m, m, rad (servo: -0.6 -0.4 -0.4; "
                             "world_model: -0.70 -0.88 -1.79, behind the robot)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="simulated seconds for the controller (servo: 40; world_model: 60; --route: 60 for the "
                             "repeat)")
    parser.add_argument("--rate", type=float, default=10.0, help="simulator sensor rate in Hz (10)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"],
                        help="inference backend of the nodes (auto)")
    parser.add_argument("--startup-timeout", type=float, default=90.0, help="seconds to wait for the nodes (90)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    if args.route:
        return _run_route(args)
    if args.odom_error is not None:
        from vae_ros.core.errors import ConfigError

        raise ConfigError("--odom-error goes with --route (the goal-reaching demos run on ideal odometry)")
    from vae_ros.apps.demo import DemoConfig, format_summary, run_demo

    config = DemoConfig(out=args.out, seed=args.seed, rate=args.rate, backend=args.backend,
                        controller=args.controller, dynamics=args.dynamics,
                        goal=None if args.goal is None else tuple(args.goal),
                        offset=None if args.offset is None else tuple(args.offset), timeout=args.timeout,
                        startup_timeout=args.startup_timeout, progress=not args.quiet)
    summary = run_demo(config)
    world_model = args.controller == "world_model"
    print("vae-ros demo: goal-reaching " + ("with the world model's MPC" if world_model else "latent servoing")
          + " over ROS 2 with the packaged models")
    print(format_summary(summary))
    plans = " demo_plans.png," if world_model else ""
    print(f"wrote {args.out}/summary.json, demo_trajectory.png,{plans} demo_frames.png, logs/")
    return 0 if summary["success"] else 1


def _run_route(args: argparse.Namespace) -> int:
    from vae_ros.apps.route_demo import (
        PNG,
        REPEAT_TIMEOUT_S,
        RouteDemoConfig,
        format_route_summary,
        run_route_demo,
    )
    from vae_ros.core.errors import ConfigError

    given = [flag for flag, value in (("--controller", args.controller != "servo"), ("--dynamics", args.dynamics),
                                      ("--goal", args.goal is not None), ("--offset", args.offset is not None))
             if value]
    if given:
        raise ConfigError(f"{', '.join(given)} do not go with --route (it drives a taught route with "
                          "route_follower_node)")
    config = RouteDemoConfig(out=args.out, seed=args.seed, rate=args.rate, backend=args.backend,
                             odom_error=1.0 if args.odom_error is None else args.odom_error,
                             timeout=REPEAT_TIMEOUT_S if args.timeout is None else args.timeout,
                             startup_timeout=args.startup_timeout, progress=not args.quiet)
    summary = run_route_demo(config)
    print("vae-ros demo --route: teach a route by driving, repeat it from a displaced start over ROS 2 with the "
          "packaged control model")
    print(format_route_summary(summary))
    print(f"wrote {args.out}/summary.json, {PNG}, teach_bag/, route/, logs/")
    return 0 if summary["success"] else 1
