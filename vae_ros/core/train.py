"""The training loop: streamed data, validation every epoch, best model kept, seeded, resumable.

Over 500 lines: the loop, its checkpoint (resume) and its distributed set-up are one run's state.

out_dir becomes a model directory: model.json + weights.safetensors of the epoch with the best validation
ELBO (rewritten at each improvement, with the training summary in model.json), training_curves.png, and
checkpoint/ holding the last completed epoch (model + optimizer state as safetensors, the rest as JSON;
nothing is ever pickled). Resuming continues with the epoch after the last completed one and reproduces an
uninterrupted run: the model is initialised from the seed, and every epoch reseeds torch and the shuffle
from (seed, epoch), so no random state has to be carried over.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae_ros.core.config import ModelConfig
from vae_ros.core.data import DataSource, SplitDataset, batched, make_loader
from vae_ros.core.distributed import SINGLE, Distributed
from vae_ros.core.errors import (
    BackendUnavailableError,
    ConfigError,
    DataError,
    ModelFileError,
    TrainingDivergedError,
)
from vae_ros.core.evaluate import EvalResult, evaluate_batches
from vae_ros.core.losses import ANNEALING_KINDS, KLAnnealing, vae_loss
from vae_ros.core.model_dir import (
    CONFIG_FILE,
    EXPORT_DIRS,
    EXPORT_FILES,
    SERVO_HEAD_FILE,
    WEIGHTS_FILE,
    load_model_dir,
    save_model_dir,
)
from vae_ros.core.models import VAE, build_model, parameter_count
from vae_ros.core.train_speed import (
    PRECISIONS,
    as_input,
    autocast,
    cached_batches,
    channels_last_applies,
    compile_error,
    compile_module,
    is_compile_failure,
    place_cached,
)

LOG = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_TENSORS = "state.safetensors"
CHECKPOINT_META = "state.json"
CURVES_FILE = "training_curves.png"
CHECKPOINT_FORMAT = 1
# Steps between reads of the training loop's device tensors (finite-loss check, progress): each read waits for
# the GPU to finish every step queued before it.
HOST_READ_EVERY = 50
# Seconds between redraws of training_curves.png (matplotlib takes about half a second): every epoch on a slow run,
# every few on a fast one, and always after the last, so drawing stays a small share of the epochs.
PLOT_EVERY_S = 30.0
# What a training run writes into out_dir (the CLI's --force removes exactly these, plus exports).
ARTIFACTS = (CONFIG_FILE, WEIGHTS_FILE, CURVES_FILE, CHECKPOINT_DIR, "metrics.json", SERVO_HEAD_FILE,
             *EXPORT_FILES, *EXPORT_DIRS)


@dataclass
class TrainConfig:
    """Optimisation settings (the model itself is the ModelConfig given to train)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 1.0
    kl_annealing: str = "linear"
    warmup_steps: int = 1000
    free_bits: float = 0.0
    val_percent: float = 10.0
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    shuffle_buffer: int = 1024
    cache_mb: float = 2048.0  # RAM for preprocessed samples, both splits together (0 = always stream)
    grad_clip: float = 100.0  # max gradient norm (0 = off); guards against early KL/NLL spikes
    precision: str = "fp32"  # 'fp32' or 'bf16' (autocast of the forward pass; core.train_speed)
    channels_last: bool = False  # models with 2-D convolutions in the channels_last layout
    compile: bool = False  # torch.compile the model

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch size must be >= 2 (BatchNorm needs two samples), got {self.batch_size}"),
            (math.isfinite(self.lr) and self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.beta >= 0, f"beta must be >= 0, got {self.beta}"),
            (self.kl_annealing in ANNEALING_KINDS,
             f"KL annealing must be one of {ANNEALING_KINDS}, got {self.kl_annealing!r}"),
            (self.warmup_steps >= 0, f"warm-up steps must be >= 0, got {self.warmup_steps}"),
            (self.free_bits >= 0, f"free bits must be >= 0, got {self.free_bits}"),
            (0 < self.val_percent < 100, f"validation percent must be in (0, 100), got {self.val_percent}"),
            (self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}"),
            (self.shuffle_buffer >= 1, f"shuffle buffer must be >= 1, got {self.shuffle_buffer}"),
            (self.cache_mb >= 0, f"cache size must be >= 0 MB, got {self.cache_mb}"),
            (self.grad_clip >= 0, f"gradient clip must be >= 0, got {self.grad_clip}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


# Model-config overrides that TrainConfig once carried (unused: the CLI builds the ModelConfig itself).
# Checkpoints written before they went still name them; their effect is already in the saved model config.
_DROPPED_FIELDS = ("latent_dim", "arch_channels", "likelihood", "image_size", "image_channels")


def select_device(device: str) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' -> torch.device; a clear error when CUDA is asked for but absent."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from err
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else " is a CPU-only build")
        raise BackendUnavailableError(f"--device {device} asked for, but CUDA is not available here ({build}); "
                                      "use --device cpu")
    return dev


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**63)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- checkpoints ------------------------------------------------------------------------------------------
def save_checkpoint(directory: Path, model: VAE, optimizer: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    """Write model + optimizer state (safetensors, optimizer state flattened) and meta (JSON) atomically:
    assembled in a sibling folder, then swapped in, so a crash leaves the previous checkpoint intact."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for param_id, state in opt_state["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{param_id}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{param_id}.{name}"] = value
    meta = dict(meta, format=CHECKPOINT_FORMAT,
                optimizer={"param_groups": opt_state["param_groups"], "scalars": scalars})
    from safetensors.torch import save_file

    staging = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        save_file(tensors, str(staging / CHECKPOINT_TENSORS))
        (staging / CHECKPOINT_META).write_text(json.dumps(meta, indent=1) + "\n")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(directory, old)
        os.rename(staging, directory)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        raise ModelFileError(f"cannot write the training checkpoint {directory}: {err}") from err


@dataclass
class Checkpoint:
    """What save_checkpoint wrote: tensors by kind and the JSON meta."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    meta: dict[str, Any]


def load_checkpoint(directory: Path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint (safetensors + JSON only; never unpickles)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not (directory / CHECKPOINT_META).is_file():
        old = directory.with_name(directory.name + ".old")
        if (old / CHECKPOINT_META).is_file():  # a crash between the two renames of save_checkpoint
            directory = old
        else:
            raise ModelFileError(f"no training checkpoint in {directory} to resume from; train without "
                                 "--resume (use --force to overwrite the output folder)")
    try:
        meta = json.loads((directory / CHECKPOINT_META).read_text())
        tensors = load_file(str(directory / CHECKPOINT_TENSORS))
    except (OSError, ValueError, SafetensorError) as err:
        raise ModelFileError(f"the training checkpoint in {directory} is unreadable: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"the training checkpoint in {directory} has an unknown format")
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    per_param: dict[int, dict[str, Any]] = {}
    try:
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, param_id, name = key.split(".", 2)
                per_param.setdefault(int(param_id), {})[name] = value
        for key, value in meta["optimizer"]["scalars"].items():
            param_id, name = key.split(".", 1)
            per_param.setdefault(int(param_id), {})[name] = value
        optimizer_state = {"state": per_param, "param_groups": meta["optimizer"]["param_groups"]}
    except (KeyError, ValueError) as err:
        raise ModelFileError(f"the training checkpoint in {directory} is inconsistent: {err}") from err
    return Checkpoint(model_state, optimizer_state, meta)


# -- the loop ---------------------------------------------------------------------------------------------
def _metrics_of(result: EvalResult, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {f"{prefix}_elbo": result.elbo, f"{prefix}_recon_nll": result.recon_nll, f"{prefix}_kl": result.kl}
    if result.psnr_db is not None:
        out[f"{prefix}_mse"] = result.mse
        out[f"{prefix}_psnr_db"] = result.psnr_db
    if result.range_mae_m is not None:
        out[f"{prefix}_range_mae_m"] = result.range_mae_m
        out[f"{prefix}_range_rmse_m"] = result.range_rmse_m
    return out


def _epoch_line(record: dict[str, Any], epochs: int, improved: bool) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}", f"train ELBO {record['train_elbo']:.2f}",
             f"val ELBO {record['val_elbo']:.2f}", f"recon {record['val_recon_nll']:.2f}",
             f"KL {record['val_kl']:.2f}"]
    if "val_psnr_db" in record:
        parts.append(f"PSNR {record['val_psnr_db']:.2f} dB")
    if "val_range_mae_m" in record:
        parts.append(f"range MAE {record['val_range_mae_m']:.3f} m")
    return " | ".join(parts) + ("  * best" if improved else "")


@dataclass
class RunState:
    """What the loop carries from epoch to epoch, and what a checkpoint restores."""

    started: float  # time.monotonic() at the start of this process's run
    step: int = 0
    epoch: int = 0  # the last completed epoch
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: dict[str, Any] | None = None
    elapsed_before: float = 0.0  # seconds spent by the runs this one resumes
    samples: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"train": None, "val": None, "skipped": 0})
    # Seconds of this process's run spent on each part of the epochs (rank 0): the steps, and the upkeep around
    # them, which should stay cheap against the steps.
    seconds: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(("train", "validate", "save", "checkpoint", "plots"), 0.0))
    plotted_at: float = -math.inf  # time.monotonic() of the last drawing of the curves


