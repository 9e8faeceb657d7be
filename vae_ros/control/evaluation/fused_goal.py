"""A goal given as a camera image alone, for a fused camera + LiDAR model (issue 19), measured in closed loop.

The servo's episodes (vae_ros.control.evaluation.episodes.sample_episodes: starts 0.3-1.0 m from the goal and
turned at most 45 deg from it, a free straight path) in the held-out worlds, the live latent the fused latent
of both sensors. The goal is given ONLY as the camera image taken at the goal pose; how it becomes a goal
latent is the method (`GOAL_RULES`):

- `both`: the fused latent of both sensors at the goal (the goal taught on the spot: the upper bound);
- `camera`: the camera expert's posterior mean of the goal image (its joint latent from the camera alone);
- `bias`: the camera's latent of the goal image plus the camera expert's error where the robot stands when the
  goal arrives, `cam(goal image) + [both(now) - cam(now)]`, taken once (the expert's error is shared by nearby
  views, so the correction carries over to the goal);
- `relative`: the same correction taken again at every control step (the goal moves with the robot; at the
  goal pose it equals the live fused latent);
- `memory`: today's view memory (vae_ros.control.runtime.view_memory): the goal image is matched (NCC >=
  0.99) against the views the robot has seen; unmatched, the robot waits stopped;
- `align`: the goal pose found by aligning the goal image with the live image through the live scan's geometry
  (vae_ros.control.runtime.image_goal: the goal view drawn from the live view for candidate poses, the best
  match kept), searched widely at the start and again around the servo head's estimate every second on the way;
  the goal latent is the joint latent of the live scan moved to that pose (the LiDAR expert) and the goal image
  (the camera expert);
- `align+camera`: `align` whose wide search tells its best matches apart by the camera expert's posterior;
- `align+look`: what the nodes run (goal_align, the default): `align+camera` after looking around (the robot
  turns in place to +-LOOK_AROUND_DEG, a view at each of three headings, the best match wins; `look_plan`);
- `refine`: what the nodes do with `goal_align:=false`: `camera` until a view the robot sees matches the goal
  image (NCC >= 0.99), then that view's fused latent (a goal image of a view already seen: that view's at once).

The same episodes through the real nodes: vae_ros.apps.fused_goal_ros.

"The view overlaps the start's": every start of the servo's episodes faces within 45 deg of the goal's
heading (the camera sees 60 deg across, so the two views share at least 15 deg of bearing) and lies 0.3-1.0 m
from it. The controller never reads ground truth; the judge does (success: within 0.10 m and 5 deg).

`python -m vae_ros.control.evaluation.fused_goal --help`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError
from vae_ros.core.fused import fuse

GOAL_RULES = ("both", "camera", "bias", "relative", "memory", "refine", "align", "align+camera", "align+look")
# `align`: control steps between two local searches (1 s at 10 Hz: the nodes' goal_align_period); the searches'
# settings (ALIGN_WIDE, ALIGN_LOCAL, ALIGN_CAMERA_WEIGHT, ALIGN_ACCEPT_NCC) are vae_ros.control.runtime.image_goal's.
ALIGN_REFRESH_STEPS = 10


class ImageGoalServoModel:
    """A fused model as an episode's representation (episodes.ServoModel) whose goal comes from the goal image
    alone by `rule` (GOAL_RULES). `live_dir`: the fused model of the live latent; `camera_dir`: the fused model
    whose camera expert reads the goal image (default: the same)."""

    def __init__(self, live_dir: str | Path, rule: str, camera_dir: str | Path | None = None,
                 backend: str = "auto", threads: int | None = None) -> None:
        from vae_ros.control.evaluation.fused_eval import FusedServoModel
        from vae_ros.core.fused import FusedModel

        if rule not in GOAL_RULES:
            raise ConfigError(f"goal rule must be one of {', '.join(GOAL_RULES)}, got {rule!r}")
        self.rule = "align" if rule in ("align+camera", "align+look") else rule
        self.camera_prior = rule in ("align+camera", "align+look")
        self.look = rule == "align+look"
        self.live = FusedServoModel(live_dir, backend, threads=threads)
        self.live.goal_per_subset = False
        self.camera = (self.live.fused if camera_dir is None or Path(camera_dir) == Path(live_dir)
                       else FusedModel(camera_dir, backend, threads=threads, sensors=("camera",)))
        if not self.live.tolerance:
            raise ConfigError(f"{live_dir} has no calibrated tolerance (its LiDAR expert's model.json)")
        self.tolerance: float = self.live.tolerance
        self.reset()

    @property
    def latent_dim(self) -> int:
        return self.live.latent_dim

    def reset(self) -> None:
        """Before each episode: the next latent() is the goal's observation."""
        self._at_goal = True
        self._goal: np.ndarray | None = None
        self._goal_cam: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        self._cam_now: np.ndarray | None = None
        self._goal_view: np.ndarray | None = None
        self._finder: Any = None  # `align`: the goal photo's ImageGoalFinder (what the nodes run)
        self._steps = 0
        self._looked: list[Any] = []  # `align+look`: the wide searches of the views taken so far
        self.align_scores: list[float] = []
        self.goal_latent_error: float | None = None  # |goal - both(goal pose)| where the rule gives a goal at once

    def _cam(self, image_batch: np.ndarray) -> np.ndarray:
        mean, _ = self.camera.encode_sensor("camera", image_batch)
        return np.asarray(mean[0], dtype=np.float64)

    def latent(self, world: Any) -> np.ndarray:
        inputs = self.live.inputs(world, ("camera", "scan"))
        experts = {s: self.live.fused.encode_sensor(s, b) for s, b in inputs.items()}
        both = np.asarray(fuse(experts)[0][0], dtype=np.float64)
        if self._at_goal:  # the goal pose: only its camera image leaves here (both: the upper bound)
            self._at_goal = False
            self._both_goal = both
            self._goal_cam_posterior = self.camera.encode_sensor("camera", inputs["camera"])
            self._goal_cam = np.asarray(self._goal_cam_posterior[0][0], dtype=np.float64)
            if self.rule == "align":
                from vae_ros.control.runtime.image_goal import ImageGoalFinder

                fused = self.live.fused
                self._finder = ImageGoalFinder(world.render(), self.camera_geometry(world), self._goal_cam_posterior,
                                               lambda batch: fused.encode_sensor("scan", batch),
                                               fused.configs["scan"].scan_spec, camera_prior=self.camera_prior)
            if self.rule in ("memory", "refine"):
                from vae_ros.control.runtime.view_memory import view_descriptor

                self._goal_view = view_descriptor(world.render(), 32)
            self._goal = both if self.rule == "both" else self._goal_cam if self.rule in ("camera", "refine") \
                else None
            self._refined = False
            if self._goal is not None:
                self.goal_latent_error = float(np.linalg.norm(self._goal - both))
            return both
        if self.rule == "align":
            self._align(world, both)
        elif self.rule in ("bias", "relative"):
            cam_now = self._cam(inputs["camera"]) if self.camera is not self.live.fused else \
                np.asarray(experts["camera"][0][0], dtype=np.float64)
            if self.rule == "relative" or self._bias is None:
                self._bias = both - cam_now
                if self.rule == "bias":
                    self._goal = self._goal_cam + self._bias
                    self.goal_latent_error = float(np.linalg.norm(self._goal - self._both_goal))
            if self.rule == "relative":
                self._goal = self._goal_cam + self._bias
        elif (self.rule == "memory" and self._goal is None) or (self.rule == "refine" and not self._refined):
            from vae_ros.control.runtime.view_memory import ViewMemoryConfig, view_descriptor

            score = float(view_descriptor(world.render(), 32) @ self._goal_view)
            if score >= ViewMemoryConfig().min_score:
                self._goal = both  # the remembered view's latent (the view seen now)
                self._refined = True
        return both

    @staticmethod
    def camera_geometry(world: Any) -> Any:
        from vae_ros.control.runtime.image_goal import CameraGeometry
        from vae_ros.sim.world import CAMERA_FOVY_DEG, CAMERA_OFFSET, LIDAR_OFFSET

        return CameraGeometry(world.config.image_width, world.config.image_height, CAMERA_FOVY_DEG, CAMERA_OFFSET,
                              LIDAR_OFFSET[:2])

    def command_override(self) -> tuple[float, float] | None:
        """`align+look`: the command of this control step while the robot looks around (episodes.run_episode sends
        it instead of the servo's, through the scan safety layer); None once the goal is set."""
        if not self.look or self._goal is not None:
            return None
        return look_command(self._steps - 1)

    def _align(self, world: Any, both: np.ndarray) -> None:
        """`align`: search the goal pose (widely at first, then every ALIGN_REFRESH_STEPS around the head's
        estimate) and make the goal latent of the live scan moved there and the goal image: ImageGoalFinder, as
        latent_servo_node and world_model_node run it. `align+look`: the wide search on each of the views taken
        while looking around (LOOK_PLAN), the best one wins."""
        step, self._steps = self._steps, self._steps + 1
        if self._goal is not None and step % ALIGN_REFRESH_STEPS:
            return
        if self._goal is None and self.look and step not in LOOK_PLAN.captures:
            return  # turning, or stopping before the next view
        image, ranges, geo = world.render(), world.scan(), world.scan_geometry
        if self._goal is None and self.look:
            self._looked.append(self._finder.wide(image, ranges, geo))
            if len(self._looked) < len(LOOK_PLAN.captures):
                return
            from vae_ros.control.runtime.image_goal import best_aligned

            found = best_aligned(self._looked)
            self._steps = 1  # the refreshes count from here
        elif self._goal is None:
            found = self._finder.wide(image, ranges, geo)
        else:
            center = np.asarray(self.live.estimate(both, self._goal), dtype=np.float64)
            found = self._finder.local(image, ranges, geo, center)
            if found is None:
                return
        self.align_scores.append(found.score)
        self._goal = found.latent
        if len(self.align_scores) == 1:
            self.goal_latent_error = float(np.linalg.norm(self._goal - self._both_goal))

    def goal_latent(self, z_goal: np.ndarray) -> np.ndarray:
        """The goal the rule gives now (episodes.run_episode asks at every control step); with no goal (the view
        memory waiting for its view) the live latent's own value, so the servo sees zero error and stays."""
        return self._goal if self._goal is not None else self._waiting_goal(z_goal)

    def _waiting_goal(self, z_goal: np.ndarray) -> np.ndarray:
        raise _NoGoal

    def estimate(self, z: np.ndarray, z_goal: np.ndarray) -> np.ndarray:
        return self.live.estimate(z, z_goal)


