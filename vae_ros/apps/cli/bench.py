"""`vae-ros bench [models|nodes|footprint|compression]`: latency and throughput of each inference backend
and of the running nodes; their memory and start time; rate–distortion of LiDAR latents against classic codecs.

`models` times the encoder in every backend available here (vae_ros.apps.benchmarks.models); `nodes` runs the
node benchmark (vae_ros.apps.benchmarks.nodes, or bench/nodes.py in a source checkout); `footprint` measures
encoder_node's peak memory and time to first latent per backend against a lean ONNX Runtime process
(vae_ros.apps.benchmarks.footprint). With no target, these three run, the nodes part only where its code exists. `compression` (vae_ros.apps.benchmarks.compression) runs only
when named: bytes per message, error and codec time for LaserScan / PointCloud2 messages.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TARGETS = ("models", "nodes", "footprint", "compression")


def register(parser: argparse.ArgumentParser) -> None:
    from vae_ros.apps.benchmarks.compression import add_arguments as add_compression_arguments
    from vae_ros.apps.benchmarks.footprint import add_arguments as add_footprint_arguments
    from vae_ros.apps.benchmarks.models import add_arguments

    parser.add_argument("target", nargs="?", choices=TARGETS, default=None,
                        help="models: encoder latency/throughput per backend; nodes: the running nodes; "
                        "footprint: encoder_node's memory and start time per backend against a lean process "
                        "(default: these three); compression: LiDAR bytes vs error, latents against codecs")
    add_arguments(parser)  # --model and --json serve both benchmarks
    nodes = _nodes_module()
    add_node_arguments = getattr(nodes, "add_arguments", None) if nodes is not None else None
    if add_node_arguments is not None:
        add_node_arguments(parser.add_argument_group("node benchmark"))
    add_footprint_arguments(parser.add_argument_group("footprint benchmark"))
    add_compression_arguments(parser.add_argument_group("compression benchmark"))


def _nodes_module() -> ModuleType | None:
    """The node benchmark: the installed package's, else bench/nodes.py of the source tree, else None."""
    if importlib.util.find_spec("vae_ros.apps.benchmarks.nodes") is not None:
        return importlib.import_module("vae_ros.apps.benchmarks.nodes")
    path = Path(__file__).resolve().parents[3] / "bench" / "nodes.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("vae_ros_bench_nodes", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_nodes(args: argparse.Namespace, required: bool) -> int:
    from vae_ros.core.errors import ConfigError

    module = _nodes_module()
    entry = getattr(module, "run_from_args", None) if module is not None else None
    if entry is None:
        if required:
            raise ConfigError("the node benchmark is not available in this version yet "
                              "(no vae_ros.apps.benchmarks.nodes / bench/nodes.py with run_from_args)")
        print("vae-ros bench: node benchmark not available yet; skipped", file=sys.stderr)
        return 0
    return int(entry(args) or 0)


def run(args: argparse.Namespace) -> int:
    from vae_ros.apps.benchmarks.models import run_from_args

    status = 0
    if args.target == "compression":
        from vae_ros.apps.benchmarks.compression import run_from_args as run_compression

        return run_compression(args)
    if args.target in (None, "models"):
        status = run_from_args(args)
    json_path = args.json
    if args.target in (None, "nodes"):
        if args.target is None and json_path:
            args.json = str(Path(json_path).with_name(Path(json_path).stem + "_nodes.json"))
        status = max(status, _run_nodes(args, required=args.target == "nodes"))
    if args.target in (None, "footprint"):
        from vae_ros.apps.benchmarks.footprint import run_from_args as run_footprint

        if args.target is None and json_path:
            args.json = str(Path(json_path).with_name(Path(json_path).stem + "_footprint.json"))
        status = max(status, run_footprint(args))
    return status
