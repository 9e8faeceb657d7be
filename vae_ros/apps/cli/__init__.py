"""`vae-ros`: the command-line tool. One module per subcommand, each with register() and run().

Subcommand modules keep heavy imports (torch, rclpy, mujoco) inside run(), so `vae-ros --help` is instant.
Every VaeRosError becomes one clear line on stderr and exit status 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

# (subcommand, module under vae_ros.apps.cli, one-line help)
SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("collect", "collect", "drive the simulated robot and record a rosbag2 (MCAP) of its sensors and commands"),
    ("record", "record", "record live ROS topics to a rosbag2 MCAP (for machines without `ros2 bag`)"),
    ("train", "train", "train a VAE from a rosbag2 topic or an image folder; writes a model directory"),
    ("train-dynamics", "train_dynamics", "train the latent world model from a bag of latents and commands"),
    ("export", "export", "write ONNX, INT8 ONNX, TorchScript or TensorRT artifacts into a model directory; "
     "--prune FRACTION: a pruned, fine-tuned copy with its latency and quality against the original"),
    ("eval", "evaluate", "report ELBO, reconstruction error, KL per dimension, active units; write PNG plots"),
    ("eval-control", "eval_control", "basin of attraction of latent representations, closed-loop servo episodes"),
    ("teach", "teach", "turn a bag of vae/latent_stamped and odom into a route the route follower repeats"),
    ("eval-route", "eval_route", "teach-and-repeat episodes in the simulator, judged by ground truth, against "
                                 "odometry-only and raw-sensor baselines"),
    ("repair", "repair", "make a bag left by a killed recorder readable again (metadata, MCAP summary)"),
    ("demo", "demo", "the main job: closed-loop run in the simulator with the packaged models (`--route`: teach "
                     "a route by driving, repeat it from a displaced start)"),
    ("bench", "bench", "measure latency and throughput of each backend and of the running nodes"),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as for every other bad argument
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vae-ros", description="Variational autoencoders on robots: data, training, "
                     "evaluation, export, simulation and benchmarks.")
    from vae_ros import __version__

    parser.add_argument("--version", action="version", version=f"vae-ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name, help_text in SUBCOMMANDS:
        module = importlib.import_module(f"vae_ros.apps.cli.{module_name}")
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.register(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from vae_ros.core.errors import VaeRosError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args._run(args) or 0)
    except VaeRosError as err:
        print(f"vae-ros {args.command}: error: {err}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"vae-ros {args.command}: interrupted", file=sys.stderr)
        code = 130
    from vae_ros.core import distributed

    if distributed.joined_group():  # a torchrun process: leave without the interpreter's teardown (see there)
        distributed.exit_process(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