@dataclass(frozen=True)
class LookPlan:
    """Looking around at the control rate: the angular velocity of each step and the steps whose view is taken
    (the first, then each after a turn and a short stop)."""

    turns: tuple[float, ...]
    captures: tuple[int, ...]


def look_plan(rate_hz: float = 10.0, settle_steps: int = 3) -> LookPlan:
    """Turn to +LOOK_AROUND_DEG, stop, take a view; turn to -LOOK_AROUND_DEG, stop, take a view (the first view is
    taken before turning)."""
    from vae_ros.control.runtime.image_goal import LOOK_AROUND_DEG, LOOK_TURN_RATE

    n = int(round(math.radians(LOOK_AROUND_DEG) / (LOOK_TURN_RATE / rate_hz)))
    turns = (LOOK_TURN_RATE,) * n + (0.0,) * settle_steps + (-LOOK_TURN_RATE,) * (2 * n) + (0.0,) * settle_steps
    return LookPlan(turns, (0, n + settle_steps, 3 * n + 2 * settle_steps))


LOOK_PLAN = look_plan()


def look_command(step: int) -> tuple[float, float]:
    """The command of control step `step` (0: the first after the goal) while looking around."""
    turns = LOOK_PLAN.turns
    return (0.0, turns[step]) if 0 <= step < len(turns) else (0.0, 0.0)