def train(source: DataSource, model_config: ModelConfig, train_config: TrainConfig, out_dir: str | Path,
          resume: bool = False, progress: bool = True, dist: Distributed = SINGLE,
          init_state: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Train a VAE on source into the model directory out_dir; return the training summary (also in
    model.json under "training").

    resume: continue from out_dir/checkpoint with the model and optimisation settings stored there;
    only epochs (to extend a run), device and cache_mb are taken from train_config.
    dist: this process's place under torchrun (the process group already initialised). Each process trains
    on its share of the data with batch_size / world_size samples a step (the batch stays global, so the
    results do not depend on the number of processes); rank 0 validates, writes and logs, and alone
    returns the summary (the others return {}).
    init_state: weights to start from instead of the seed's initialisation (fine-tuning a pruned model,
    vae_ros.core.prune); ignored when resuming, whose checkpoint holds the weights.
    """
    run = RunState(started=time.monotonic())
    out = Path(out_dir)
    tc, config, checkpoint = _settings(model_config, train_config, out / CHECKPOINT_DIR, resume, dist)
    source.check_modality(config)
    device = select_device(dist.device_name(tc.device))
    if dist.is_main:
        _make_folder(out)

    _seed_everything(tc.seed)
    model = build_model(config).to(device)
    if init_state is not None and checkpoint is None:
        model.load_state_dict(init_state, strict=True)
    if channels_last_applies(model, tc.channels_last):
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr)
    if checkpoint is not None:
        _restore(checkpoint, model, optimizer, run, source, out / CHECKPOINT_DIR)
    train_set, val_set = _datasets(source, config, tc, dist)
    feed = _Feed(train_set, val_set, tc.batch_size // dist.world_size, tc, device)
    step_model = dist.wrap(model, device)
    if tc.compile:
        step_model = compile_module(step_model)  # the weights stay `model`'s: saved and validated uncompiled
    annealing = KLAnnealing(kind=tc.kl_annealing, warmup_steps=tc.warmup_steps)
    say = _say(progress and dist.is_main)
    if checkpoint is not None:
        say(f"resuming {out} after epoch {run.epoch} (step {run.step})")

    for epoch in range(run.epoch + 1, tc.epochs + 1):
        # Rank 0 draws what a single process draws; the others draw their own reparameterisation noise.
        torch.manual_seed((_epoch_seed(tc.seed, epoch) + dist.rank) % 2**63)
        train_set.set_epoch(epoch)
        started = time.perf_counter()
        batches, usable = feed.train_batches()
        # From the cache every process knows its batches: agree on the step count once, not at every step.
        steps = dist.min_int(usable, device) if usable is not None else None
        bar = _progress_bar(batches, train_set, source, tc, epoch, dist) if progress and dist.is_main else None
        try:
            local = train_epoch(step_model, optimizer, batches, bar, annealing, run, config, tc, epoch, device, dist,
                                steps=steps)
        except Exception as err:
            if tc.compile and is_compile_failure(err):
                raise compile_error(err) from err
            raise
        totals = _epoch_totals(local, train_set, source, dist, device)
        run.epoch = epoch
        run.seconds["train"] += time.perf_counter() - started
        if dist.is_main:
            _upkeep(out, model, optimizer, feed, totals, run, config, source, tc, annealing, device, say)
        dist.barrier(device)

    if not dist.is_main:
        return {}
    # The best epoch's weights are on disk; reload them (this also proves the directory loads) and
    # record the final summary beside them.
    best_config, best_model = load_model_dir(out, device="cpu")
    best_config.training = _summary(run, source, model, tc, device)
    save_model_dir(out, best_config, best_model)
    return best_config.training


class _Feed:
    """Where an epoch's batches come from: the data loader while a split streams from disk (its first pass, or
    every pass when it does not fit the cache), then the split's cached tensor, placed once where the steps run
    (core.train_speed.place_cached) and indexed in the order the loader would have given."""

    def __init__(self, train_set: SplitDataset, val_set: SplitDataset, batch_size: int, tc: TrainConfig,
                 device: torch.device) -> None:
        self.train_set, self.val_set, self.batch_size, self.tc, self.device = train_set, val_set, batch_size, tc, device
        self.loader = make_loader(train_set, batch_size, tc.num_workers, pin_memory=device.type == "cuda")
        self._placed: dict[str, torch.Tensor] = {}

    def _placed_cache(self, split: SplitDataset) -> torch.Tensor | None:
        if split.cache is None:
            return None
        if split.split not in self._placed:
            self._placed[split.split] = place_cached(split.cache, self.device)
        return self._placed[split.split]

    def train_batches(self) -> tuple[Any, int | None]:
        """(this epoch's batches, how many of them can train: None while streaming, where it is not known)"""
        cache, order = self._placed_cache(self.train_set), self.train_set.epoch_order()
        if cache is None or order is None:
            return self.loader, None
        # The loader's iterator draws its base seed from torch's generator; draw it here too, so the
        # reparameterisation noise, and with it the run's history, stays what it was with the loader.
        torch.empty((), dtype=torch.int64).random_()
        full, rest = divmod(len(order), self.batch_size)
        return cached_batches(cache, order, self.batch_size, self.device), full + (rest >= 2)

    def val_batches(self) -> Any:
        cache = self._placed_cache(self.val_set)
        if cache is None:
            return batched(iter(self.val_set), self.tc.batch_size)
        return cached_batches(cache, np.arange(cache.shape[0]), self.tc.batch_size, self.device)


def _upkeep(out: Path, model: VAE, optimizer: torch.optim.Optimizer, feed: _Feed, totals: dict[str, float],
            run: RunState, config: ModelConfig, source: DataSource, tc: TrainConfig, annealing: KLAnnealing,
            device: torch.device, say: Callable[[str], None]) -> None:
    """Rank 0 after each epoch: validation, the best model, the checkpoint and the curves, each timed."""
    clock = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        run.seconds[part] += now - clock
        clock = now

    record, improved = _validate(model, feed, totals, run, source, tc, annealing, device)
    lap("validate")
    if improved:
        config.training = _summary(run, source, model, tc, device)
        save_model_dir(out, config, model)
    lap("save")
    _save_checkpoint(out, model, optimizer, run, config, tc, source)
    lap("checkpoint")
    if run.epoch == tc.epochs or time.monotonic() - run.plotted_at >= PLOT_EVERY_S:
        from vae_ros.core import plots

        plots.save_training_curves(run.history, out / CURVES_FILE)
        run.plotted_at = time.monotonic()
    lap("plots")
    say(_epoch_line(record, tc.epochs, improved))


def _settings(model_config: ModelConfig, train_config: TrainConfig, ckpt_dir: Path, resume: bool,
              dist: Distributed) -> tuple[TrainConfig, ModelConfig, Checkpoint | None]:
    """This run's training and model settings: from the arguments, or from the checkpoint when resuming."""
    train_config.validate()
    checkpoint: Checkpoint | None = None
    if resume:
        checkpoint = load_checkpoint(ckpt_dir)
        try:
            config = ModelConfig.from_dict(checkpoint.meta["model_config"])
            saved = TrainConfig(**{k: v for k, v in checkpoint.meta["train_config"].items()
                                   if k not in _DROPPED_FIELDS})
        except (KeyError, TypeError) as err:
            raise ModelFileError(f"the training checkpoint in {ckpt_dir} is inconsistent: {err}") from err
        # How to run (not what to compute) comes from this command: a run may resume on another machine.
        tc = dataclasses.replace(saved, epochs=train_config.epochs, device=train_config.device,
                                 cache_mb=train_config.cache_mb, precision=train_config.precision,
                                 channels_last=train_config.channels_last, compile=train_config.compile)
        tc.validate()
    else:
        tc = train_config
        config = copy.deepcopy(model_config)
        config.training = {}  # this run writes its own summary
        config.validate()
    if tc.batch_size % dist.world_size or tc.batch_size // dist.world_size < 2:
        raise ConfigError(f"the batch size ({tc.batch_size}) is shared by the {dist.world_size} processes: it must "
                          f"be a multiple of {dist.world_size}, at least {2 * dist.world_size}")
    return tc, config, checkpoint


def _make_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output folder {out}: {err}") from err


def _restore(checkpoint: Checkpoint, model: VAE, optimizer: torch.optim.Optimizer, run: RunState, source: DataSource,
             ckpt_dir: Path) -> None:
    """Model, optimizer and loop state from the checkpoint (every process reads it: --out must be shared)."""
    try:
        model.load_state_dict(checkpoint.model_state, strict=True)
        optimizer.load_state_dict(checkpoint.optimizer_state)
        meta = checkpoint.meta
        run.step, run.epoch = int(meta["step"]), int(meta["epoch"])
        run.history, run.best = list(meta["history"]), meta.get("best")
        run.elapsed_before = float(meta.get("elapsed_s", 0.0))
        run.samples = dict(meta.get("samples", run.samples))
        if meta.get("source") != source.describe():
            LOG.warning("resuming on %s, but the checkpoint was trained on %s", source.describe(),
                        meta.get("source"))
    except (KeyError, RuntimeError, ValueError) as err:
        raise ModelFileError(f"the training checkpoint in {ckpt_dir} does not match its model: {err}") from err


def _datasets(source: DataSource, config: ModelConfig, tc: TrainConfig,
              dist: Distributed) -> tuple[SplitDataset, SplitDataset]:
    """The train split (this process's share, shuffled) and the whole validation split (used by rank 0)."""
    cache_bytes = int(tc.cache_mb * 2**20)
    train_set = SplitDataset(source, config, "train", tc.val_percent, shuffle=True,
                             shuffle_buffer=tc.shuffle_buffer, seed=tc.seed,
                             cache_bytes=int(cache_bytes * (100 - tc.val_percent) / 100),
                             process=(dist.rank, dist.world_size))
    val_set = SplitDataset(source, config, "val", tc.val_percent, shuffle=False,
                           cache_bytes=int(cache_bytes * tc.val_percent / 100))
    return train_set, val_set


def _say(progress: bool) -> Callable[[str], None]:
    """Where epoch lines go: above the progress bar, or to the log."""
    if not progress:
        return LOG.info
    from tqdm import tqdm

    def write(line: str) -> None:
        tqdm.write(line, file=sys.stderr)

    return write


def _progress_bar(loader: Any, train_set: SplitDataset, source: DataSource, tc: TrainConfig, epoch: int,
                  dist: Distributed) -> Any:
    from tqdm import tqdm

    expected = train_set.samples_last_pass
    if expected is None:
        expected = round(len(source) * (100 - tc.val_percent) / 100 / dist.world_size)
    return tqdm(loader, total=max(1, math.ceil(expected * dist.world_size / tc.batch_size)), unit="batch",
                desc=f"epoch {epoch}/{tc.epochs}", leave=False, dynamic_ncols=True, file=sys.stderr)


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: Any, bar: Any,
                annealing: KLAnnealing, run: RunState, config: ModelConfig, tc: TrainConfig, epoch: int,
                device: torch.device, dist: Distributed, steps: int | None = None) -> dict[str, float]:
    """One pass over this process's share of the training split; sums of the ELBO terms over its samples.

    The processes step together: when one has no batch left, all stop, and each finishes reading its share
    without training on the rest (at most a batch or two: the shares differ by a few samples). steps: the
    number of steps all processes agreed on beforehand (from the cache), else each step asks the others.
    """
    model.train()
    # Running sums, the finite-loss check and the progress figure stay on the device and are read every
    # HOST_READ_EVERY steps and at the end: reading a CUDA tensor each step (float(), .item(), `if tensor`)
    # makes the CPU wait for the GPU, which then idles while the CPU prepares the next step.
    seen = 0
    term_sums = torch.zeros(3, dtype=torch.float64, device=device)  # elbo, recon_nll, kl, weighted by batch size
    first_bad = torch.full((2,), -1.0, dtype=torch.float64, device=device)  # (step, loss) of the first non-finite
    step_on_device = torch.tensor(float(run.step), dtype=torch.float64, device=device)  # run.step, not read back
    iterator = iter(bar if bar is not None else loader)
    taken = 0
    while steps is None or taken < steps:
        batch = next(iterator, None)
        # BatchNorm cannot train on one sample; only a last batch can be this small.
        if steps is None and not dist.all_true(batch is not None and batch.shape[0] >= 2, device) or batch is None:
            break
        x = as_input(batch.to(device, non_blocking=True), tc.channels_last)  # (B, *input_shape)
        with autocast(device, tc.precision):
            logits, mu, logvar = model(x)
        # The loss in float32 whatever the forward pass ran in (no-ops in fp32).
        terms = vae_loss(logits.float(), x, mu.float(), logvar.float(), config,
                         beta=tc.beta * annealing.weight(run.step), free_bits=tc.free_bits)
        loss = terms.loss.detach()
        bad = (first_bad[0] < 0) & ~torch.isfinite(loss)
        first_bad = torch.where(bad, torch.stack([step_on_device, loss.double()]), first_bad)
        optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        run.step += 1
        step_on_device += 1
        taken += 1
        size = x.shape[0]
        seen += size
        term_sums += torch.stack([terms.elbo, terms.recon_nll, terms.kl]).detach().double() * size
        if taken % HOST_READ_EVERY == 0:
            _raise_if_diverged(first_bad, epoch, tc)
            if bar is not None:
                bar.set_postfix(elbo=f"{float(terms.elbo):.1f}", refresh=False)
    _raise_if_diverged(first_bad, epoch, tc)
    elbo, recon_nll, kl = term_sums.tolist()
    sums = {"seen": float(seen), "elbo": elbo, "recon_nll": recon_nll, "kl": kl}
    for _ in iterator:  # complete the pass (sample counts, RAM cache)
        pass
    if bar is not None:
        bar.close()
    return sums


