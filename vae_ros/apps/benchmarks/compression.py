"""Rate–distortion of LiDAR on the wire: the VAE latent against classic codecs, in one run.

Over 500 lines because this docstring defines every row; the codecs themselves are in lidar_codecs.py.

For LaserScan (scan models) and PointCloud2 (point-cloud models) messages, every codec turns a message into
the bytes one robot would send and back into geometry on the receiving side; the run records bytes per
message, reconstruction error against the original message, and encode / decode time per message (medians,
this CPU, one thread). The raw serialised message (CDR) is the baseline of every ratio.

Codecs (vae_ros.apps.benchmarks.lidar_codecs; each payload is self-contained: the receiver rebuilds a stamped
message of the same type from it):
- raw: `serialize_message` of the message (CDR), what DDS carries without compression.
- zstd / lz4: lossless compression of that CDR (PyPI `zstandard`, `lz4`).
- range 1 cm / 5 cm + zstd: ranges quantised to the step (uint16 codes), with the message's other fields
  (header, geometry) as CDR, then zstd. Scans keep their own beams; point clouds go through the model's
  spherical range image (PointCloudSpec), and points come back along the decoder's rays
  (vae_ros.conversions.decoded_range_image_to_points: ring elevations spanning the field of view, column
  centres), so the projection's error is shared with the latent rows (the run reports it as the projection
  floor).
- range 20 cm, 1/8 beams (scans) / range img 20 cm, 1/16 cols (clouds) + zstd: the same, coarse and sparse
  (every k-th beam or column; the receiver repeats the nearest one), to bring a classic codec down to about
  the latent's bytes, so that the two are compared at equal rate.
- draco N-bit: Draco point-cloud compression (PyPI `DracoPy`, kd-tree, compression level 7) of the valid
  points, quantised to N bits over a cube of side 2R around the sensor (R = the largest coordinate, whole
  metres); scans are sent as x, y points and re-binned to beams by angle on the receiving side.
- latent f32: `vae/latent_stamped` as the contract defines it (sensor_msgs/Image 32FC1, 1 x D, the input's
  header; vae_ros.conversions.latent_to_stamped_msg). latent f16: the same message with 16-bit floats (encoding "16FC1", step 2D). latent int8: the
  same with int8 codes (encoding "8SC1", step D): per-dimension symmetric affine quantisation over the
  prior's +-4 sigma, q = clip(round(z * 127 / 4), -127, 127); the prior is N(0, I), so every dimension has
  the scale 4/127 and no side information is sent. The receiver decodes the latent mean with the model.

Errors: scans, range MAE / RMSE (m) over the original's valid beams (finite, within its range_min ..
range_max) that the reconstruction also returns ("missing" counts those it does not); point clouds,
symmetric Chamfer distance (mean nearest-neighbour distance both ways, halved; m) between the original's
finite points and the reconstruction's points, and range MAE / RMSE on the model's range image over pixels
valid in both. Latents decode as decoder_node decodes them (vae_ros.conversions: decoded_scan_ranges,
decoded_range_image_to_points), with its no-return rule (NO_RETURN_FRACTION of range_max: +inf / no point,
REP-117).

Bytes are the serialised payload only (no RTPS/UDP framing, which every row would pay alike). Codec rows count
their self-contained payload without a carrier message; the latent rows count their whole ROS message, so a
header's worth of bytes (about 56 B here) favours the codecs. Timing: message object -> bytes (encode) and
bytes -> ranges or points (decode), on one CPU thread unless --threads says otherwise, codecs interleaved
per message so machine load hits all alike. The end of each table says whether the latent meets the 100x
goal and which of it and the classic row nearest in bytes reconstructs better.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.apps.benchmarks import save_report_json
from vae_ros.apps.benchmarks.lidar_codecs import (
    DRACO_BITS,
    DRACO_COMPRESSION_LEVEL,
    INT8_SIGMAS,
    RANGE_STEPS_M,
    ZSTD_LEVEL,
    Codec,
    CodecContext,
    available_codecs,
    chamfer_distance,
    cloud_points,
    message_class,
    range_image_points,
    scan_beam_bins,
    scan_valid,
)
from vae_ros.core.conversions.lidar import NO_RETURN_FRACTION
from vae_ros.core.errors import ConfigError, DataError, InputError

GOAL_RATIO = 100.0  # the goal: the latent at >= 100x fewer bytes than the raw message
# The held-out run of the packaged models (scripts/make_models.sh): world seed 0, policy seed 2, another start.
HELDOUT_WORLD_SEED = 0
HELDOUT_POLICY_SEED = 2
HELDOUT_START = (1.0, -1.0, 1.57)

_MSG_SCAN = "sensor_msgs/msg/LaserScan"
_MSG_CLOUD = "sensor_msgs/msg/PointCloud2"


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------
@dataclass
class CodecResult:
    """One codec over all messages of one modality. Ratio: mean raw bytes / mean codec bytes."""

    codec: str
    family: str  # raw, lossless, quantised, draco, latent
    bytes_mean: float
    bytes_min: int
    bytes_max: int
    ratio: float
    range_mae_m: float
    range_rmse_m: float
    range_max_abs_m: float
    missing_fraction: float  # of the original's valid beams / pixels that the reconstruction lacks
    chamfer_m: float | None  # point clouds only
    encode_ms: float
    decode_ms: float
    note: str = ""


@dataclass
class ModalityReport:
    """All codecs on one set of messages of one modality."""

    modality: str  # scan | pointcloud
    model: str
    source: str
    messages: int
    skipped_messages: int
    raw_bytes_mean: float
    latent_dim: int
    projection_chamfer_m: float | None = None  # point clouds: Chamfer of the unquantised range image
    results: list[CodecResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class CompressionBenchmark:
    """A whole run: where it ran, with what, and one report per modality."""

    machine: str
    versions: dict[str, str]
    settings: dict[str, Any]
    reports: list[ModalityReport] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# ---------------------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _Tally:
    """Running sums of one codec over the messages."""

    sizes: list[int] = field(default_factory=list)
    encode_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)
    abs_sum: float = 0.0
    sq_sum: float = 0.0
    max_abs: float = 0.0
    count: int = 0
    reference: int = 0
    missing: int = 0
    chamfer: list[float] = field(default_factory=list)

    def add_errors(self, error: np.ndarray, reference: int) -> None:
        error = np.abs(error.astype(np.float64))
        self.abs_sum += float(error.sum())
        self.sq_sum += float((error ** 2).sum())
        self.max_abs = max(self.max_abs, float(error.max(initial=0.0)))
        self.count += int(error.size)
        self.reference += reference
        self.missing += reference - int(error.size)


def _scan_decoded(ctx: CodecContext, codec: Codec, msg: Any, decoded: np.ndarray) -> np.ndarray:
    """A latent's per-bin ranges -> the message's beams (+inf where no return); other codecs pass through."""
    if codec.family != "latent":
        return decoded
    bins = scan_beam_bins(msg, ctx.config.scan_spec)
    return np.where(bins >= 0, decoded[np.maximum(bins, 0)], np.inf).astype(np.float32)


def _measure(ctx: CodecContext, codec: Codec, msg: Any, tally: _Tally, truth: Any, timed: bool = True) -> None:
    start = time.perf_counter()
    buf = codec.encode(msg)
    middle = time.perf_counter()
    decoded = codec.decode(buf)
    end = time.perf_counter()
    if not timed:
        return
    tally.sizes.append(len(buf))
    tally.encode_s.append(middle - start)
    tally.decode_s.append(end - middle)
    if ctx.modality == "scan":
        ranges, valid = truth
        recon = _scan_decoded(ctx, codec, msg, decoded)
        both = valid & np.isfinite(recon)
        tally.add_errors(recon[both] - ranges[both], int(valid.sum()))
    else:
        points, image = truth
        tally.chamfer.append(chamfer_distance(points, decoded))
        recon = ctx.range_image(decoded)
        valid = image[1] > 0.5
        both = valid & (recon[1] > 0.5)
        tally.add_errors((recon[0][both] - image[0][both]) * ctx.range_max, int(valid.sum()))


def benchmark_modality(modality: str, model_dir: str | Path, messages: Sequence[Any], source: str,
                       threads: int = 1, backend: str = "auto", skipped_messages: int = 0,
                       progress: bool = False) -> ModalityReport:
    """Every codec on `messages` (rclpy LaserScan or PointCloud2 objects of `modality`)."""
    model_dir = Path(model_dir)
    ctx = CodecContext(modality, model_dir, threads, backend)
    from vae_ros.core.conversions.model_input import msg_to_model_input

    usable, truths = [], []
    for msg in messages:
        try:
            msg_to_model_input(msg, ctx.config)  # a message the encoder would reject is no fair test
            if modality == "scan":
                truth: Any = scan_valid(msg)
            else:
                points = cloud_points(msg)
                truth = (points, ctx.range_image(points))
        except InputError as err:
            print(f"bench compression: skipping a {modality} message: {err}", file=sys.stderr)
            skipped_messages += 1
            continue
        usable.append(msg)
        truths.append(truth)
    if not usable:
        raise DataError(f"no usable {modality} message in {source}")
    try:  # the packaged defaults resolve to absolute paths; a report reads better relative to here
        shown = str(model_dir.resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = str(model_dir)
    report = ModalityReport(modality=modality, model=shown, source=source, messages=len(usable),
                            skipped_messages=skipped_messages, raw_bytes_mean=0.0,
                            latent_dim=ctx.config.latent_dim)
    codecs = available_codecs(ctx, report.skipped)
    tallies = [_Tally() for _ in codecs]
    for codec, tally in zip(codecs, tallies, strict=True):  # warm-up: first calls load and allocate
        _measure(ctx, codec, usable[0], tally, truths[0], timed=False)
    for i, (msg, truth) in enumerate(zip(usable, truths, strict=True)):
        for codec, tally in zip(codecs, tallies, strict=True):  # interleaved: load drifts hit all alike
            _measure(ctx, codec, msg, tally, truth)
        if progress and (i + 1) % 50 == 0:
            print(f"  {modality}: {i + 1}/{len(usable)} messages", file=sys.stderr, flush=True)
    if modality == "pointcloud":
        floor = [chamfer_distance(points, range_image_points(image[0] * ctx.range_max, image[1] > 0.5,
                                                             ctx.directions)) for points, image in truths]
        report.projection_chamfer_m = float(np.mean(floor))
    raw_mean = float(np.mean(tallies[0].sizes))
    report.raw_bytes_mean = raw_mean
    for codec, tally in zip(codecs, tallies, strict=True):
        count = max(tally.count, 1)
        report.results.append(CodecResult(
            codec=codec.name, family=codec.family, bytes_mean=float(np.mean(tally.sizes)),
            bytes_min=min(tally.sizes), bytes_max=max(tally.sizes), ratio=raw_mean / float(np.mean(tally.sizes)),
            range_mae_m=tally.abs_sum / count, range_rmse_m=math.sqrt(tally.sq_sum / count),
            range_max_abs_m=tally.max_abs, missing_fraction=tally.missing / max(tally.reference, 1),
            chamfer_m=float(np.mean(tally.chamfer)) if tally.chamfer else None,
            encode_ms=statistics.median(tally.encode_s) * 1e3, decode_ms=statistics.median(tally.decode_s) * 1e3,
            note=codec.note))
    return report


# ---------------------------------------------------------------------------------------------------------
# Data: held-out simulator messages, or a bag topic
# ---------------------------------------------------------------------------------------------------------
def simulate_messages(count: int, world_seed: int = HELDOUT_WORLD_SEED, policy_seed: int = HELDOUT_POLICY_SEED,
                      start: Sequence[float] = HELDOUT_START, stride: int = 5,
                      rate: float = 10.0) -> tuple[list[Any], list[Any]]:
    """(LaserScans, PointCloud2s) of `count` frames of the exploring robot, one every `stride` sim frames.

    Built exactly as `vae-ros collect` and sim_node build them (vae_ros.ros.sim_messages). The defaults are the
    packaged models' held-out run: the training world, another policy seed and another start.
    """
    from vae_ros.ros import sim_messages as messages
    from vae_ros.sim.policy import ExplorationPolicy, PolicyConfig
    from vae_ros.sim.world import SimConfig, SimWorld

    if count < 1 or stride < 1:
        raise ConfigError(f"message count and stride must be >= 1, got {count}, {stride}")
    scans, clouds = [], []
    world = SimWorld(SimConfig(seed=world_seed, initial_pose=(float(start[0]), float(start[1]), float(start[2]))))
    policy = ExplorationPolicy(PolicyConfig(), seed=policy_seed)
    state = policy.initial_state()
    dt = 1.0 / rate
    angles = world.scan_geometry.angles
    cfg = world.config
    with world:
        for frame in range(count * stride):
            ranges = world.scan()
            if frame % stride == 0:
                stamp = messages.time_msg(world.time)
                scans.append(messages.scan_msg(ranges, world.scan_geometry, stamp, dt))
                clouds.append(messages.cloud_msg(world.pointcloud(), cfg.cloud_rings, cfg.cloud_columns, stamp))
            state, (linear, angular) = policy.step(state, ranges, angles, dt)
            world.step(linear, angular, dt)
    return scans, clouds


def bag_messages(path: str, topic: str, limit: int) -> tuple[str, list[Any], int, str]:
    """(modality, up to `limit` rclpy messages, undecodable count, label) of a LaserScan/PointCloud2 topic."""
    from rclpy.serialization import deserialize_message

    from vae_ros.core.data import BagSource

    source = BagSource(path, topic)
    if source.msgtype not in (_MSG_SCAN, _MSG_CLOUD):
        raise DataError(f"{source.label()}: the compression benchmark needs sensor_msgs/LaserScan or "
                        f"sensor_msgs/PointCloud2")
    cls = message_class(source.msgtype)
    out: list[Any] = []
    bad = 0
    # Raw CDR straight from the bag, deserialised into rclpy messages (what serialize_message sends).
    for _index, _stamp, raw in source._iter(None, None, (0, 1), deserialise=False):
        if len(out) >= limit:
            break
        try:
            out.append(deserialize_message(bytes(raw), cls))
        except Exception as err:  # noqa: BLE001  (rclpy raises a bare RuntimeError/ValueError on bad CDR)
            bad += 1
            print(f"bench compression: skipping undecodable CDR: {err}", file=sys.stderr)
    return source.modality, out, bad, source.label()


def _iter_parts(args: argparse.Namespace) -> Iterator[tuple[str, str, list[Any], int, str]]:
    """(modality, model dir, messages, skipped, source label) for each part of the run."""
    from vae_ros.core.model_dir import resolve_model_dir

    if args.bag:
        if not args.topic:
            raise ConfigError("--bag needs --topic (a sensor_msgs/LaserScan or PointCloud2 topic)")
        modality, msgs, bad, label = bag_messages(args.bag, args.topic, args.messages)
        model = args.scan_model if modality == "scan" else args.cloud_model
        yield modality, str(resolve_model_dir(model or args.model or "", modality)), msgs, bad, label
        return
    print(f"simulating {args.messages} held-out frames ...", file=sys.stderr, flush=True)
    scans, clouds = simulate_messages(args.messages, args.world_seed, args.policy_seed, args.initial_pose,
                                      args.stride)
    label = (f"simulator: world seed {args.world_seed}, policy seed {args.policy_seed}, start "
             f"{tuple(args.initial_pose)}, every {args.stride} frames at 10 Hz")
    yield "scan", str(resolve_model_dir(args.scan_model, "scan")), scans, 0, label
    yield "pointcloud", str(resolve_model_dir(args.cloud_model, "pointcloud")), clouds, 0, label


def run_benchmark(args: argparse.Namespace) -> CompressionBenchmark:
    import torch

    if args.messages < 1:
        raise ConfigError(f"--messages must be >= 1, got {args.messages}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    versions = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__}
    for module, name in (("zstandard", "zstandard"), ("lz4", "lz4"), ("DracoPy", "DracoPy"),
                         ("onnxruntime", "onnxruntime"), ("scipy", "scipy")):
        try:
            versions[name] = str(__import__(module).__version__)
        except (ImportError, AttributeError):
            versions[name] = "not installed"
    bench = CompressionBenchmark(
        machine=f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".replace("  ", " "),
        versions=versions,
        settings={"messages": args.messages, "threads": args.threads, "backend": args.backend,
                  "zstd_level": ZSTD_LEVEL, "draco_bits": list(DRACO_BITS),
                  "draco_compression_level": DRACO_COMPRESSION_LEVEL, "range_steps_m": list(RANGE_STEPS_M),
                  "int8_latent": f"symmetric per dimension over the prior's +-{INT8_SIGMAS:g} sigma: "
                                 f"q = clip(round(z * 127 / {INT8_SIGMAS:g}), -127, 127)",
                  "no_return_fraction": NO_RETURN_FRACTION,
                  "range_image_rays": "vae_ros.conversions.decoded_range_image_to_points"},
    )
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(args.threads)
        for modality, model, msgs, bad, label in _iter_parts(args):
            print(f"{modality}: {len(msgs)} messages through every codec ...", file=sys.stderr, flush=True)
            bench.reports.append(benchmark_modality(modality, model, msgs, label, args.threads, args.backend,
                                                    bad, progress=not args.quiet))
    finally:
        torch.set_num_threads(threads)
    return bench


# ---------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(bench: CompressionBenchmark) -> str:
    """Each modality's codecs as a fixed-width table, then the goal's verdict."""
    lines = [f"LiDAR compression benchmark ({bench.machine}; {bench.settings['threads']} thread(s); "
             "times are medians per message)"]
    for rep in bench.reports:
        lines += ["", f"{rep.modality}: {rep.messages} messages, model {rep.model} (D={rep.latent_dim})",
                  f"  data: {rep.source}"]
        if rep.projection_chamfer_m is not None:
            lines.append(f"  projection floor (model range image, no quantisation): Chamfer "
                         f"{rep.projection_chamfer_m:.4f} m")
        lines.append(f"{'codec':<33} {'bytes/msg':>9} {'ratio':>8} {'MAE m':>7} {'RMSE m':>7} {'max m':>7} "
                     f"{'Chamfer m':>9} {'missing':>7} {'enc ms':>7} {'dec ms':>7}")
        for row in rep.results:
            lines.append(f"{row.codec:<33} {row.bytes_mean:>9.0f} {row.ratio:>7.1f}x {row.range_mae_m:>7.4f} "
                         f"{row.range_rmse_m:>7.4f} {row.range_max_abs_m:>7.3f} {_fmt(row.chamfer_m):>9} "
                         f"{row.missing_fraction * 100:>6.1f}% {row.encode_ms:>7.3f} {row.decode_ms:>7.3f}")
        for name, reason in rep.skipped.items():
            lines.append(f"{name:<33} skipped: {reason}")
        lines.append(verdict(rep))
    return "\n".join(lines)


def verdict(rep: ModalityReport) -> str:
    """The issue's goal in words: the latent's ratio against 100x, and the classic row nearest its bytes."""
    latents = [r for r in rep.results if r.family == "latent"]
    classic = [r for r in rep.results if r.family != "latent"]
    if not latents or not classic:
        return "  goal: needs latent and codec rows"

    def error(row: CodecResult) -> float:
        return float(row.chamfer_m if rep.modality == "pointcloud" and row.chamfer_m is not None
                     else row.range_mae_m)

    unit = "Chamfer" if rep.modality == "pointcloud" else "range MAE"
    best = max(latents, key=lambda r: r.ratio)
    f32 = latents[0]
    met = "meets" if best.ratio >= GOAL_RATIO else "misses"
    nearest = min(classic, key=lambda r: abs(math.log(r.bytes_mean / f32.bytes_mean)))
    relative = error(nearest) / max(error(f32), 1e-12)
    winner = ("the classic codec wins" if relative < 0.9 else "the latent wins" if relative > 1.1
              else "about even in error")
    return (f"  goal: {best.codec} is {best.ratio:.0f}x smaller than raw ({met} the {GOAL_RATIO:.0f}x goal; "
            f"f32 {f32.ratio:.0f}x). Nearest classic row in bytes: {nearest.codec}, {nearest.bytes_mean:.0f} B "
            f"vs {f32.bytes_mean:.0f} B, {unit} {error(nearest):.3f} m vs {error(f32):.3f} m: {winner}.")


def _plot_label(codec: str) -> str:
    """A short label for the plot: 'range img 20 cm, 1/16 cols + zstd' -> '20 cm 1/16', 'latent f32 (D=16)' -> 'f32'."""
    label = codec.replace("range img ", "").replace("range ", "").replace(" + zstd", "").replace(",", "")
    label = label.replace(" cols", "").replace(" beams", "").replace("raw (CDR)", "raw").replace("zstd -", "zstd")
    label = label.replace("draco ", "draco ").replace("-bit", "b")
    return label.split(" (D=")[0].replace("latent ", "")


def save_plot(bench: CompressionBenchmark, path: str | Path) -> Path:
    """Rate–distortion: bytes per message (log) against error (symlog: lossless rows sit at 0), per modality."""
    from vae_ros.core.plots import _figure, _save

    styles = {"raw": ("o", "black", "raw CDR"), "lossless": ("o", "grey", "lossless (zstd, lz4)"),
              "quantised": ("s", "tab:blue", "quantised ranges + zstd"), "draco": ("^", "tab:green", "Draco"),
              "latent": ("*", "tab:red", "VAE latent (f32, f16, int8)")}
    fig = _figure(6.5 * max(1, len(bench.reports)), 4.6)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(bench.reports))))
    for ax, rep in zip(axes, bench.reports, strict=False):
        cloud = rep.modality == "pointcloud"
        shown: set[str] = set()
        rows = sorted(rep.results, key=lambda r: r.bytes_mean)
        for row in rows:
            y = row.chamfer_m if cloud and row.chamfer_m is not None else row.range_mae_m
            marker, colour, label = styles[row.family]
            ax.scatter([row.bytes_mean], [y], marker=marker, c=colour, s=_marker_size(row.family),
                       zorder=3, label=None if label in shown else label)
            shown.add(label)
        ax.axvline(rep.raw_bytes_mean / GOAL_RATIO, ls="--", c="tab:red", alpha=0.5, lw=1,
                   label=f"raw / {GOAL_RATIO:.0f} (goal)")
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-3)
        errors = [r.chamfer_m if cloud and r.chamfer_m is not None else r.range_mae_m for r in rep.results]
        ax.set_ylim(0.0, max(max(errors), 1e-3) * 3)  # no negative errors; room for the top labels
        ax.set_xlabel("bytes per message on the wire (log)")
        ax.set_ylabel("Chamfer distance (m)" if cloud else "range MAE over valid beams (m)")
        ax.set_title(f"{'PointCloud2' if cloud else 'LaserScan'}: {rep.messages} messages, "
                     f"raw {rep.raw_bytes_mean:.0f} B")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower left")
    # Labels go on once the layout is final, each where it overlaps no other label, marker or the legend.
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    for ax, rep in zip(axes, bench.reports, strict=False):
        cloud = rep.modality == "pointcloud"
        points = [(row.bytes_mean, row.chamfer_m if cloud and row.chamfer_m is not None else row.range_mae_m)
                  for row in sorted(rep.results, key=lambda r: r.bytes_mean)]
        labels = [_plot_label(row.codec) for row in sorted(rep.results, key=lambda r: r.bytes_mean)]
        sizes = [_marker_size(row.family) for row in sorted(rep.results, key=lambda r: r.bytes_mean)]
        _place_labels(ax, points, labels, renderer, sizes)
    return _save(fig, path)


def _marker_size(family: str) -> float:
    """Scatter marker area (points^2) of a row's family: the latent rows stand out."""
    return 140.0 if family == "latent" else 45.0


