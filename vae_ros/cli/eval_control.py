"""`vae-ros eval-control`: how well representations and controllers reach goals in the simulator.

    vae-ros eval-control --basin --representations pixels pca models/image_default models/scan_default \\
        raw_scan --seeds 0 1 --goals 4 --out eval/basin

`--basin` measures the basin of attraction of latent-distance descent (vae_ros.control.basin): a pose grid
around goals in each world seed is observed once, every representation encodes it, and greedy and
goal-Jacobian descents run from every start. Writes basin.json, basin_success.png, basin_distance.png and
basin_map_<representation>.png into --out and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vae_ros.cli.train import _positive_int, setup_logging

DEFAULT_REPRESENTATIONS = ["pixels", "pca", "models/image_default", "models/scan_default", "raw_scan"]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from err
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from err
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--basin", action="store_true",
                        help="measure the basin of attraction of latent-distance descent on a pose grid around "
                             "goals (greedy and goal-Jacobian success), for every representation")
    parser.add_argument("--representations", nargs="+", metavar="NAME", default=DEFAULT_REPRESENTATIONS,
                        help="pixels, pca, raw_scan, pose (the true pose: an oracle) or model directories "
                             f"(default: {' '.join(DEFAULT_REPRESENTATIONS)})")
    parser.add_argument("--seeds", nargs="+", type=_seed, default=[0], metavar="SEED",
                        help="world seeds to evaluate in (0)")
    parser.add_argument("--goals", type=_positive_int, default=4, metavar="N", help="goals per world seed (4)")
    parser.add_argument("--out", metavar="DIR", default="eval/control", help="folder for results (eval/control)")
    grid = parser.add_argument_group("basin grid")
    grid.add_argument("--extent", type=_positive_float, default=1.0, metavar="M",
                      help="grid half-width in x and y around each goal, m (1.0)")
    grid.add_argument("--step", type=_positive_float, default=0.1, metavar="M", help="grid step in x and y, m (0.1)")
    grid.add_argument("--yaw-extent", type=_positive_float, default=45.0, metavar="DEG",
                      help="grid half-width in yaw, degrees (45)")
    grid.add_argument("--yaw-step", type=_positive_float, default=5.0, metavar="DEG", help="yaw step, degrees (5)")
    grid.add_argument("--start-min", type=float, default=0.3, metavar="M", help="nearest start to the goal, m (0.3)")
    grid.add_argument("--start-max", type=_positive_float, default=1.0, metavar="M",
                      help="farthest start from the goal, m (1.0)")
    grid.add_argument("--goal-clearance", type=_positive_float, default=0.6, metavar="M",
                      help="goals keep this distance from walls and objects, m (0.6)")
    reps = parser.add_argument_group("representations")
    reps.add_argument("--pca-fit-seeds", nargs="+", type=_seed, default=[2, 3], metavar="SEED",
                      help="training worlds the PCA is fitted on; must differ from --seeds (2 3)")
    reps.add_argument("--pca-fit-samples", type=_positive_int, default=500, metavar="N",
                      help="random poses per PCA training world (500)")
    reps.add_argument("--pca-components", type=_positive_int, default=16, metavar="K", help="PCA components (16)")
    reps.add_argument("--backend", default="auto", help="inference backend of model directories (auto)")
    reps.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                      help="ONNX Runtime threads (default: up to 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.basin:
        return _run_basin(args)
    return _run_episodes(args)


def _run_episodes(args: argparse.Namespace) -> int:
    from vae_ros.core.errors import ConfigError

    raise ConfigError("closed-loop episodes: not implemented in this build; use --basin")


def _command(args: argparse.Namespace, seeds: list[int]) -> str:
    """The command line that repeats this measurement, every setting spelled out."""
    return (f"vae-ros eval-control --basin --representations {' '.join(args.representations)} "
            f"--seeds {' '.join(map(str, seeds))} --goals {args.goals} --extent {args.extent:g} --step {args.step:g} "
            f"--yaw-extent {args.yaw_extent:g} --yaw-step {args.yaw_step:g} --start-min {args.start_min:g} "
            f"--start-max {args.start_max:g} --goal-clearance {args.goal_clearance:g} "
            f"--pca-fit-seeds {' '.join(map(str, args.pca_fit_seeds))} --pca-fit-samples {args.pca_fit_samples} "
            f"--pca-components {args.pca_components} --out {args.out}")


def _run_basin(args: argparse.Namespace) -> int:
    from vae_ros.control.basin import BasinConfig, format_table, measure_basin, report, summarise
    from vae_ros.control.plots import file_stem, save_basin_map, save_distance_scatter, save_success_bars
    from vae_ros.control.representations import representation_from_name
    from vae_ros.core.errors import ConfigError

    setup_logging("eval-control")
    config = BasinConfig(extent=args.extent, step=args.step, yaw_extent_deg=args.yaw_extent,
                         yaw_step_deg=args.yaw_step, start_min=args.start_min, start_max=args.start_max,
                         goal_clearance=args.goal_clearance)
    config.validate()
    if len(set(args.representations)) != len(args.representations):
        raise ConfigError(f"--representations names one twice: {' '.join(args.representations)}")
    seeds = list(dict.fromkeys(args.seeds))
    representations = [representation_from_name(name, backend=args.backend, pca_components=args.pca_components,
                                                 threads=args.threads) for name in args.representations]
    names = [rep.name for rep in representations]
    if len(set(names)) != len(names):
        raise ConfigError(f"two representations share a name ({', '.join(names)}); model directories are named "
                          "after their folder")
    learners = [rep for rep in representations if rep.name.startswith("pca")]
    if learners:
        overlap = sorted(set(args.pca_fit_seeds) & set(seeds))
        if overlap:
            raise ConfigError(f"--pca-fit-seeds {overlap} are also evaluation --seeds; the PCA must be fitted "
                              "on other worlds than it is measured in")
        from vae_ros.control.basin import fit_representations

        print(f"fitting {', '.join(r.name for r in learners)} on {args.pca_fit_samples} poses of each of world "
              f"seeds {' '.join(map(str, args.pca_fit_seeds))}", file=sys.stderr)
        fit_representations(learners, args.pca_fit_seeds, args.pca_fit_samples)

    started = time.monotonic()
    results = measure_basin(representations, seeds, args.goals, config, progress=not args.quiet)
    elapsed = time.monotonic() - started

    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    record = report(results, config)
    record.update({
        "command": _command(args, seeds),
        "seeds": seeds, "goals_per_seed": args.goals, "representations_given": args.representations,
        "pca_fit_seeds": args.pca_fit_seeds if learners else [], "seconds": round(elapsed, 1),
    })
    summary = summarise(results, config)
    files = [out / "basin.json"]
    (out / "basin.json").write_text(json.dumps(record, indent=2) + "\n")
    files.append(save_success_bars(summary, config, out / "basin_success.png"))
    files.append(save_distance_scatter(results, config, out / "basin_distance.png"))
    for name in names:
        files.append(save_basin_map(results, name, config, out / f"basin_map_{file_stem(name)}.png"))

    starts = sum(len(r.starts) for r in results)
    print(f"basin of attraction: {len(results)} goals in world seeds {' '.join(map(str, seeds))}, {starts} starts "
          f"per representation, {elapsed:.0f} s")
    print(format_table(summary, config.yaw_split_deg))
    print("wrote " + ", ".join(str(f) for f in files))
    return 0
