"""`vae-ros eval-route`: teach-and-repeat episodes in the simulator, judged by ground truth.

    vae-ros eval-route --seeds 7919 4242 --routes 15 --lighting default dim --odom-error 1 --out eval/route

Per world seed, `--routes` random routes (5-15 m of straight legs and turns) are driven by a teacher on ground
truth while the robot records its latents and its drifting wheel odometry; each is taught as `vae-ros teach`
does, then repeated by the route follower (what route_follower_node runs) from a start displaced from the
route's, with fresh odometry, under each `--lighting` (camera methods; LiDAR does not see light), for every
method side by side on the same routes and starts (vae_ros.control.evaluation.routes). Writes route.json (with
--json also elsewhere), route_paths.png, route_success.png into --out and prints a table. The default seeds are
held out: no packaged model was trained on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vae_ros.apps.cli.common import positive_int, setup_logging

HELD_OUT_SEEDS = [7919, 4242]


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from err
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _odom_error(text: str) -> float:
    from vae_ros.sim.odometry import MAX_ODOM_ERROR

    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from err
    if not 0.0 <= value <= MAX_ODOM_ERROR:
        raise argparse.ArgumentTypeError(f"must be in 0..{MAX_ODOM_ERROR:g}, got {value}")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    from vae_ros.control.evaluation.routes import ALIASES, FUSED_METHODS, METHODS
    from vae_ros.sim.world import LIGHTING

    parser.add_argument("--seeds", nargs="+", type=_seed, default=HELD_OUT_SEEDS, metavar="SEED",
                        help=f"world seeds (default: the held-out {' '.join(map(str, HELD_OUT_SEEDS))})")
    parser.add_argument("--routes", type=positive_int, default=15, metavar="N", help="routes per world seed (15)")
    parser.add_argument("--modality", nargs="+", default=["all"], metavar="METHOD",
                        choices=list(METHODS) + list(FUSED_METHODS) + list(ALIASES),
                        help=f"methods to compare: {', '.join(METHODS)}; lidar/scan = control (the LiDAR control "
                             "latent with its pose head), camera = image (the camera latent), all (default); "
                             f"{', '.join(FUSED_METHODS)}: the fused camera + LiDAR model taught with both sensors, "
                             "repeated with both, the LiDAR cut or the camera cut (128 px frames: run them apart "
                             "from image and pixels)")
    parser.add_argument("--lighting", nargs="+", default=["default", "dim"], choices=list(LIGHTING), metavar="NAME",
                        help=f"repeat lightings ({', '.join(LIGHTING)}); routes are taught under default, so "
                             "default is the same lighting and the others are changed (default dim)")
    parser.add_argument("--odom-error", type=_odom_error, default=1.0, metavar="LEVEL",
                        help="wheel-odometry error level, 0 = ideal, 1 = typical (1)")
    parser.add_argument("--relocalise", type=int, default=20, metavar="N",
                        help="place-recognition queries per route and method, from random poses within 0.5 m (20)")
    parser.add_argument("--episode-seed", type=_seed, default=0, metavar="SEED", help="seed of routes and starts (0)")
    parser.add_argument("--model", metavar="DIR", default="", help="control model (default: control_default)")
    parser.add_argument("--image-model", metavar="DIR", default="", help="camera model (default: image_default)")
    parser.add_argument("--fused-model", metavar="DIR", default="",
                        help="fused camera + LiDAR model for the fused methods (default: fused_default)")
    parser.add_argument("--backend", default="auto", help="inference backend of the models (auto)")
    parser.add_argument("--out", metavar="DIR", default="eval/route", help="folder for results (eval/route)")
    parser.add_argument("--json", metavar="PATH", default="", help="also write the results as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from vae_ros.control.evaluation.route_plots import save_route_paths, save_route_success
    from vae_ros.control.evaluation.routes import build_methods, run_route_episodes, summary_table
    from vae_ros.core.errors import ConfigError

    setup_logging("eval-route")
    if args.relocalise < 0:
        raise ConfigError(f"--relocalise must be >= 0, got {args.relocalise}")
    seeds = list(dict.fromkeys(args.seeds))
    lightings = list(dict.fromkeys(args.lighting))
    for name in (args.model, args.image_model, args.fused_model):
        if name and not Path(name).expanduser().is_dir():
            raise ConfigError(f"model directory {name} does not exist")
    methods = build_methods(args.modality, args.model or None, args.image_model or None, args.backend,
                            fused_model=args.fused_model or None)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"vae-ros eval-route: {line}", file=sys.stderr, flush=True)

    result = run_route_episodes(seeds, args.routes, methods, lightings, args.odom_error, args.episode_seed,
                                args.relocalise, progress=progress)
    table = summary_table(result)
    report = {"command": " ".join(["vae-ros", "eval-route", *sys.argv[2:]]) if sys.argv[1:2] == ["eval-route"] else "",
              "seeds": seeds, "routes_per_seed": args.routes, "lightings": lightings, "odom_error": args.odom_error,
              "episode_seed": args.episode_seed, "time_s": time.perf_counter() - started, "summary": table,
              "repeats": result["repeats"], "relocalise": result["relocalise"], "routes": result["routes"]}
    text = json.dumps(report, indent=1)
    (out / "route.json").write_text(text)
    if args.json:
        Path(args.json).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).expanduser().write_text(text)
    title = (f"teach and repeat, seeds {' '.join(map(str, seeds))}, odom_error {args.odom_error:g}, "
             f"taught under default light")
    save_route_paths(result["routes"], result["repeats"], out / "route_paths.png", title)
    save_route_success(table, out / "route_success.png", title)
    _print_table(table)
    print(f"results: {out / 'route.json'}, plots: {out / 'route_paths.png'}, {out / 'route_success.png'}")
    return 0


def _print_table(table: dict[str, dict]) -> None:  # type: ignore[type-arg]
    print(f"{'method@lighting':24s} {'routes':>6s} {'success':>8s} {'collide':>7s} {'mean lat m':>10s} "
          f"{'max lat m':>9s} {'end m p50':>9s} {'reloc P':>8s} {'reloc R':>8s}")
    for name, row in table.items():
        reloc = row.get("relocalise") or {}
        precision, recall = reloc.get("precision"), reloc.get("recall")
        print(f"{name:24s} {row['episodes']:6d} {100 * row['success_rate']:7.1f}% {row['collisions']:7d} "
              f"{row['mean_path_error_m']:10.3f} {row['max_path_error_m']['max']:9.2f} "
              f"{row['final_position_error_m']['median']:9.3f} "
              f"{'-' if precision is None else f'{100 * precision:.1f}%':>8s} "
              f"{'-' if recall is None else f'{100 * recall:.1f}%':>8s}")
