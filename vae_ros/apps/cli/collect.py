"""`vae-ros collect`: drive the simulated robot with an exploration policy and record a rosbag2 (MCAP).

Runs the MuJoCo world in this process, without a ROS graph: faster than real time and reproducible from
the seed. Messages are the real ROS classes built exactly as sim_node builds them, serialised to CDR:
/camera/image_raw, /scan and/or /lidar/points, /odom, /clock (simulated time from 0) and /cmd_vel (the
policy's command at each frame). The bag plays with `ros2 bag play` (without --clock: it carries the
simulator's /clock) and trains with `vae-ros train --bag PATH --topic /camera/image_raw`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from vae_ros.core.errors import ConfigError

LIDAR_CHOICES = ("scan", "pointcloud", "both", "none")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="bag folder to create (must not exist)")
    parser.add_argument("--duration", type=float, required=True, help="simulated seconds to record")
    parser.add_argument("--seed", type=int, default=0, help="world seed: object layout and colours (default 0)")
    parser.add_argument("--policy-seed", type=int, default=None,
                        help="seed of the exploration policy's noise (default: --seed); vary it for more "
                             "trajectories in the same world")
    parser.add_argument("--rate", type=float, default=10.0, help="sensor frames per simulated second (default 10)")
    parser.add_argument("--image-width", type=int, default=128, help="camera width in pixels (default 128)")
    parser.add_argument("--image-height", type=int, default=128, help="camera height in pixels (default 128)")
    parser.add_argument("--no-camera", action="store_true", help="do not render or record the camera")
    parser.add_argument("--lidar", choices=LIDAR_CHOICES, default="scan",
                        help="LiDAR topics to record: scan (/scan), pointcloud (/lidar/points), both, none")
    parser.add_argument("--policy", choices=("explore", "cover", "drive"), default="explore",
                        help="how the robot moves: explore = smooth random walk that avoids obstacles (for "
                             "reconstruction and dynamics data; records cmd_vel); drive = random commands held "
                             "0.5-2.5 s within a planner's limits (0.3 m/s, 0.8 rad/s): turns in place, straight "
                             "runs and arcs, forwards and backwards, kept clear of obstacles (for a world model "
                             "that plans such moves; records cmd_vel); cover = placed at clustered "
                             "free poses, 50 within 1.3 m and +/-70 deg of each anchor (dense pose coverage for "
                             "control-fit training with --pose-topic odom; no cmd_vel, the robot is not driven)")
    parser.add_argument("--initial-pose", type=float, nargs=3, metavar=("X", "Y", "YAW"), default=(0.0, 0.0, 0.0),
                        help="start pose in the odom frame (m, m, rad)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage (default mcap)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_args(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.duration) and args.duration > 0):
        raise ConfigError(f"--duration must be a positive number of seconds, got {args.duration}")
    if not (math.isfinite(args.rate) and 0 < args.rate <= 100):
        raise ConfigError(f"--rate must be in (0, 100] Hz, got {args.rate}")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    _check_args(args)
    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} already exists; choose a new --out (bags are never overwritten)")

    from rclpy.serialization import serialize_message
    from tqdm import tqdm

    from vae_ros.ros import interface
    from vae_ros.ros import sim_messages as messages
    from vae_ros.ros.bagio import BagWriter, reliable_qos
    from vae_ros.sim.policy import CoverPolicy, DrivePolicy, DriveState, ExplorationPolicy, PolicyConfig
    from vae_ros.sim.world import SimConfig, SimWorld

    world = SimWorld(SimConfig(seed=args.seed, image_width=args.image_width, image_height=args.image_height,
                               initial_pose=tuple(args.initial_pose)))
    policy_seed = args.seed if args.policy_seed is None else args.policy_seed
    policy = ExplorationPolicy(PolicyConfig(), seed=policy_seed)
    cover = CoverPolicy(world.clearance, seed=policy_seed) if args.policy == "cover" else None
    state = policy.initial_state()
    drive = DrivePolicy(world.clearance, seed=policy_seed) if args.policy == "drive" else None
    drive_state = DriveState()
    dt = 1.0 / args.rate
    frames = max(1, int(round(args.duration * args.rate)))
    angles = world.scan_geometry.angles
    record_scan = args.lidar in ("scan", "both")
    record_cloud = args.lidar in ("pointcloud", "both")
    record_image = not args.no_camera
    sensor_qos = reliable_qos(depth=1)  # what sim_node offers (see sim_node.SENSOR_QOS)
    topics = [(interface.CLOCK_TOPIC, reliable_qos()), (interface.ODOM_TOPIC, reliable_qos())]
    if cover is None:
        topics.append((interface.CMD_TOPIC, reliable_qos()))
    if record_image:
        topics.append((interface.CAMERA_TOPIC, sensor_qos))
    if record_scan:
        topics.append((interface.SCAN_TOPIC, sensor_qos))
    if record_cloud:
        topics.append((interface.CLOUD_TOPIC, sensor_qos))

    started = time.perf_counter()
    bag = BagWriter(out, storage=args.storage)
    try:
        with bag, world, tqdm(total=frames, unit="frame", desc="collect", disable=args.quiet,
                              file=sys.stderr) as progress:
            for topic, qos in topics:
                bag.add_topic(topic, messages.MSGTYPES[topic], qos)
            bag.set_custom_data("vae_ros.collect", json.dumps({
                "seed": args.seed, "policy_seed": policy_seed, "rate": args.rate, "duration": args.duration, "policy": args.policy,
                "image_width": args.image_width, "image_height": args.image_height, "lidar": args.lidar,
                "camera": record_image, "initial_pose": list(args.initial_pose)}))
            for frame in range(frames):
                if cover is not None:
                    world.set_pose(*cover.pose(frame))
                stamp = messages.time_msg(world.time)
                stamp_ns = messages.time_ns(world.time)
                ranges = world.scan()  # (beams,); the policy always needs it
                bag.write(interface.CLOCK_TOPIC, stamp_ns, serialize_message(messages.clock_msg(stamp)))
                bag.write(interface.ODOM_TOPIC, stamp_ns, serialize_message(
                    messages.odometry_msg(world.pose(), world.velocity(), stamp)))
                if record_scan:
                    bag.write(interface.SCAN_TOPIC, stamp_ns, serialize_message(
                        messages.scan_msg(ranges, world.scan_geometry, stamp, dt)))
                if record_cloud:
                    cfg = world.config
                    bag.write(interface.CLOUD_TOPIC, stamp_ns, serialize_message(
                        messages.cloud_msg(world.pointcloud(), cfg.cloud_rings, cfg.cloud_columns, stamp)))
                if record_image:
                    bag.write(interface.CAMERA_TOPIC, stamp_ns, serialize_message(
                        messages.image_msg(world.render(), stamp)))
                if cover is not None:
                    world.step(0.0, 0.0, dt)  # time moves on; the robot rests where it was placed
                else:
                    if drive is not None:
                        pose = world.pose()
                        drive_state, (linear, angular) = drive.step(drive_state, (pose.x, pose.y, pose.yaw), dt)
                    else:
                        state, (linear, angular) = policy.step(state, ranges, angles, dt)
                    bag.write(interface.CMD_TOPIC, stamp_ns, serialize_message(messages.twist_msg(linear, angular)))
                    world.step(linear, angular, dt)
                progress.update(1)
    except KeyboardInterrupt:
        print(f"vae-ros collect: interrupted; {out} was closed with {sum(bag.counts.values())} messages",
              file=sys.stderr)
        raise
    elapsed = time.perf_counter() - started
    counts = ", ".join(f"{topic} {count}" for topic, count in bag.counts.items())
    print(f"wrote {out}: {frames / args.rate:.1f} s simulated in {elapsed:.1f} s ({counts})")
    return 0