def _raise_if_diverged(first_bad: torch.Tensor, epoch: int, tc: TrainConfig) -> None:
    """TrainingDivergedError when a loss of this epoch was NaN or infinite (first_bad: its step and value)."""
    step, loss = first_bad.tolist()  # one host read for both
    if step >= 0:
        raise TrainingDivergedError(f"training diverged: the loss became {loss} at epoch {epoch}, step {int(step)}; "
                                    f"lower --lr (now {tc.lr})")


def _epoch_totals(local: dict[str, float], train_set: SplitDataset, source: DataSource, dist: Distributed,
                  device: torch.device) -> dict[str, float]:
    """Training sums and pass counts over all processes (every process calls this: it is a collective)."""
    known = train_set.samples_last_pass is not None  # None with loader workers: they count in their copies
    keys = ["seen", "elbo", "recon_nll", "kl"]
    values = [local[k] for k in keys] + [train_set.samples_last_pass or 0, train_set.stats.skipped]
    summed = dict(zip([*keys, "passed", "skipped"], dist.sum(values, device), strict=True))
    if summed["seen"] == 0:
        raise DataError(f"{source.label()} gave no training samples ({int(summed['skipped'])} could not be "
                        f"decoded; first: {train_set.stats.first_error or 'none'})")
    summed["known"] = float(known)
    return summed


