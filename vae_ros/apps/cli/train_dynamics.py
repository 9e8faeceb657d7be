"""`vae-ros train-dynamics`: learn the latent world model z_{t+1} = f(z_t, a_t) from recorded bags.

    # latents recorded from a running encoder (vae/latent_stamped) with the executed commands
    vae-ros train-dynamics --bag run1 --bag run2 --test-bag run3 --out dynamics/mine
    # raw sensor bags (e.g. `vae-ros collect --policy explore --lidar scan --no-camera`) plus a VAE
    vae-ros train-dynamics --model models/scan_default --bag b2 --bag b3 --test-bag b0 --out dynamics/scan

Writes a dynamics directory: dynamics.json + weights.safetensors (+ dynamics.onnx), evaluation.json and
evaluation.md (open-loop error at 0.1-2 s against the no-change, constant-velocity and linear baselines,
per dimension and in pose terms where the bags hold odometry) and PNG plots. world_model_node loads it
through its `dynamics` parameter. See vae_ros/control/dynamics.py for the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vae_ros.apps.cli.common import add_speed_arguments, int_list, positive_int
from vae_ros.control.runtime.dynamics import DYNAMICS_FILE, ONNX_FILE
from vae_ros.core.errors import ConfigError
from vae_ros.core.model_dir import WEIGHTS_FILE
from vae_ros.ros.interface import (
    CAMERA_TOPIC,
    CLOUD_TOPIC,
    CMD_TOPIC,
    LATENT_STAMPED_TOPIC,
    ODOM_TOPIC,
    SCAN_TOPIC,
)

# The sensor topic each modality is read from when --model is given without --topic.
DEFAULT_SENSOR_TOPIC = {"scan": SCAN_TOPIC, "image": CAMERA_TOPIC, "pointcloud": CLOUD_TOPIC}
ARTIFACTS = (DYNAMICS_FILE, WEIGHTS_FILE, ONNX_FILE, "evaluation.json", "evaluation.md",
             "error_vs_horizon.png", "r2_per_dim.png", "example_rollout.png", "training_curve.png")


def _float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated seconds, got {text!r}") from err
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("expected positive numbers of seconds")
    return values


def register(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--bag", metavar="PATH", action="append", required=True,
                      help="training bag (folder, .mcap or .db3); repeat for several recordings")
    data.add_argument("--test-bag", metavar="PATH", action="append", default=[],
                      help="held-out bag for the evaluation (repeatable); none: the last 10%% of each "
                           "training bag, which is then not trained on")
    data.add_argument("--topic", metavar="NAME",
                      help=f"latent topic ({LATENT_STAMPED_TOPIC}, sensor_msgs/Image 32FC1), or with --model the "
                           f"sensor topic to encode (default: {SCAN_TOPIC}, {CAMERA_TOPIC} or {CLOUD_TOPIC})")
    data.add_argument("--cmd-topic", metavar="NAME", default=CMD_TOPIC,
                      help=f"geometry_msgs/Twist commands ({CMD_TOPIC})")
    data.add_argument("--odom-topic", metavar="NAME", default=ODOM_TOPIC,
                      help=f"nav_msgs/Odometry for the pose-terms evaluation ({ODOM_TOPIC}; '' for none)")
    data.add_argument("--cmd-timeout", type=float, default=0.5, metavar="S",
                      help="seconds a command stays in force without a newer one (0.5, sim_node's)")
    data.add_argument("--model", metavar="DIR",
                      help="VAE model directory: the bags hold raw sensor data, encoded here")
    data.add_argument("--backend", default="auto", help="inference backend for --model (auto)")
    parser.add_argument("--out", metavar="DIR", required=True, help="dynamics directory to write")
    parser.add_argument("--force", action="store_true", help="overwrite a previous dynamics model in --out")
    model = parser.add_argument_group("model and optimisation")
    model.add_argument("--members", type=positive_int, default=5, help="ensemble members (5)")
    model.add_argument("--hidden", type=int_list, default=[64, 64], metavar="H1,H2,..",
                       help="hidden layer sizes (64,64: as accurate as 128,128 on the scan latent and 3.6x cheaper "
                            "to plan with)")
    model.add_argument("--steps", type=positive_int, default=8000, help="optimisation steps (8000)")
    model.add_argument("--batch-size", type=positive_int, default=256, help="batch size per member (256)")
    model.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate, cosine-decayed (2e-3)")
    model.add_argument("--seed", type=int, default=0, help="random seed (0)")
    model.add_argument("--device", default="cpu", help="cpu or cuda[:N] (cpu)")
    add_speed_arguments(model, conv=False)
    model.add_argument("--threads", type=positive_int, default=1,
                       help="CPU threads for torch (1: the batches are small, and more threads only contend)")
    model.add_argument("--horizons", type=_float_list, default=[0.1, 0.2, 0.5, 1.0, 2.0], metavar="S1,S2,..",
                       help="evaluation horizons in seconds (0.1,0.2,0.5,1,2)")
    model.add_argument("--no-onnx", action="store_true", help=f"do not export {ONNX_FILE}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ConfigError(f"--out {out} is not empty; pass --force to overwrite its dynamics model")
    for name in ARTIFACTS:
        (out / name).unlink(missing_ok=True)


def _reader(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(bag path -> Trajectory, latent model description) for the chosen data source."""
    from tqdm import tqdm

    from vae_ros.control.training.dynamics_data import bag_message_count, read_latent_bag, read_sensor_bag

    odom = args.odom_topic or None
    if not args.model:
        topic = args.topic or LATENT_STAMPED_TOPIC

        def read_latents(path: str) -> Any:
            return read_latent_bag(path, topic, args.cmd_topic, odom, cmd_timeout=args.cmd_timeout)

        return read_latents, {"source": "latent bag", "topic": topic}

    from vae_ros.core.backends import create_backend, weights_digest

    model_dir = Path(args.model).expanduser()
    backend = create_backend(model_dir, args.backend, "cpu")
    config = backend.config
    topic = args.topic or DEFAULT_SENSOR_TOPIC[config.modality]

    def encode(batch: Any) -> Any:
        return backend.encode(batch)[0]

    def read_sensor(path: str) -> Any:
        total = bag_message_count(path, topic)
        with tqdm(total=total or None, unit="frame", desc=f"encode {Path(path).name}", disable=args.quiet,
                  file=sys.stderr) as bar:
            return read_sensor_bag(path, topic, encode, config, args.cmd_topic, odom, args.cmd_timeout,
                                   progress=bar.update)

    info = {"source": "sensor bag", "topic": topic, "path": str(model_dir.resolve()), "modality": config.modality,
            "latent_dim": config.latent_dim, "weights_sha256": weights_digest(model_dir)}
    return read_sensor, info


