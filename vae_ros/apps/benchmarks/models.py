"""Encoder latency (batch 1) and throughput (batched) of every inference backend available here.

Each backend is timed from NumPy in to NumPy out, as a node uses it. Backends are timed in interleaved
rounds (one call of each per round), so drifts in machine load hit all of them alike, and each figure is
the median over the rounds after a warm-up; ratios are to torch eager measured in the same run.

Backends: torch (eager), torchscript (traced and frozen in memory: vae_ros never loads TorchScript files),
onnxruntime (FP32) and onnxruntime-int8, tensorrt (FP16) when torch_tensorrt and CUDA are present, torch
on CUDA when present. A model directory without (up-to-date) ONNX exports is exported into a temporary
copy for the run; without an INT8 export, the copy's INT8 encoder is calibrated on synthetic inputs, which
is fine for timing but says nothing about accuracy (the table notes it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.apps.benchmarks import save_report_json
from vae_ros.core.errors import ConfigError, ModelFileError

EncodeFn = Callable[[np.ndarray], Any]
DEFAULT_BATCH = 32
BACKEND_NAMES = ("torch", "torchscript", "onnxruntime", "onnxruntime-int8", "tensorrt", "torch-cuda")


@dataclass
class BackendTiming:
    """Medians for one backend; speed-ups are torch eager's time divided by this backend's."""

    backend: str
    latency_ms: float
    latency_p90_ms: float
    throughput: float  # samples per second at the batch size of the run
    latency_speedup: float = 1.0
    throughput_speedup: float = 1.0
    note: str = ""


@dataclass
class ModelBenchmark:
    """A whole run: what was measured, where, and the per-backend figures."""

    model: str
    modality: str
    input_shape: list[int]
    latent_dim: int
    batch: int
    repeats: int
    warmup: int
    torch_threads: int
    onnxruntime_threads: int
    machine: str
    versions: dict[str, str]
    results: list[BackendTiming] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1e3


def _p90_ms(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))] * 1e3


def _torchscript_encoder(model: Any, example: np.ndarray) -> EncodeFn:
    """The encoder traced and frozen in memory, called like the other backends (NumPy in and out)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        # torch 2.13 marks torch.jit deprecated; it still is what most C++ deployments run, so it is timed.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        traced = torch.jit.freeze(torch.jit.trace(model.encoder.eval(), (torch.from_numpy(example),)))

    def encode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            mean, logvar = traced(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return mean.numpy(), logvar.numpy()

    return encode


def _prepare_exports(model_dir: Path, work: Path, want_int8: bool) -> tuple[Path, dict[str, str]]:
    """A directory with up-to-date encoder.onnx (and encoder.int8.onnx): model_dir, or a temporary copy."""
    from vae_ros.core.backends import check_export_fresh, load_config
    from vae_ros.core.export import (
        copy_export,
        example_inputs,
        export_onnx,
        prepare_out_dir,
        quantize_int8,
        split_calibration,
    )
    from vae_ros.core.model_dir import ENCODER_INT8_ONNX, ENCODER_ONNX

    notes: dict[str, str] = {}

    def fresh(name: str) -> bool:
        try:
            check_export_fresh(model_dir, name)
        except ModelFileError:
            return False
        return True

    have_fp32, have_int8 = fresh(ENCODER_ONNX), fresh(ENCODER_INT8_ONNX)
    if have_fp32 and (have_int8 or not want_int8):
        return model_dir, notes
    copy = prepare_out_dir(model_dir, work / "model")
    if have_fp32:
        copy_export(model_dir, copy, ENCODER_ONNX)
    else:
        export_onnx(copy)
        notes["onnxruntime"] = "exported for this run"
    if want_int8:
        if have_int8:
            copy_export(model_dir, copy, ENCODER_INT8_ONNX)
        else:
            samples = example_inputs(load_config(copy), 64, seed=11)
            calibration, held_out = split_calibration(samples)
            quantize_int8(copy, calibration, held_out, min_cosine=0.0)
            notes["onnxruntime-int8"] = "calibrated on synthetic inputs for this run (timing only)"
    return copy, notes


def _candidates(model_dir: Path, work: Path, wanted: Sequence[str], example: np.ndarray,
                threads: int | None = None) -> tuple[list[tuple[str, EncodeFn, str]], dict[str, str]]:
    """(name, encode function, note) of each wanted backend that runs here; skipped ones with the reason."""
    import torch

    from vae_ros.core.accel import tensorrt_available
    from vae_ros.core.backends import OnnxRuntimeBackend, TorchBackend, create_backend
    from vae_ros.core.errors import VaeRosError

    torch_backend = TorchBackend(model_dir, "cpu")
    found: list[tuple[str, EncodeFn, str]] = []
    skipped: dict[str, str] = {}
    export_dir, notes = model_dir, dict[str, str]()
    if any(name.startswith("onnxruntime") for name in wanted):
        export_dir, notes = _prepare_exports(model_dir, work, "onnxruntime-int8" in wanted)
    for name in wanted:
        try:
            if name == "torch":
                found.append((name, torch_backend.encode, "eager, reference"))
            elif name == "torchscript":
                found.append((name, _torchscript_encoder(torch_backend.model, example), "traced + frozen"))
            elif name == "onnxruntime":
                found.append((name, OnnxRuntimeBackend(export_dir, "cpu", "fp32", threads).encode, notes.get(name, "")))
            elif name == "onnxruntime-int8":
                found.append((name, OnnxRuntimeBackend(export_dir, "cpu", "int8", threads).encode, notes.get(name, "")))
            elif name == "tensorrt":
                if not tensorrt_available("cuda"):
                    skipped[name] = "needs torch_tensorrt and a CUDA GPU"
                    continue
                found.append((name, create_backend(model_dir, "tensorrt", "cuda").encode, "FP16"))
            elif name == "torch-cuda":
                if not torch.cuda.is_available():
                    skipped[name] = "no CUDA device"
                    continue
                found.append((name, create_backend(model_dir, "torch", "cuda").encode, ""))
        except VaeRosError as err:
            skipped[name] = str(err)
    return found, skipped


def _time_interleaved(functions: Sequence[EncodeFn], x: np.ndarray, repeats: int, warmup: int,
                      cuda: bool) -> list[list[float]]:
    """Per function, `repeats` wall times (s) of one call on x, taken in interleaved rounds."""
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if cuda:
        import torch

        sync = torch.cuda.synchronize
    for fn in functions:
        for _ in range(warmup):
            fn(x)
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for i, fn in enumerate(functions):
            sync()
            start = time.perf_counter()
            fn(x)  # returns NumPy, so device work is complete when it returns
            times[i].append(time.perf_counter() - start)
    return times


def benchmark_models(model_dir: str | Path, repeats: int = 100, warmup: int = 10, batch: int = 32,
                     backends: Sequence[str] | None = None, seed: int = 0,
                     threads: int | None = None) -> ModelBenchmark:
    """Time the encoder of model_dir in each available backend: latency at batch 1, throughput at `batch`.

    threads: CPU threads for torch and ONNX Runtime alike (default: torch's own default, and
    backends.default_threads() for ONNX Runtime).
    """
    import onnxruntime
    import torch

    from vae_ros.core.backends import default_threads, load_config

    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if repeats < 1 or warmup < 0 or batch < 1:
        raise ConfigError(f"repeats and batch must be >= 1 and warmup >= 0, got {repeats}, {batch}, {warmup}")
    wanted = list(backends) if backends else list(BACKEND_NAMES)
    unknown = [name for name in wanted if name not in BACKEND_NAMES]
    if unknown:
        raise ConfigError(f"unknown backend(s) {unknown}; choose from {', '.join(BACKEND_NAMES)}")
    if "torch" not in wanted:
        wanted.insert(0, "torch")  # the reference of every ratio
    model_dir = Path(model_dir)
    config = load_config(model_dir)
    torch_threads = torch.get_num_threads()
    rng = np.random.default_rng(seed)
    x1 = rng.random((1, *config.input_shape), dtype=np.float32)  # (1, *input_shape)
    xb = rng.random((batch, *config.input_shape), dtype=np.float32)  # (B, *input_shape)

    report = ModelBenchmark(
        model=str(model_dir), modality=config.modality, input_shape=list(config.input_shape),
        latent_dim=config.latent_dim, batch=batch, repeats=repeats, warmup=warmup,
        torch_threads=threads or torch_threads, onnxruntime_threads=threads or default_threads(),
        machine=f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".replace("  ", " "),
        versions={"python": platform.python_version(), "torch": torch.__version__,
                  "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
    )
    try:
        if threads:
            torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory(prefix="vae_ros_bench_") as work:
            found, report.skipped = _candidates(model_dir, Path(work), wanted, x1, threads)
            names = [name for name, _, _ in found]
            functions = [fn for _, fn, _ in found]
            cuda = any(name in ("tensorrt", "torch-cuda") for name in names)
            single = _time_interleaved(functions, x1, repeats, warmup, cuda)
            batched = _time_interleaved(functions, xb, repeats, max(1, warmup // 2), cuda)
    finally:
        torch.set_num_threads(torch_threads)
    for (name, _, note), lat, thr in zip(found, single, batched, strict=True):
        report.results.append(BackendTiming(backend=name, latency_ms=_median_ms(lat), latency_p90_ms=_p90_ms(lat),
                                            throughput=batch / statistics.median(thr), note=note))
    reference = report.results[names.index("torch")]
    for row in report.results:
        row.latency_speedup = reference.latency_ms / row.latency_ms
        row.throughput_speedup = row.throughput / reference.throughput
    return report


def format_table(report: ModelBenchmark) -> str:
    """The run as a fixed-width table with a header saying what was measured."""
    shape = "x".join(map(str, report.input_shape))
    lines = [
        f"encoder benchmark: {report.model} ({report.modality} {shape}, latent {report.latent_dim})",
        f"{report.machine}; torch {report.versions['torch']} ({report.torch_threads} threads), onnxruntime "
        f"{report.versions['onnxruntime']} ({report.onnxruntime_threads} threads); medians of {report.repeats} "
        f"interleaved runs after warm-up",
        "",
        f"{'backend':<18} {'latency b1 ms':>13} {'p90 ms':>8} {'vs torch':>9} "
        f"{'b' + str(report.batch) + ' samples/s':>16} {'vs torch':>9}  note",
    ]
    for row in report.results:
        lines.append(f"{row.backend:<18} {row.latency_ms:>13.3f} {row.latency_p90_ms:>8.3f} "
                     f"{row.latency_speedup:>8.2f}x {row.throughput:>16,.0f} {row.throughput_speedup:>8.2f}x  "
                     f"{row.note}".rstrip())
    for name, reason in report.skipped.items():
        lines.append(f"{name:<18} {'-':>13} {'-':>8} {'-':>9} {'-':>16} {'-':>9}  skipped: {reason}")
    lines.append("(vs torch: speed-up over torch eager in this run, >1 is faster)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the models benchmark (shared by `vae-ros bench` and bench/models.py)."""
    parser.add_argument("--model", default="", metavar="DIR",
                        help="model directory (default: the packaged image model)")
    parser.add_argument("--repeats", type=int, default=100, metavar="N", help="timed runs per backend (default 100)")
    parser.add_argument("--warmup", type=int, default=10, metavar="N", help="untimed runs (models) or training steps (train) first (default 10)")
    parser.add_argument("--batch", type=int, default=None, metavar="B",
                        help=f"batch size: models' throughput (default {DEFAULT_BATCH}), train's step (default 64)")
    parser.add_argument("--backends", default="", metavar="A,B",
                        help=f"subset to time, comma-separated (default all available: {', '.join(BACKEND_NAMES)})")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch and ONNX Runtime alike (default: each one's default)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also save the figures as JSON")


def run_from_args(args: argparse.Namespace) -> int:
    """Run with parsed arguments, print the table, optionally save JSON."""
    from vae_ros.core.model_dir import resolve_model_dir

    model_dir = resolve_model_dir(args.model, "image")
    backends = [name.strip() for name in args.backends.split(",") if name.strip()] or None
    print(f"timing encoders of {model_dir} ...", file=sys.stderr, flush=True)
    batch = args.batch if args.batch is not None else DEFAULT_BATCH
    report = benchmark_models(model_dir, args.repeats, args.warmup, batch, backends,
                              threads=getattr(args, "threads", None))
    print(format_table(report))
    if args.json:
        save_report_json(report, args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (python -m vae_ros.apps.benchmarks.models, bench/models.py)."""
    from vae_ros.core.errors import VaeRosError

    parser = argparse.ArgumentParser(prog="bench/models.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except VaeRosError as err:
        print(f"bench models: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
