"""A goal given as a camera photo alone, through the real nodes: `python -m vae_ros.apps.fused_goal_ros`.

The episodes of vae_ros.control.evaluation.fused_goal (held-out worlds, views overlapping), measured in process with
`align+look` (what the nodes run), then the first `--ros` of each world again through sim_node, the fused encoder_node
and latent_servo_node over DDS in simulated time (vae_ros.apps.servo_session), and judged side by side on the
simulator's ground truth. docs/FUSION.md, "A goal given as an image alone".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vae_ros.apps.servo_session import Pose, ServoSession, SessionConfig, episode_line, judged_episodes


def ros_episodes(record: dict[str, Any], model_dir: Path, count: int, time_limit: float, log_dir: Path,
                 compare: str | None = None) -> dict[str, Any]:
    """The first `count` episodes of each world of `record` (measure's) again through the real nodes: sim_node, the
    fused encoder_node and latent_servo_node (goal_align and its look-around, the defaults; view_memory:=0, so
    the goal's view is never remembered) over DDS in simulated time. Each goal is a photo alone: the camera frame
    at the goal pose, sent on servo/goal_image once the robot stands at the start. Judged on the simulator's
    ground truth (within 0.10 m and 5 deg), beside the in-process result of the same episode under `compare`."""
    label = compare if compare in record["episodes"] else next(iter(record["episodes"]))
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for row in record["episodes"][label]:
        by_seed.setdefault(int(row["episode"]["seed"]), []).append(row)

    def give_goal(session: ServoSession, result: dict[str, Any]) -> tuple[Pose, Pose]:
        goal, start = _pose(result["episode"]["goal"]), _pose(result["episode"]["start"])
        session.give_photo_goal(goal, start)
        return goal, start

    groups = [(SessionConfig(seed=seed, control_model=str(model_dir), log_dir=log_dir / f"seed{seed}",
                             goal_image=True, initial_pose=_pose(results[0]["episode"]["goal"]),
                             controller_params=("view_memory:=0",)), results[:count])
              for seed, results in by_seed.items()]
    rows = []
    for result, session, row in judged_episodes(groups, give_goal, time_limit):
        rows.append({**row, "goal_source": session.controller_values.get("goal_source", ""),
                     "in_process_success": bool(result["success"])})
        print(episode_line(len(rows), row, f"in process, {label}: {'success' if result['success'] else 'failure'}"),
              flush=True)
    ros = [r["success"] for r in rows]
    same = [r["success"] == r["in_process_success"] for r in rows]
    return {"episodes": rows, "compared_with": label, "success": sum(ros), "count": len(rows),
            "in_process_success_same_episodes": sum(r["in_process_success"] for r in rows), "agree": sum(same)}


def _pose(values: Sequence[float]) -> tuple[float, float, float]:
    x, y, yaw = (float(v) for v in values)
    return x, y, yaw


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys

    from vae_ros.control.evaluation.fused_goal import measure, save_record
    from vae_ros.resources import models_dir

    parser = argparse.ArgumentParser(description="photo goals of a fused model in process (align+look) and again "
                                                 "through the real nodes, on the same held-out episodes")
    parser.add_argument("--model", type=Path, default=models_dir() / "fused_default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7919, 4242])
    parser.add_argument("--episodes", type=int, default=15, help="episodes per world seed (15)")
    parser.add_argument("--episode-seed", type=int, default=2027)
    parser.add_argument("--ros", type=int, default=None, metavar="N",
                        help="episodes per world run through the nodes (default: all of --episodes)")
    parser.add_argument("--time-limit", type=float, default=40.0)
    parser.add_argument("--ros-logs", type=Path, default=Path("fused_goal_ros_logs"), help="the nodes' logs")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    count = args.episodes if args.ros is None else args.ros
    if args.episodes < 1 or count < 1:
        print("fused_goal_ros: --episodes and --ros must be >= 1", file=sys.stderr)
        return 2
    record = measure(["align+look"], args.model, args.seeds, args.episodes, args.episode_seed, args.time_limit,
                     progress=sys.stderr.isatty())
    record["ros"] = ros_episodes(record, args.model, count, args.time_limit, args.ros_logs, compare="align+look")
    ros = record["ros"]
    print(f"through ROS: {ros['success']}/{ros['count']} succeeded ({ros['compared_with']} in process on the same "
          f"episodes: {ros['in_process_success_same_episodes']}/{ros['count']}; outcomes agree in {ros['agree']})")
    if args.json is not None:
        save_record(args.json, record, "vae_ros.apps.fused_goal_ros", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
