"""Structured channel pruning of a VAE, a short fine-tune, and how the result compares (`vae-ros export --prune`).

Every convolution stage of the encoder and of the decoder loses the same fraction of its channels, so the
pruned model is an ordinary model of narrower `arch.channels` (model.json records them; it loads like any
other, without the original) and ONNX Runtime runs physically smaller convolutions. The latent width, the
input and the output shapes stay as they were.

Which channels go: in each stage, those whose BatchNorm-scaled filter has the smallest L2 norm,
||W_c|| * |gamma_c| / sqrt(var_c + eps): the gain of channel c once BatchNorm is folded into the convolution,
as ONNX export folds it (Li et al. 2017, "Pruning Filters for Efficient ConvNets", ranked on the folded
filter as Liu et al. 2017, "Network Slimming", rank on gamma). The decoder's first layer (a Linear whose rows
become the first feature map's channels, no BatchNorm) ranks a channel by the L2 norm of its rows and bias.
Encoder and decoder are ranked independently; the next layer keeps only the input channels that remain.

The fine-tune is core.train.train started from the pruned weights (no KL warm-up: the model is trained),
on the training data named in model.json or the data given; the held-out figures are on the validation
split of the same data (vae_ros.core.data's deterministic split), which the fine-tune never trains on.
"""

from __future__ import annotations

import copy
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_ros.core.config import ModelConfig
from vae_ros.core.errors import ConfigError, DataError, ModelFileError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vae_ros.core.models import VAE

# torch is imported inside the functions that use it, so that `vae-ros export --help` (which reads the defaults
# below) stays instant.

# Where a pruned model's model.json records its origin (inside the training summary).
PRUNED_FROM_KEY = "pruned_from"
CRITERION = "L2 norm of the BatchNorm-scaled filter, per stage (encoder and decoder ranked independently)"
DEFAULT_FINE_TUNE_EPOCHS = 3
DEFAULT_HELD_OUT = 256