def run(args: argparse.Namespace) -> int:
    from vae_ros.apps.cli.common import setup_logging
    from vae_ros.core.distributed import from_env, process_group

    dist = from_env()  # under torchrun: this process's rank; otherwise one process
    setup_logging("train-dynamics", dist.rank)
    if args.cmd_timeout < 0:
        raise ConfigError(f"--cmd-timeout must be >= 0, got {args.cmd_timeout}")
    with process_group(dist, args.device):
        return _run(args, dist)


def _run(args: argparse.Namespace, dist: Any) -> int:
    """Every process reads the bags and trains on its share; rank 0 alone writes --out and reports."""
    import numpy as np

    out = Path(args.out)
    if dist.is_main:
        _prepare_out(out, args.force)
    import torch
    from tqdm import tqdm

    from vae_ros.control.evaluation.dynamics_eval import evaluate, format_table, save_plots
    from vae_ros.control.runtime.dynamics import LatentDynamics, save_dynamics_dir
    from vae_ros.control.training.dynamics import DynamicsTrainConfig, export_onnx, train_dynamics
    from vae_ros.control.training.dynamics_data import Trajectory
    from vae_ros.core.train import select_device

    torch.set_num_threads(args.threads)
    read, latent_info = _reader(args)
    train = [read(path) for path in args.bag]
    test = [read(path) for path in args.test_bag]
    if not test:  # hold out the tail of each training bag
        split: list[Trajectory] = []
        for traj in train:
            cut = int(len(traj) * 0.9)
            if cut < 2 or len(traj) - cut < 3:
                raise ConfigError(f"{traj.name} is too short to hold out a tail for the evaluation: give --test-bag")
            test.append(Trajectory(traj.name + " (last 10%)", traj.t[cut:], traj.z[cut:], traj.actions[cut:],
                                   None if traj.poses is None else traj.poses[cut:]))
            split.append(Trajectory(traj.name, traj.t[:cut], traj.z[:cut], traj.actions[:cut - 1],
                                    None if traj.poses is None else traj.poses[:cut]))
        train = split
    dims = {t.latent_dim for t in train + test}
    if len(dims) != 1:
        raise ConfigError(f"the bags hold latents of different sizes: {sorted(dims)}")
    frames = sum(len(t) for t in train)
    if dist.is_main:
        print(f"vae-ros train-dynamics: {len(train)} training trajectories ({frames} latents, D = {dims.pop()}), "
              f"{len(test)} held out" + (f", {dist.world_size} processes" if dist.enabled else ""), file=sys.stderr)

    config = DynamicsTrainConfig(members=args.members, hidden=tuple(args.hidden), steps=args.steps,
                                 batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 device=str(select_device(dist.device_name(args.device))), precision=args.precision)
    with tqdm(total=args.steps, unit="step", desc="train", disable=args.quiet or not dist.is_main,
              file=sys.stderr) as bar:
        def progress(step: int, record: dict[str, float]) -> None:
            bar.update(step - bar.n)
            bar.set_postfix(val_nll=f"{record['val_nll']:.3f}")

        dyn_config, weights, history = train_dynamics(train, config, progress, dist)
    if not dist.is_main:
        return 0
    dyn_config.latent_model = latent_info
    dynamics = LatentDynamics(dyn_config, weights)
    result = evaluate(dynamics, test, train, horizons_s=args.horizons)
    dyn_config.evaluation = {k: v for k, v in result.items() if k not in ("example",)}
    dyn_config.training["bags"] = [str(Path(p).resolve()) for p in args.bag]
    dyn_config.training["test_bags"] = [str(Path(p).resolve()) for p in args.test_bag]
    save_dynamics_dir(out, dyn_config, weights)
    if not args.no_onnx:
        try:
            export_onnx(dynamics, out / ONNX_FILE)
        except Exception as err:  # noqa: BLE001 - an optional export must not lose the trained model
            print(f"vae-ros train-dynamics: warning: ONNX export skipped: {err}", file=sys.stderr)
    (out / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    table = format_table(result)
    (out / "evaluation.md").write_text(table + "\n")
    save_plots(result, history, out)
    print(table)
    best = float(np.min([h["val_nll"] for h in history]))
    print(f"wrote {out} (best validation NLL {best:.3f}; plots error_vs_horizon.png, r2_per_dim.png, "
          "example_rollout.png)")
    return 0
