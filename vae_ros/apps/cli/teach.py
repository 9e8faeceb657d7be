"""`vae-ros teach`: a bag of stamped latents and odometry becomes a route that route_follower_node repeats.

    vae-ros teach --bag drive.mcap --out routes/hall          # one recording
    vae-ros teach --bag part1 --bag part2 --out routes/loop   # one drive recorded in several bags, in order

Keyframes are kept every --spacing metres or --spacing-deg degrees of odometry (vae_ros.control.runtime.route);
the route folder is a rosbag2 MCAP bag with route.json and route.png beside it (vae_ros.ros.route_file). The
latents must come from the model the follower will run: its weights digest goes into the route, and a bag whose
latent size differs from the model's is refused.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from vae_ros.apps.cli.common import setup_logging


def _spacing(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from err
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    from vae_ros.control.runtime.route import DEFAULT_SPACING_DEG, DEFAULT_SPACING_M
    from vae_ros.ros.interface import LATENT_STAMPED_TOPIC, ODOM_TOPIC

    parser.add_argument("--bag", metavar="PATH", action="append", required=True,
                        help="rosbag2 folder or .mcap/.db3 file with the latents and odometry; repeat it for a "
                             "drive recorded in several bags (taught in the given order and joined)")
    parser.add_argument("--out", metavar="ROUTE", required=True, help="route folder to write")
    parser.add_argument("--spacing", type=_spacing, default=DEFAULT_SPACING_M, metavar="M",
                        help=f"a keyframe every this many metres of odometry ({DEFAULT_SPACING_M:g})")
    parser.add_argument("--spacing-deg", type=_spacing, default=DEFAULT_SPACING_DEG, metavar="DEG",
                        help=f"... or this many degrees of turn ({DEFAULT_SPACING_DEG:g})")
    parser.add_argument("--latent-topic", default=LATENT_STAMPED_TOPIC, metavar="NAME",
                        help=f"stamped latents, sensor_msgs/Image 32FC1 ({LATENT_STAMPED_TOPIC}; when absent, the "
                             "one topic ending in it, e.g. /robot1/" + LATENT_STAMPED_TOPIC + ")")
    parser.add_argument("--odom-topic", default=ODOM_TOPIC, metavar="NAME",
                        help=f"nav_msgs/Odometry ({ODOM_TOPIC}; when absent, the one topic ending in it)")
    parser.add_argument("--model", metavar="DIR", default="",
                        help="model directory that made the latents (default: the packaged control model)")
    parser.add_argument("--force", action="store_true", help="replace an existing route at --out")


def _model(args: argparse.Namespace) -> tuple[Path, int, str]:
    """(model directory, its latent size, its weights digest)."""
    from vae_ros.core.backends import load_config, weights_digest
    from vae_ros.resources import default_model_dir

    model_dir = Path(args.model).expanduser() if args.model else default_model_dir("control")
    config = load_config(model_dir)
    return model_dir, int(config.latent_dim), weights_digest(model_dir)


def _teach_part(bag: str, args: argparse.Namespace, model: tuple[Path, int, str]) -> tuple[Any, Any]:
    """(the route taught from one bag, what the bag held)."""
    from vae_ros.control.runtime.route import teach_route
    from vae_ros.core.errors import DataError
    from vae_ros.ros.teach_bag import read_recording

    model_dir, latent_dim, digest = model
    rec = read_recording(bag, args.latent_topic, args.odom_topic)
    if rec.latent_dim != latent_dim:
        raise DataError(f"bag {bag} holds {rec.latent_dim}-D latents but the model {model_dir} makes {latent_dim}-D "
                        "ones: pass the model that made them with --model DIR")
    meta = {"model_sha256": digest, "model": str(model_dir), "latent_topic": rec.latent_topic,
            "odom_topic": rec.odom_topic, "sources": [str(Path(bag).resolve())]}
    try:
        route = teach_route(rec.stamps_ns, rec.latents, rec.logvars, rec.odom_stamps_ns, rec.odom_poses,
                            args.spacing, args.spacing_deg, meta=meta)
    except DataError as err:
        raise DataError(f"bag {bag}: {err}") from err
    return route, rec


def run(args: argparse.Namespace) -> int:
    from vae_ros.control.runtime.route import join_routes
    from vae_ros.ros.route_file import (
        ROUTE_LATENT_TOPIC,
        ROUTE_PNG,
        ROUTE_POSE_TOPIC,
        check_route_target,
        save_route,
    )

    setup_logging("teach")
    check_route_target(Path(args.out), args.force)  # before reading bags for minutes
    model = _model(args)
    parts = [_teach_part(bag, args, model) for bag in args.bag]
    route = join_routes([r for r, _ in parts]) if len(parts) > 1 else parts[0][0]
    route.meta["sources"] = [s for r, _ in parts for s in r.meta["sources"]]
    out = save_route(route, Path(args.out), force=args.force)
    nan = sum(rec.nan_latents for _, rec in parts)
    nan_poses = sum(rec.nan_poses for _, rec in parts)
    malformed = sum(rec.malformed for _, rec in parts)
    print(f"vae-ros teach: {len(route)} keyframes over {route.length:.2f} m (every {args.spacing:g} m / "
          f"{args.spacing_deg:g} deg) from {len(parts)} bag(s), {route.latent_dim}-D latents of {model[0]} "
          f"(weights sha256 {model[2][:12]}...)")
    print(f"  route: {out} (a rosbag2 MCAP bag of {ROUTE_LATENT_TOPIC} and {ROUTE_POSE_TOPIC}, route.json beside it)")
    print(f"  plot:  {out / ROUTE_PNG}")
    if nan or nan_poses or malformed:
        print(f"vae-ros teach: warning: skipped {nan} latents and {nan_poses} odometry poses with NaN or inf, {malformed} malformed "
              "messages", file=sys.stderr)
    return 0