def pruned_channels(channels: list[int], fraction: float) -> list[int]:
    """The widths left when each stage loses `fraction` of its channels (rounded to the nearest channel).

    ConfigError when fraction is outside (0, 1), when a stage would keep no channel, or when no stage
    would lose one (nothing to prune).
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"--prune takes the fraction of channels to remove, in (0, 1) exclusive; got {fraction:g}")
    kept = [int(c * (1 - fraction) + 0.5) for c in channels]
    for stage, (before, after) in enumerate(zip(channels, kept, strict=True)):
        if after < 1:
            raise ConfigError(f"--prune {fraction:g} would leave stage {stage} with no channel ({before} * "
                              f"{1 - fraction:g} rounds to 0; channels {channels}); use a smaller fraction")
    if kept == list(channels):
        raise ConfigError(f"--prune {fraction:g} removes no channel from any stage of channels {channels} "
                          "(rounded to whole channels); use a larger fraction")
    return kept


# -- ranking and weight surgery ------------------------------------------------------------------------------
def _conv_and_norm(stage: nn.Module) -> tuple[Any, Any]:
    """The convolution of a down/up stage and its BatchNorm (None for the decoder's output stage); typed Any: a
    Conv1d/Conv2d's weight and a BatchNorm's running_var are Tensors, which torch's stubs leave as unions."""
    from torch import nn

    convs, norms = (nn.Conv1d, nn.Conv2d), (nn.BatchNorm1d, nn.BatchNorm2d)
    conv = next(m for m in stage.children() if isinstance(m, convs))
    norm = next((m for m in stage.children() if isinstance(m, norms)), None)
    return conv, norm


def _folded_filter_norms(conv: Any, norm: Any) -> torch.Tensor:
    """(C_out,) L2 norms of conv's filters scaled by BatchNorm's gamma / sqrt(running var + eps)."""
    import torch

    weight = conv.weight.detach().flatten(1)  # (C_out, C_in * prod(kernel))
    norms = weight.norm(dim=1)
    if norm is not None:
        norms = norms * norm.weight.detach().abs() / torch.sqrt(norm.running_var.detach() + norm.eps)
    return norms


def _top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the `keep` highest scores, in their original order (ties go to the lower index)."""
    import torch

    order = torch.argsort(scores, descending=True, stable=True)[:keep]
    return torch.sort(order).values


def _copy_conv(dst: Any, src: Any, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> None:
    weight = src.weight.detach()  # (C_out, C_in, *kernel)
    bias = src.bias.detach()
    if out_idx is not None:
        weight, bias = weight[out_idx], bias[out_idx]
    if in_idx is not None:
        weight = weight[:, in_idx]
    dst.weight.copy_(weight)
    dst.bias.copy_(bias)


def _copy_norm(dst: Any, src: Any, idx: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name).detach()[idx])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def prune_model(model: VAE, fraction: float) -> VAE:
    """A new VAE (eval mode, CPU) with `fraction` of every stage's channels removed, weights copied from model.

    Its config is model's with arch.channels narrowed and an empty training summary. Latent width, input and
    output shapes are unchanged.
    """
    import torch

    from vae_ros.core.models import build_model

    src = copy.deepcopy(model).cpu().eval()
    config = copy.deepcopy(src.config)
    channels = list(config.arch.channels)
    kept = pruned_channels(channels, fraction)
    config.arch.channels = kept
    config.training = {}
    pruned = build_model(config).eval()
    enc_src, enc_dst = src.encoder, pruned.encoder
    dec_src, dec_dst = src.decoder, pruned.decoder
    with torch.no_grad():
        # Encoder: stage i keeps kept[i] of its output channels; stage i + 1 reads only those.
        in_idx: torch.Tensor | None = None
        for stage_src, stage_dst, keep in zip(enc_src.stages, enc_dst.stages, kept, strict=True):
            conv, norm = _conv_and_norm(stage_src)
            idx = _top(_folded_filter_norms(conv, norm), keep)
            conv_dst, norm_dst = _conv_and_norm(stage_dst)
            _copy_conv(conv_dst, conv, idx, in_idx)
            if norm is not None and norm_dst is not None:
                _copy_norm(norm_dst, norm, idx)
            in_idx = idx
        if in_idx is None:
            raise ConfigError("the model has no convolution stage to prune")
        # The heads read the flattened last feature map, channel-major: (C_last, prod(final spatial)).
        for head in ("fc_mu", "fc_logvar"):
            h_src, h_dst = getattr(enc_src, head), getattr(enc_dst, head)
            weight = h_src.weight.detach().view(h_src.out_features, channels[-1], -1)  # (D, C_last, S)
            h_dst.weight.copy_(weight[:, in_idx].reshape(h_dst.weight.shape))
            h_dst.bias.copy_(h_src.bias.detach())
        # Decoder: fc's rows are the first feature map's channels (C_last, S); then stages go up the levels.
        fc_src, fc_dst = dec_src.fc, dec_dst.fc
        rows = fc_src.weight.detach().view(channels[-1], -1, fc_src.in_features)  # (C_last, S, D)
        bias = fc_src.bias.detach().view(channels[-1], -1)  # (C_last, S)
        scores = torch.sqrt(rows.pow(2).sum(dim=(1, 2)) + bias.pow(2).sum(dim=1))
        in_idx = _top(scores, kept[-1])
        fc_dst.weight.copy_(rows[in_idx].reshape(fc_dst.weight.shape))
        fc_dst.bias.copy_(bias[in_idx].reshape(fc_dst.bias.shape))
        # None: the output stage keeps every output channel (the image channels or the range).
        up_widths: list[int | None] = [*reversed(kept[:-1]), None]
        for stage_src, stage_dst, width in zip(dec_src.stages, dec_dst.stages, up_widths, strict=True):
            conv, norm = _conv_and_norm(stage_src)
            conv_dst, norm_dst = _conv_and_norm(stage_dst)
            out_idx = None if width is None else _top(_folded_filter_norms(conv, norm), width)
            _copy_conv(conv_dst, conv, out_idx, in_idx)
            if norm is not None and norm_dst is not None and out_idx is not None:
                _copy_norm(norm_dst, norm, out_idx)
            if out_idx is not None:
                in_idx = out_idx
    return pruned


# -- the pipeline: prune, fine-tune, export, compare ------------------------------------------------------------
@dataclass
class PruneReport:
    """What `vae-ros export --prune` did and how the pruned model compares with the unpruned one."""

    model_dir: str
    out_dir: str
    fraction: float
    channels_before: list[int]
    channels_after: list[int]
    parameters_before: int
    parameters_after: int
    fine_tune_epochs: int
    data: dict[str, Any]
    held_out_samples: int
    # Mean ELBO per sample on the held-out samples (higher is better), with the same noise draws.
    elbo_unpruned: float
    elbo_pruned_no_fine_tune: float
    elbo_pruned: float
    # Cosine similarity of the pruned and unpruned encoders' latent means on the held-out samples.
    latent_cosine_mean: float
    latent_cosine_min: float
    latent_cosine_no_fine_tune: float
    # Batch-1 medians (ms) on ONNX Runtime: {"encoder_fp32": {"unpruned": .., "pruned": ..}, ...}
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_threads: int = 1
    latency_repeats: int = 0
    int8_cosine_to_fp32: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def speedup(self, name: str) -> float:
        """Unpruned / pruned latency of one timed graph (> 1: the pruned one is faster)."""
        times = self.latency_ms[name]
        return times["unpruned"] / times["pruned"]

    def format_table(self) -> str:
        """The report as the CLI prints it."""
        lines = [
            f"pruned {self.model_dir} -> {self.out_dir}: {self.fraction:g} of the channels of every stage removed",
            f"  channels {self.channels_before} -> {self.channels_after}, parameters "
            f"{self.parameters_before:,} -> {self.parameters_after:,} "
            f"({self.parameters_after / self.parameters_before:.2f}x)",
            f"  fine-tuned {self.fine_tune_epochs} epoch(s) on {_data_label(self.data)}; "
            f"held out: {self.held_out_samples} samples of its validation split",
            "",
            f"  {'':<30} {'unpruned':>10} {'pruned':>10} {'ratio':>7}",
        ]
        for name, label in (("encoder_fp32", "encoder ONNX Runtime FP32 ms"), ("encoder_int8", "encoder ONNX Runtime INT8 ms"),
                            ("decoder_fp32", "decoder ONNX Runtime FP32 ms")):
            if name in self.latency_ms:
                times = self.latency_ms[name]
                lines.append(f"  {label:<30} {times['unpruned']:>10.3f} {times['pruned']:>10.3f} "
                             f"{self.speedup(name):>6.2f}x")
        lines += [
            f"  {'ELBO (held out, per sample)':<30} {self.elbo_unpruned:>10.2f} {self.elbo_pruned:>10.2f}"
            f"   (pruned without fine-tune: {self.elbo_pruned_no_fine_tune:.2f})",
            f"  {'latent cosine to unpruned':<30} {1.0:>10.4f} {self.latent_cosine_mean:>10.4f}"
            f"   (min {self.latent_cosine_min:.4f}; without fine-tune: {self.latent_cosine_no_fine_tune:.4f})",
            f"  latency: batch 1, median of {self.latency_repeats} interleaved runs, "
            f"{self.latency_threads} thread(s); ratio = unpruned / pruned",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _data_label(data: dict[str, Any]) -> str:
    if data.get("kind") == "images":
        return f"images in {data.get('path')}"
    return f"{data.get('path')} {data.get('topic', '')}".strip()


def fine_tune_config(config: ModelConfig, epochs: int, lr: float | None, device: str = "cpu") -> Any:
    """The TrainConfig of a fine-tune: the original run's batch, learning rate, beta, free bits, validation
    split and seed (where model.json records them; TrainConfig's defaults otherwise), no KL warm-up, `epochs`,
    and `lr` unless None.

    The original learning rate, not a smaller one: a structured cut is a large change, and on the packaged scan
    model (half the channels, 2 epochs) 1e-3 brought the held-out ELBO from -4468 to -965, 3e-4 to -5458."""
    from vae_ros.core.train import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    recorded = config.training.get("train_config")
    base = {k: v for k, v in recorded.items() if k in known} if isinstance(recorded, dict) else {}
    try:
        tc = TrainConfig(**base)
    except TypeError:
        tc = TrainConfig()
    tc.epochs, tc.device = epochs, device
    if lr is not None:
        tc.lr = lr
    tc.kl_annealing, tc.warmup_steps = "none", 0
    return tc


def _resolve_source(config: ModelConfig, bag: str | None, topic: str | None, images: str | None) -> Any:
    from vae_ros.core.export import open_training_source

    source = open_training_source(config, bag, topic, images, "pruning fine-tunes on the model's training data")
    source.check_modality(config)
    return source


def _check_paths(model_dir: Path, out_dir: str | Path | None) -> Path:
    from vae_ros.core.fused import is_fused_model

    if out_dir is None:
        raise ConfigError("--prune writes a new model directory and never changes --model in place: pass --out DIR")
    if is_fused_model(model_dir):
        raise ConfigError(f"{model_dir} is a fused model; --prune takes one sensor's model directory (its camera "
                          "expert is fitted to the LiDAR latent, which an ELBO fine-tune would undo)")
    out = Path(out_dir)
    if out.resolve() == model_dir.resolve():
        raise ConfigError("--out must be a new directory, not --model itself: pruning rewrites the weights")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty directory; choose a new one (pruning never "
                          "overwrites a model)")
    return out


def _held_out(source: Any, config: ModelConfig, limit: int, val_percent: float) -> np.ndarray:
    from vae_ros.core.data import iter_samples

    shape = tuple(config.input_shape)
    samples = list(iter_samples(source, config, limit=limit, split="val", val_percent=val_percent))
    if not samples:
        raise DataError(f"{source.label()} has no sample in its validation split ({val_percent}%) to compare the "
                        "models on; give more data")
    return np.stack(samples).astype(np.float32).reshape(-1, *shape)


def _elbo(model: VAE, samples: np.ndarray, seed: int = 0) -> float:
    import torch

    from vae_ros.core.data import batched
    from vae_ros.core.evaluate import evaluate_batches

    with torch.no_grad():
        result, _ = evaluate_batches(model, batched(iter(samples), 64), "cpu", seed=seed)
    return float(result.elbo)


def _means(model: VAE, samples: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([model.eval().encode(torch.from_numpy(samples[i:i + 64]))[0].numpy()
                               for i in range(0, len(samples), 64)])  # (N, D)


def latent_cosines(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(N,) cosine similarity of each row of other (N, D) to the same row of reference (N, D)."""
    ref, got = reference.astype(np.float64), other.astype(np.float64)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    return np.asarray(np.sum(ref * got, axis=1) / np.maximum(norms, 1e-12))


def time_sessions(sessions: dict[str, Any], inputs: dict[str, dict[str, np.ndarray]], repeats: int,
                  warmup: int = 20) -> dict[str, float]:
    """Median ms of one run of each ONNX Runtime session on its input, timed in interleaved rounds (one run of
    each per round) so that the machine's load hits them alike."""
    for name, session in sessions.items():
        for _ in range(warmup):
            session.run(None, inputs[name])
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(repeats):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, inputs[name])
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def _export_both(directory: Path, calibration: np.ndarray, held_out: np.ndarray, min_cosine: float) -> float:
    """encoder.onnx, decoder.onnx and encoder.int8.onnx into directory; the INT8 encoder's cosine to FP32."""
    from vae_ros.core.export import export_onnx, quantize_int8

    export_onnx(directory)
    return quantize_int8(directory, calibration, held_out, min_cosine).figures["cosine_mean"]


def _latencies(unpruned: Path, pruned: Path, config: ModelConfig, repeats: int, threads: int) -> dict[str, dict[str, float]]:
    from vae_ros.core.backends import open_onnx_session
    from vae_ros.core.export import example_inputs
    from vae_ros.core.model_dir import DECODER_ONNX, ENCODER_INT8_ONNX, ENCODER_ONNX

    x = {"input": example_inputs(config, 1, seed=7)}  # (1, *input_shape)
    z = {"latent": np.zeros((1, config.latent_dim), dtype=np.float32)}
    graphs = {"encoder_fp32": (ENCODER_ONNX, x), "encoder_int8": (ENCODER_INT8_ONNX, x), "decoder_fp32": (DECODER_ONNX, z)}
    sessions, inputs = {}, {}
    for graph, (file, feed) in graphs.items():
        for which, directory in (("unpruned", unpruned), ("pruned", pruned)):
            sessions[f"{graph}/{which}"] = open_onnx_session(directory / file, threads=threads)
            inputs[f"{graph}/{which}"] = feed
    medians = time_sessions(sessions, inputs, repeats)
    out: dict[str, dict[str, float]] = {}
    for key, value in medians.items():
        graph, which = key.split("/")
        out.setdefault(graph, {})[which] = value
    return out


def prune_model_dir(model_dir: str | Path, out_dir: str | Path | None, fraction: float, *,
                    bag: str | None = None, topic: str | None = None, images: str | None = None,
                    epochs: int = DEFAULT_FINE_TUNE_EPOCHS, lr: float | None = None,
                    held_out: int = DEFAULT_HELD_OUT, calib_samples: int = 256, min_cosine: float = 0.99,
                    repeats: int = 200, threads: int = 1, progress: bool = True, device: str = "cpu",
                    say: Any = print) -> PruneReport:
    """Prune model_dir's VAE by `fraction` into the new model directory out_dir, fine-tune it for `epochs`
    (0: none), export it (encoder.onnx, decoder.onnx, encoder.int8.onnx) and compare it with the unpruned
    model: ELBO and latent cosine on held-out samples, ONNX Runtime FP32 / INT8 batch-1 latency measured in
    the same run. out_dir is assembled beside its final name and renamed into place when all of it worked.
    """
    from vae_ros.core.backends import weights_digest
    from vae_ros.core.data import iter_samples
    from vae_ros.core.export import prepare_out_dir
    from vae_ros.core.model_dir import SERVO_HEAD_FILE, load_model_dir, save_model_dir
    from vae_ros.core.models import parameter_count
    from vae_ros.core.train import CHECKPOINT_DIR, train

    src = Path(model_dir)
    out = _check_paths(src, out_dir)
    if epochs < 0:
        raise ConfigError(f"--fine-tune-epochs must be >= 0, got {epochs}")
    if lr is not None and not lr > 0:
        raise ConfigError(f"--fine-tune-lr must be > 0, got {lr}")
    if held_out < 1 or repeats < 1 or threads < 1:
        raise ConfigError("held-out samples, timing repeats and threads must be >= 1")
    config, original = load_model_dir(src)
    pruned_channels(list(config.arch.channels), fraction)  # bad fractions fail before any data is read
    source = _resolve_source(config, bag, topic, images)
    tc = fine_tune_config(config, epochs, lr, device)
    held = _held_out(source, config, held_out, tc.val_percent)
    say(f"pruning {fraction:g} of the channels of {src} (held out: {len(held)} samples of {source.label()})")
    pruned = prune_model(original, fraction)
    elbo_unpruned = _elbo(original, held)
    means_unpruned = _means(original, held)
    elbo_no_fine_tune = _elbo(pruned, held)
    cosine_no_fine_tune = float(latent_cosines(means_unpruned, _means(pruned, held)).mean())

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        work = staging / "model"
        if epochs > 0:
            say(f"fine-tuning {epochs} epoch(s) at lr {tc.lr:g} on {source.label()}")
            train(source, pruned.config, tc, work, progress=progress, init_state=pruned.state_dict())
            shutil.rmtree(work / CHECKPOINT_DIR, ignore_errors=True)
            pruned_config, tuned = load_model_dir(work)
        else:
            pruned_config, tuned = copy.deepcopy(pruned.config), pruned
            pruned_config.training = copy.deepcopy(config.training)
            pruned_config.training.pop("history", None)
        pruned_config.training[PRUNED_FROM_KEY] = {
            "model": str(src), "weights_sha256": weights_digest(src), "fraction": fraction,
            "channels": list(config.arch.channels), "criterion": CRITERION, "fine_tune_epochs": epochs,
            "fine_tune_lr": tc.lr, "fine_tune_data": source.describe(),
        }
        save_model_dir(work, pruned_config, tuned)
        means_pruned = _means(tuned, held)
        cosines = latent_cosines(means_unpruned, means_pruned)
        elbo_pruned = _elbo(tuned, held)

        say("exporting both models to ONNX and INT8 and timing them")
        samples = list(iter_samples(source, config, limit=calib_samples, split="train", val_percent=tc.val_percent))
        if not samples:
            raise DataError(f"{source.label()} has no sample in its training split to calibrate INT8 on")
        calibration = np.stack(samples).astype(np.float32)
        reference = staging / "unpruned"
        prepare_out_dir(src, reference)
        _export_both(reference, calibration, held, 0.0)  # only timed: its INT8 agreement is not this run's business
        int8_cosine = _export_both(work, calibration, held, min_cosine)
        latency = _latencies(reference, work, config, repeats, threads)
        if out.exists():
            out.rmdir()  # empty (checked above)
        work.rename(out)
    except OSError as err:
        raise ModelFileError(f"cannot write the pruned model into {out}: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    notes = []
    if (src / SERVO_HEAD_FILE).is_file():
        notes.append(f"{src} is a control model: its servo head and world model were fitted to the unpruned "
                     f"latent and are not copied into {out}; refit them on the pruned model before servoing with it")
    return PruneReport(
        model_dir=str(src), out_dir=str(out), fraction=fraction, channels_before=list(config.arch.channels),
        channels_after=list(pruned_config.arch.channels), parameters_before=parameter_count(original),
        parameters_after=parameter_count(tuned), fine_tune_epochs=epochs, data=source.describe(),
        held_out_samples=len(held), elbo_unpruned=elbo_unpruned, elbo_pruned_no_fine_tune=elbo_no_fine_tune,
        elbo_pruned=elbo_pruned, latent_cosine_mean=float(cosines.mean()), latent_cosine_min=float(cosines.min()),
        latent_cosine_no_fine_tune=cosine_no_fine_tune, latency_ms=latency, latency_threads=threads,
        latency_repeats=repeats, int8_cosine_to_fp32=int8_cosine, notes=notes,
    )