class _NoGoal(Exception):
    """The view memory found no view matching the goal image: the robot waits stopped (the episode fails)."""


def run_image_goal_episode(world: Any, model: ImageGoalServoModel, episode: Any, servo: Any, config: Any,
                           safety: Any) -> Any:
    """One episode with the goal from the image (episodes.run_episode); a view memory that never matches leaves
    the robot where it started (it waits stopped: judged there, as the node would stand)."""
    from vae_ros.control.evaluation.episodes import EpisodeResult, pose_error, run_episode
    from vae_ros.control.training.metric import SUCCESS_POSITION_M, SUCCESS_YAW_RAD

    model.reset()
    try:
        return run_episode(world, model, episode, servo, config, keep_traces=False, safety=safety)
    except _NoGoal:
        pos_err, yaw_err = pose_error(episode.start, episode.goal)
        return EpisodeResult(episode=episode, success=pos_err <= SUCCESS_POSITION_M and yaw_err <= SUCCESS_YAW_RAD,
                             converged=False, status="waiting for the goal's view", final_position_error=pos_err,
                             final_yaw_error=yaw_err, time_s=config.time_limit, path_length=0.0, path_ratio=0.0)


def views_overlap(episode: Any, half_fov: float = math.radians(30.0)) -> bool:
    """Whether the start's and the goal's camera views overlap: one of the two poses stands in the other's camera
    field of view (its bearing within the camera's half field of view, 30 deg, of the other's heading). Of the
    servo's episodes (headings within 45 deg of each other) about a third do."""
    from vae_ros.control.runtime.route import relative_pose

    for a, b in ((episode.start, episode.goal), (episode.goal, episode.start)):
        dx, dy, _ = relative_pose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
        if abs(math.atan2(dy, dx)) <= half_fov:
            return True
    return False


