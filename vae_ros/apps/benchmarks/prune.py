"""Pruning fraction against speed and quality: `vae-ros export --prune` over several models and fractions.

For each model and fraction it runs vae_ros.core.prune.prune_model_dir (prune, fine-tune, export ONNX and INT8,
compare with the unpruned model in the same run) into a temporary folder and prints one markdown table row:
ONNX Runtime batch-1 encoder latency FP32 and INT8 (pruned / unpruned ratio), held-out ELBO before and after the
fine-tune, and the latent cosine to the unpruned encoder. The INT8 export is not gated here (min cosine 0):
its agreement with FP32 is a column of the table instead. docs/DEPLOYMENT.md's pruning table comes from here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The topic of each modality in a bag written by `vae-ros collect --lidar both`.
COLLECT_TOPICS = {"image": "/camera/image_raw", "scan": "/scan", "pointcloud": "/lidar/points"}
DEFAULT_MODELS = ("image_default", "scan_default", "control_default")
DEFAULT_FRACTIONS = (0.25, 0.5, 0.75)


@dataclass
class PruneBenchmark:
    """Every report of the run, in order (vae_ros.core.prune.PruneReport.to_dict())."""

    command: str
    reports: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"command": self.command, "reports": self.reports}, indent=2)


def _fractions(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions like 0.25,0.5, got {text!r}") from err
    if not values:
        raise argparse.ArgumentTypeError("expected at least one fraction")
    return values


def format_table(reports: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one row per model and fraction."""
    lines = [
        "| model | fraction | channels | parameters | encoder FP32 ms (unpruned → pruned) | encoder INT8 ms | "
        "decoder FP32 ms | INT8 cosine to FP32 (pruned) | held-out ELBO: unpruned / pruned, no fine-tune / fine-tuned | latent cosine to unpruned "
        "(no fine-tune → fine-tuned) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        lat = r["latency_ms"]

        def cell(name: str, lat: dict[str, dict[str, float]] = lat) -> str:
            t = lat[name]
            return f"{t['unpruned']:.3f} → {t['pruned']:.3f} ({t['unpruned'] / t['pruned']:.2f}×)"

        lines.append(
            f"| {Path(r['model_dir']).name} | {r['fraction']:g} | {','.join(map(str, r['channels_after']))} | "
            f"{r['parameters_after'] / r['parameters_before']:.2f}× | {cell('encoder_fp32')} | {cell('encoder_int8')} | "
            f"{cell('decoder_fp32')} | {r['int8_cosine_to_fp32']:.4f} | {r['elbo_unpruned']:.0f} / {r['elbo_pruned_no_fine_tune']:.0f} / "
            f"{r['elbo_pruned']:.0f} | {r['latent_cosine_no_fine_tune']:.3f} → {r['latent_cosine_mean']:.3f} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """Options of the pruning benchmark (shared by `vae-ros bench prune` and bench/prune.py)."""
    parser.add_argument("--prune-models", default=",".join(DEFAULT_MODELS), metavar="A,B",
                        help="prune: packaged model names or model directories (default "
                        f"{','.join(DEFAULT_MODELS)})")
    parser.add_argument("--fractions", type=_fractions, default=list(DEFAULT_FRACTIONS), metavar="F,F",
                        help="prune: fractions of channels to remove (default 0.25,0.5,0.75)")
    parser.add_argument("--prune-bag", default=None, metavar="PATH",
                        help="prune: a bag with every model's topic (vae-ros collect --lidar both: "
                        f"{', '.join(COLLECT_TOPICS.values())}) for the fine-tune and the comparison (required)")
    parser.add_argument("--fine-tune-epochs", type=int, default=2, metavar="N", help="prune: epochs (default 2)")


def run_from_args(args: argparse.Namespace) -> int:
    from vae_ros.apps.benchmarks import save_report_json
    from vae_ros.core.config import ModelConfig
    from vae_ros.core.errors import ConfigError
    from vae_ros.core.model_dir import CONFIG_FILE
    from vae_ros.core.prune import prune_model_dir
    from vae_ros.resources import models_dir

    if not args.prune_bag:
        raise ConfigError("bench prune needs --prune-bag PATH (a bag from `vae-ros collect --lidar both`)")
    bench = PruneBenchmark(command=" ".join(["vae-ros", *sys.argv[1:]]))
    for name in [part.strip() for part in args.prune_models.split(",") if part.strip()]:
        model_dir = Path(name) if Path(name, CONFIG_FILE).is_file() else models_dir() / name
        modality = ModelConfig.load(model_dir / CONFIG_FILE).modality
        for fraction in args.fractions:
            print(f"bench prune: {model_dir.name} at {fraction:g} ...", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(prefix="vae_ros_prune_") as tmp:
                report = prune_model_dir(model_dir, Path(tmp) / "pruned", fraction, bag=args.prune_bag,
                                         topic=COLLECT_TOPICS[modality], epochs=args.fine_tune_epochs,
                                         repeats=args.repeats, min_cosine=0.0, progress=False,
                                         say=lambda line: None)
            bench.reports.append(report.to_dict())
            print(format_table(bench.reports[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(format_table(bench.reports))
    if args.json:
        save_report_json(bench, args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (python -m vae_ros.apps.benchmarks.prune, bench/prune.py)."""
    from vae_ros.core.errors import VaeRosError

    parser = argparse.ArgumentParser(prog="bench/prune.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--repeats", type=int, default=200, metavar="N", help="timed runs per graph (default 200)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also save the reports as JSON")
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except VaeRosError as err:
        print(f"bench prune: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
