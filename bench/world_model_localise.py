"""Where the world model believes a goal behind it is, and what that does closed loop (issue 21, section 2).

    python bench/world_model_localise.py offline --seeds 7919 4242 --episodes 24
    python bench/world_model_localise.py episodes --seed 7919 --episodes 15 --variants base turn turned_scan+turn

`offline`: at the hard starts of `vae-ros eval-control --hard` (the eval's own episode generator, --episode-seed
123), the goal pose each localiser believes (vae_ros.control.runtime.planner.look_around) against the truth (read
here only, by the judge): the imagined look-around, the goal's scan turned (`turned_goal`), the robot's own scan
turned in place (`turned_scan`), and unions of them. `episodes`: planner variants (VARIANTS) closed loop on the
same hard episodes, one after another per episode in this one process, with the belief's error at the start and
at the end; one JSON line per episode and variant. The packaged control model and its dynamics, scan safety on,
as `vae-ros eval-control --controller world_model --hard` runs them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import numpy as np

# Planner overrides of differential_drive_config compared in `episodes`.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {"stall_turn": False, "localiser": "imagined"},
    "turn": {"stall_turn": True, "localiser": "imagined"},
    "turned_scan": {"stall_turn": False, "localiser": "turned_scan"},
    "turned_scan+turn": {"stall_turn": True, "localiser": "turned_scan"},
    "turned_goal": {"stall_turn": False, "localiser": "turned_goal"},
    "turned_goal+turn": {"stall_turn": True, "localiser": "turned_goal"},
    "both+turn": {"stall_turn": True, "localiser": "both"},
}


def _truth(pose: tuple[float, float, float], goal: tuple[float, float, float]) -> np.ndarray:
    from vae_ros.sim.geometry import wrap_angle

    c, s = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = goal[0] - pose[0], goal[1] - pose[1]
    return np.array([c * dx + s * dy, -s * dx + c * dy, wrap_angle(goal[2] - pose[2])])


def _error(belief: Any, truth: np.ndarray) -> tuple[float, float]:
    from vae_ros.sim.geometry import wrap_angle

    return (round(math.hypot(belief[0] - truth[0], belief[1] - truth[1]), 3),
            round(math.degrees(abs(wrap_angle(float(belief[2]) - float(truth[2])))), 1))


def _setup() -> tuple[Any, Any]:
    import torch

    from vae_ros.control.runtime.control_model import ControlModel, control_model_dir
    from vae_ros.control.runtime.dynamics import load_dynamics_dir

    torch.set_num_threads(1)
    model_dir = control_model_dir("")
    return ControlModel(model_dir, "auto", threads=1), load_dynamics_dir(model_dir / "dynamics")


def offline(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vae_ros.control.evaluation.episodes import sample_hard_episodes
    from vae_ros.control.runtime import planner
    from vae_ros.sim.world import SimConfig, SimWorld

    model, dynamics = _setup()
    config = planner.differential_drive_config(dynamics, model.head, model.tolerance, localiser="both",
                                               goal_turner=model.goal_turner())
    rows = []
    for seed in args.seeds:
        with SimWorld(SimConfig(seed=seed, image_width=16, image_height=16)) as world:
            geo = world.scan_geometry
            for i, episode in enumerate(sample_hard_episodes(world, args.episodes,
                                                             np.random.default_rng([args.episode_seed, seed]))):
                world.set_pose(*episode.goal)
                z_goal = model.latent(world).astype(np.float32)
                world.set_pose(*episode.start)
                z = model.latent(world).astype(np.float32)
                here = model.turned_scan_latents(world.scan(), geo.angle_min, geo.angle_increment, geo.range_min,
                                                 geo.range_max, planner.goal_turn_angles(config))
                views = planner.turned_goal_views(config, z_goal)
                truth = _truth(episode.start, episode.goal)
                row: dict[str, Any] = {"seed": seed, "i": i, "distance": round(float(np.hypot(*truth[:2])), 2)}
                for name in ("imagined", "turned_goal", "both", "turned_scan"):
                    belief, support = planner.look_around(replace(config, localiser=name), z, z_goal, (0.0, 0.0),
                                                          views=views, here=here)
                    row[name] = [*_error(belief, truth), support]
                rows.append(row)
                print(json.dumps(row), flush=True)
    names = ("imagined", "turned_goal", "both", "turned_scan")
    for label, keep in (("all", lambda r: True), ("< 1.5 m", lambda r: r["distance"] < 1.5),
                        (">= 1.5 m", lambda r: r["distance"] >= 1.5)):
        chosen = [r for r in rows if keep(r)]
        if not chosen:
            continue
        print(f"{label}: {len(chosen)} starts", file=sys.stderr)
        for name in names:
            err = np.array([r[name][:2] for r in chosen])
            found = np.mean((err[:, 0] < 0.3) & (err[:, 1] < 30.0))
            print(f"  {name:12s} position error median {np.median(err[:, 0]):.2f} m, p90 "
                  f"{np.percentile(err[:, 0], 90):.2f} m; yaw median {np.median(err[:, 1]):.0f} deg; within 0.3 m "
                  f"and 30 deg: {found:.0%}", file=sys.stderr)
    return 0


def episodes(args: argparse.Namespace) -> int:
    from vae_ros.control.evaluation.episodes import (
        EpisodeConfig,
        WorldModelController,
        run_episode,
        sample_episodes,
        sample_hard_episodes,
    )
    from vae_ros.control.runtime import planner
    from vae_ros.control.runtime.safety import SafetyConfig
    from vae_ros.control.runtime.servo import ServoConfig
    from vae_ros.sim.world import SimConfig, SimWorld

    model, dynamics = _setup()
    servo = ServoConfig(tolerance=model.tolerance)

    class Logged(WorldModelController):
        """The eval's controller, keeping (belief, truth) at every step (the truth for the judge only)."""

        def __init__(self, config: Any, goal: tuple[float, float, float]) -> None:
            super().__init__(config, model=model)
            self.goal, self.log = goal, []

        def step(self, state: Any, z: np.ndarray, z_goal: np.ndarray, world: Any) -> Any:
            state, command = super().step(state, z, z_goal, world)
            pose = world.pose()
            self.log.append((state.belief, state.support, _truth((pose.x, pose.y, pose.yaw), self.goal)))
            return state, command

    sample = sample_episodes if args.servo_set else sample_hard_episodes
    with SimWorld(SimConfig(seed=args.seed, image_width=16, image_height=16)) as world:
        for i, episode in enumerate(sample(world, args.episodes, np.random.default_rng([args.episode_seed,
                                                                                          args.seed]))):
            if args.only and i not in args.only:
                continue
            for name in args.variants:
                overrides = dict(VARIANTS[name])
                if overrides["localiser"] in ("turned_goal", "both"):
                    overrides["goal_turner"] = model.goal_turner()
                config = planner.differential_drive_config(dynamics, model.head, model.tolerance, servo=servo,
                                                           **overrides)
                controller = Logged(config, episode.goal)
                started = time.perf_counter()
                result = run_episode(world, model, episode, servo, EpisodeConfig(), controller=controller,
                                     safety=SafetyConfig())
                first, last = controller.log[0], controller.log[-1]
                print(json.dumps({
                    "seed": args.seed, "i": i, "variant": name, "success": bool(result.success),
                    "status": result.status, "position_error": round(result.final_position_error, 3),
                    "yaw_error_deg": round(math.degrees(result.final_yaw_error), 1), "time_s": round(result.time_s, 1),
                    "path_m": round(result.path_length, 2), "collided": bool(result.collided),
                    "min_clearance": round(result.min_clearance, 3),
                    "belief_error_start": None if first[0] is None else _error(first[0], first[2]),
                    "belief_error_end": None if last[0] is None else _error(last[0], last[2]),
                    "support_end": last[1], "wall_s": round(time.perf_counter() - started, 1)}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    off = sub.add_parser("offline", help="localisers' beliefs at hard starts against the truth")
    off.add_argument("--seeds", type=int, nargs="+", default=[7919, 4242])
    off.add_argument("--episodes", type=int, default=24)
    off.add_argument("--episode-seed", type=int, default=123)
    ep = sub.add_parser("episodes", help="planner variants closed loop on the same episodes")
    ep.add_argument("--seed", type=int, required=True)
    ep.add_argument("--episodes", type=int, default=15)
    ep.add_argument("--episode-seed", type=int, default=123)
    ep.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["base", "turn"])
    ep.add_argument("--only", type=int, nargs="*", default=None, help="run only these episode indices")
    ep.add_argument("--servo-set", action="store_true", help="the servo's episodes instead of the hard ones")
    args = parser.parse_args(argv)
    return offline(args) if args.mode == "offline" else episodes(args)


if __name__ == "__main__":
    sys.exit(main())