def _validate(model: VAE, feed: _Feed, totals: dict[str, float], run: RunState, source: DataSource,
              tc: TrainConfig, annealing: KLAnnealing, device: torch.device) -> tuple[dict[str, Any], bool]:
    """Evaluate the validation split (in float32, whatever the training precision), append the epoch's record
    to the history, keep the best; (record, improved)."""
    seen = totals["seen"]
    val_set = feed.val_set
    try:
        val_result, _ = evaluate_batches(model, feed.val_batches(), str(device), seed=tc.seed)
    except DataError as err:
        raise DataError(f"the validation split of {source.label()} is empty ({tc.val_percent}% of "
                        f"{int(seen)} samples); raise --val-percent or add data") from err
    if totals["known"] and val_set.samples_last_pass is not None:
        run.samples = {"train": int(totals["passed"]), "val": val_set.samples_last_pass,
                       "skipped": int(totals["skipped"]) + val_set.stats.skipped}
    record: dict[str, Any] = {"epoch": run.epoch, "step": run.step, "kl_weight": tc.beta * annealing.weight(run.step)}
    record.update({f"train_{k}": totals[k] / seen for k in ("elbo", "recon_nll", "kl")})
    record.update(_metrics_of(val_result, "val"))
    run.history.append(record)
    improved = run.best is None or record["val_elbo"] > run.best["val_elbo"]
    if improved:
        run.best = dict(record, active_units=val_result.active_units, kl_per_dim=val_result.kl_per_dim,
                        latent_variance=val_result.latent_variance, latent_abs_max=val_result.latent_abs_max,
                        val_samples=val_result.samples)
    return record, improved


