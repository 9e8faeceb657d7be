"""`vae-ros bench [models|nodes|footprint|compression|train|prune]`: latency and throughput of each inference backend
and of the running nodes; their memory and start time; rate–distortion of LiDAR latents against classic codecs.

`models` times the encoder in every backend available here (vae_ros.apps.benchmarks.models); `nodes` runs the
node benchmark (vae_ros.apps.benchmarks.nodes); `footprint` measures
encoder_node's peak memory and time to first latent per backend against a lean ONNX Runtime process
(vae_ros.apps.benchmarks.footprint). With no target, these three run. `compression` (vae_ros.apps.benchmarks.compression) runs only
when named: bytes per message, error and codec time for LaserScan / PointCloud2 messages. `train`
(vae_ros.apps.benchmarks.train_loop) also runs only when named: the training step loop against a bare loop.
`prune` (vae_ros.apps.benchmarks.prune), only when named: `vae-ros export --prune` over models and fractions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TARGETS = ("models", "nodes", "footprint", "compression", "train", "prune")


def register(parser: argparse.ArgumentParser) -> None:
    from vae_ros.apps.benchmarks.compression import add_arguments as add_compression_arguments
    from vae_ros.apps.benchmarks.footprint import add_arguments as add_footprint_arguments
    from vae_ros.apps.benchmarks.models import add_arguments
    from vae_ros.apps.benchmarks.nodes import add_arguments as add_node_arguments
    from vae_ros.apps.benchmarks.prune import add_arguments as add_prune_arguments
    from vae_ros.apps.benchmarks.train_loop import add_arguments as add_train_arguments

    parser.add_argument("target", nargs="?", choices=TARGETS, default=None,
                        help="models: encoder latency/throughput per backend; nodes: the running nodes; "
                        "footprint: encoder_node's memory and start time per backend against a lean process "
                        "(default: these three); compression: LiDAR bytes vs error, latents against codecs; "
                        "train: the training step loop against a bare loop of the same model (--device, --batch, "
                        "--precision, --channels-last, --compile); "
                        "prune: export --prune over models and fractions (--prune-bag, --fractions)")
    add_arguments(parser)  # --model and --json serve both benchmarks
    add_node_arguments(parser.add_argument_group("node benchmark"))
    add_footprint_arguments(parser.add_argument_group("footprint benchmark"))
    add_compression_arguments(parser.add_argument_group("compression benchmark"))
    add_train_arguments(parser.add_argument_group("training benchmark"))
    add_prune_arguments(parser.add_argument_group("pruning benchmark"))


def run(args: argparse.Namespace) -> int:
    from vae_ros.apps.benchmarks.models import run_from_args

    status = 0
    if args.target == "compression":
        from vae_ros.apps.benchmarks.compression import run_from_args as run_compression

        return run_compression(args)
    if args.target == "train":
        from vae_ros.apps.benchmarks.train_loop import run_from_args as run_train

        return run_train(args)
    if args.target == "prune":
        from vae_ros.apps.benchmarks.prune import run_from_args as run_prune

        return run_prune(args)
    if args.target in (None, "models"):
        status = run_from_args(args)
    json_path = args.json
    if args.target in (None, "nodes"):
        if args.target is None and json_path:
            args.json = str(Path(json_path).with_name(Path(json_path).stem + "_nodes.json"))
        from vae_ros.apps.benchmarks.nodes import run_from_args as run_nodes

        status = max(status, int(run_nodes(args) or 0))
    if args.target in (None, "footprint"):
        from vae_ros.apps.benchmarks.footprint import run_from_args as run_footprint

        if args.target is None and json_path:
            args.json = str(Path(json_path).with_name(Path(json_path).stem + "_footprint.json"))
        status = max(status, run_footprint(args))
    return status