def sample_overlap_episodes(world: Any, count: int, rng: np.random.Generator) -> list[Any]:
    """`count` of the servo's episodes (episodes.sample_episodes) whose views overlap (views_overlap)."""
    from vae_ros.control.evaluation.episodes import sample_episodes

    out: list[Any] = []
    for _ in range(200 * count + 100):
        if len(out) == count:
            return out
        out += [e for e in sample_episodes(world, 1, rng) if views_overlap(e)]
    raise ConfigError(f"could not place {count} overlapping episodes in world seed {world.config.seed}")


def parse_method(text: str, default_model: Path) -> tuple[str, str, Path]:
    """`RULE` or `RULE@MODEL_DIR` -> (label, rule, the fused model whose camera expert reads the goal image)."""
    rule, _, model = text.partition("@")
    if rule not in GOAL_RULES:
        raise ConfigError(f"--methods: {rule!r} is not a goal rule ({', '.join(GOAL_RULES)})")
    return text, rule, Path(model).expanduser() if model else default_model


def measure(methods: Sequence[str], model_dir: Path, seeds: Sequence[int], episodes: int, episode_seed: int,
            time_limit: float = 40.0, threads: int | None = 1, progress: bool = True, overlap: bool = True
            ) -> dict[str, Any]:
    """Every method on the same episodes; {"methods": {label: summary}, "episodes": {label: [results]}}."""
    from tqdm import tqdm

    from vae_ros.control.evaluation.episodes import EpisodeConfig, sample_episodes, summarise
    from vae_ros.control.evaluation.fused_eval import IMAGE_SIZE
    from vae_ros.control.runtime.safety import SafetyConfig
    from vae_ros.control.runtime.servo import ServoConfig
    from vae_ros.sim.world import SimConfig, SimWorld

    parsed = [parse_method(m, model_dir) for m in methods]
    # The live latent of a method is its own model's (a camera expert of another model fuses with the same
    # LiDAR expert: the controllers' latent space is the LiDAR's).
    models = {label: ImageGoalServoModel(camera, rule, threads=threads) for label, rule, camera in parsed}
    config = EpisodeConfig(time_limit=time_limit)
    results: dict[str, list[Any]] = {label: [] for label, _, _ in parsed}
    goal_errors: dict[str, list[float]] = {label: [] for label, _, _ in parsed}
    with tqdm(total=len(seeds) * episodes * len(parsed), desc="episodes", unit="ep", disable=not progress) as bar:
        for seed in seeds:
            with SimWorld(SimConfig(seed=seed, image_width=IMAGE_SIZE, image_height=IMAGE_SIZE)) as world:
                sample = sample_overlap_episodes if overlap else sample_episodes
                sampled = sample(world, episodes, np.random.default_rng([episode_seed, seed]))
                for episode in sampled:
                    for label, model in models.items():
                        servo = ServoConfig(tolerance=model.tolerance)
                        result = run_image_goal_episode(world, model, episode, servo, config, SafetyConfig())
                        results[label].append(result)
                        if model.goal_latent_error is not None:
                            goal_errors[label].append(model.goal_latent_error)
                        bar.update(1)
    summary = {}
    for label, rs in results.items():
        s = summarise(rs)
        s.pop("step_ms", None)
        errs = goal_errors[label]
        s["goal_latent_error_median"] = float(np.median(errs)) if errs else None
        summary[label] = s
    return {"methods": summary, "episodes": {label: [r.to_dict() for r in rs] for label, rs in results.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m vae_ros.control.evaluation.fused_goal`: goal-from-image methods on the same servo episodes."""
    import argparse

    from vae_ros.resources import models_dir

    parser = argparse.ArgumentParser(description="a fused model's servo with the goal given as the goal pose's camera "
                                                 "image alone: goal rules compared on the same held-out episodes")
    parser.add_argument("--model", type=Path, default=models_dir() / "fused_default")
    parser.add_argument("--methods", nargs="+", default=["both", "camera", "bias", "relative", "memory"],
                        help=f"RULE or RULE@FUSED_MODEL_DIR, RULE one of {', '.join(GOAL_RULES)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7919, 4242])
    parser.add_argument("--episodes", type=int, default=25, help="episodes per world seed (25)")
    parser.add_argument("--episode-seed", type=int, default=123)
    parser.add_argument("--time-limit", type=float, default=40.0)
    parser.add_argument("--all-views", action="store_true",
                        help="the servo's episodes as they come (default: only those whose views overlap)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import sys

    record = measure(args.methods, args.model, args.seeds, args.episodes, args.episode_seed, args.time_limit,
                     progress=sys.stderr.isatty(), overlap=not args.all_views)
    print(f"{'method':40s} {'success':>8s} {'pos p50 cm':>10s} {'yaw p50 deg':>11s} {'goal err':>9s} {'coll':>5s}")
    for label, s in record["methods"].items():
        ge = s["goal_latent_error_median"]
        print(f"{label:40s} {s['success_rate']:8.1%} {100 * s['final_position_error_m']['median']:10.1f} "
              f"{s['final_yaw_error_deg']['median']:11.1f} {'-' if ge is None else f'{ge:.3f}':>9s} "
              f"{s['collisions']:5d}")
    if args.json is not None:
        save_record(args.json, record, "vae_ros.control.evaluation.fused_goal", argv)
    return 0


def save_record(path: Path, record: dict[str, Any], module: str, argv: Sequence[str] | None) -> None:
    """`record` as JSON at `path`, with the command that made it (`python -m module ARGS`)."""
    import json
    import sys

    record["command"] = f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
    path.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