def _summary(run: RunState, source: DataSource, model: VAE, tc: TrainConfig, device: torch.device) -> dict[str, Any]:
    from vae_ros.core.latent_range import LATENT_RANGE_KEY, latent_range_entry

    summary: dict[str, Any] = {
        "source": source.describe(),
        "samples": run.samples,
        "epochs": len(run.history),
        "best_epoch": run.best["epoch"] if run.best else None,
        "val_elbo": run.best["val_elbo"] if run.best else None,
        "best": run.best,
        "parameters": parameter_count(model),
        "time_s": round(run.elapsed_before + time.monotonic() - run.started, 2),
        # This process's run only (not the runs it resumes): where the epochs' time went.
        "seconds": {part: round(value, 3) for part, value in run.seconds.items()},
        "device": str(device),
        "train_config": asdict(tc),
        "history": run.history,
        "torch_version": torch.__version__,
    }
    if run.best and "latent_abs_max" in run.best:  # the range the consumers of its latents hold them to
        summary[LATENT_RANGE_KEY] = latent_range_entry(run.best["latent_abs_max"], run.best.get("val_samples", 0),
                                                       "validation split, best epoch")
    return summary


def _save_checkpoint(out: Path, model: VAE, optimizer: torch.optim.Optimizer, run: RunState, config: ModelConfig,
                     tc: TrainConfig, source: DataSource) -> None:
    save_checkpoint(out / CHECKPOINT_DIR, model, optimizer, {
        "epoch": run.epoch, "step": run.step, "history": run.history, "best": run.best,
        "elapsed_s": run.elapsed_before + time.monotonic() - run.started,
        "model_config": dict(config.to_dict(), training={}),
        "train_config": asdict(tc), "source": source.describe(), "samples": run.samples,
    })