# Offsets (points) tried for a label, nearest first: beside, above, below, then further out with a leader line.
_LABEL_OFFSETS = [(5, 5), (5, -12), (-5, 5), (-5, -12), (0, 10), (0, -16), (8, 0), (-8, 0), (0, 20), (0, -26),
                  (14, 14), (-14, 14), (14, -20), (-14, -20), (0, 30), (0, -36), (24, 0), (-24, 0)]


def _place_labels(ax: Any, points: Sequence[tuple[float, float]], labels: Sequence[str], renderer: Any,
                  sizes: Sequence[float]) -> None:
    """Annotate each point with its label at the first offset where the text stays inside the axes and
    overlaps no marker, no label placed before it and not the legend (the nearest offset if none is free)."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    def pad(box: Any, by: float) -> Any:
        return Bbox.from_extents(box.x0 - by, box.y0 - by, box.x1 + by, box.y1 + by)

    frame = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    taken = [legend.get_window_extent(renderer)] if legend is not None else []
    pixels = [ax.transData.transform(point) for point in points]
    for (px, py), size in zip(pixels, sizes, strict=True):
        half = 0.5 * math.sqrt(size) * ax.figure.dpi / 72.0 + 1.0  # scatter size: points^2
        taken.append(Bbox.from_extents(px - half, py - half, px + half, py + half))  # the marker
    # Points (nearly) on top of each other share one label ("zstd3, lz4, raw" where all three lose nothing).
    groups: list[list[int]] = []
    for i, (px, py) in enumerate(pixels):
        near = next((g for g in groups if any(math.hypot(px - pixels[j][0], py - pixels[j][1]) < 16.0 for j in g)),
                    None)
        if near is None:
            groups.append([i])
        else:
            near.append(i)
    merged = [(points[g[0]] if len(g) == 1 else
               tuple(ax.transData.inverted().transform(np.mean([pixels[j] for j in g], axis=0))),
               ", ".join(labels[j] for j in g)) for g in groups]
    for (x, y), text in merged:
        chosen = fallback = None
        for dx, dy in _LABEL_OFFSETS:
            far = abs(dx) > 8 or abs(dy) > 16
            note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                               ha="left" if dx > 0 else "right" if dx < 0 else "center",
                               va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                               arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5} if far else None)
            note.update_positions(renderer)
            box = pad(Text.get_window_extent(note, renderer), 1.0)  # the text alone, not its leader line
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                chosen = (note, box)
                break
            if inside and fallback is None:
                fallback = (note, box)  # the nearest inside, kept only if no free place is found
            else:
                note.remove()
        if chosen is not None and fallback is not None:
            fallback[0].remove()
        final = chosen or fallback
        if final is None:  # nowhere inside the axes: beside the point all the same
            dx, dy = _LABEL_OFFSETS[0]
            note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7)
            note.update_positions(renderer)
            final = (note, Text.get_window_extent(note, renderer))
        taken.append(final[1])


def add_arguments(parser: Any) -> None:
    """Options of the compression benchmark (an argparse parser or argument group)."""
    parser.add_argument("--scan-model", default="", metavar="DIR",
                        help="compression: scan model (default: the packaged models/scan_default)")
    parser.add_argument("--cloud-model", default="", metavar="DIR",
                        help="compression: point-cloud model (default: the packaged models/pointcloud_default)")
    parser.add_argument("--bag", default=None, metavar="PATH",
                        help="compression: measure a bag's LaserScan / PointCloud2 topic instead of the simulator")
    parser.add_argument("--topic", default=None, metavar="NAME", help="compression: the topic of --bag")
    parser.add_argument("--messages", type=int, default=200, metavar="N",
                        help="compression: messages per modality (default 200)")
    parser.add_argument("--stride", type=int, default=5, metavar="K",
                        help="compression: keep every K-th simulator frame at 10 Hz (default 5)")
    parser.add_argument("--world-seed", type=int, default=HELDOUT_WORLD_SEED, metavar="N",
                        help=f"compression: simulator world seed (default {HELDOUT_WORLD_SEED}, the models' world)")
    parser.add_argument("--policy-seed", type=int, default=HELDOUT_POLICY_SEED, metavar="N",
                        help=f"compression: exploration policy seed (default {HELDOUT_POLICY_SEED}: held out; "
                        "training used 1)")
    parser.add_argument("--initial-pose", type=float, nargs=3, default=HELDOUT_START, metavar=("X", "Y", "YAW"),
                        help="compression: simulator start pose (default 1.0 -1.0 1.57: held out)")
    parser.add_argument("--out", default="bench_compression", metavar="DIR",
                        help="compression: folder for rate_distortion.png and compression.json "
                        "(default ./bench_compression; --json overrides the JSON path)")
    parser.add_argument("--quiet", action="store_true", help="compression: no progress lines")


def add_standalone_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `vae-ros bench` already has for every target, for the stand-alone entry point."""
    parser.add_argument("--model", default="", metavar="DIR", help="model for --bag (default: packaged)")
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="CPU threads (default 1)")
    parser.add_argument("--json", default=None, metavar="PATH", help="JSON path (default OUT/compression.json)")
    parser.add_argument("--backend", default="auto", help="inference backend for the latent rows (default auto)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run with parsed arguments: print the table, write the JSON and the plot."""
    if getattr(args, "threads", None) is None:
        args.threads = 1
    if not getattr(args, "backend", None):
        args.backend = "auto"
    bench = run_benchmark(args)
    print(format_table(bench))
    out = Path(args.out)
    save_report_json(bench, args.json or out / "compression.json")
    try:
        plot = save_plot(bench, out / "rate_distortion.png")
    except OSError as err:
        raise ConfigError(f"cannot write the plot into {out}: {err}") from err
    print(f"saved {plot}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (python -m vae_ros.apps.benchmarks.compression, bench/compression.py)."""
    from vae_ros.core.errors import VaeRosError

    parser = argparse.ArgumentParser(prog="bench/compression.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    add_standalone_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except VaeRosError as err:
        print(f"bench compression: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
