"""`vae-ros bench train`: the project's training step loop against a bare loop of the same model, in one run.

The project's loop is vae_ros.core.train's epoch function (train_epoch: the step, the KL annealing, the
finite-loss check, the running sums of the ELBO terms, the distributed lockstep), fed as `vae-ros train` feeds it
once the split is cached: batches indexed from one tensor of the samples, placed where training places it (on
the GPU when it fits, vae_ros.core.train_speed). The bare loop is what a tutorial writes, given its batches
ready where the project keeps the samples (prebuilt slices of the same tensor: on the GPU no copy at all, so it is
the ceiling): forward, the same loss (vae_ros.core.losses.vae_loss), zero_grad, backward, the same gradient
clipping, Adam step, and nothing else. Both run at the same precision (--precision:
bf16 autocast of the forward pass in both), layout (--channels-last) and compilation (--compile: both
compiled); decoding and shuffling are outside both, so the ratio is what the loop and its feeding cost.

The two loops run in alternating timed windows after a warm-up, so drifts in machine load hit both alike;
each figure is the median over the windows, and the ratio is the median of the ratios of the window pairs
(project / bare samples per second): the figure issue 20 sets targets for, >= 0.9x on a CPU and >= 0.8x
at batch 512 on a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vae_ros.apps.benchmarks import save_report_json
from vae_ros.core.errors import ConfigError

DEVICES = ("cpu", "cuda")
# Issue 20's targets for the ratio to the bare loop.
TARGETS = {"cpu": 0.9, "cuda": 0.8}
DEFAULT_BATCH = 64
DEFAULT_WINDOWS = 7
WINDOW_SECONDS = 2.0  # length of a timed window when --steps is not given (from the warm-up's step time)
MIN_STEPS = 2


@dataclass
class TrainLoopReport:
    """Samples per second of both loops (medians over the windows) and their ratio."""

    model: str
    modality: str
    input_shape: list[int]
    device: str
    batch: int
    precision: str
    channels_last: bool
    compiled: bool
    steps_per_window: int
    windows: int
    warmup_steps: int
    torch: str
    torch_threads: int
    machine: str
    project_samples_per_s: float = 0.0
    bare_samples_per_s: float = 0.0
    ratio: float = 0.0
    target: float = 0.0
    project_windows: list[float] = field(default_factory=list)
    bare_windows: list[float] = field(default_factory=list)
    window_ratios: list[float] = field(default_factory=list)  # project / bare of each pair of windows

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark_train_loop(model_dir: str | Path, device: str = "cpu", batch: int = DEFAULT_BATCH,
                         windows: int = DEFAULT_WINDOWS, steps: int | None = None, warmup: int = 10,
                         seed: int = 0, progress: Callable[[str], None] | None = None, precision: str = "fp32",
                         channels_last: bool = False, compile_models: bool = False) -> TrainLoopReport:
    """Time vae_ros.core.train's step loop and a bare loop on the architecture of model_dir's model.json
    (fresh weights: the figures are about speed), at the same batch size, precision, layout and device."""
    import numpy as np
    import torch

    from vae_ros.core.backends import load_config
    from vae_ros.core.distributed import SINGLE
    from vae_ros.core.export import example_inputs
    from vae_ros.core.losses import KLAnnealing, vae_loss
    from vae_ros.core.models import build_model
    from vae_ros.core.train import RunState, TrainConfig, select_device, train_epoch
    from vae_ros.core.train_speed import (
        as_input,
        autocast,
        cached_batches,
        channels_last_applies,
        check_precision,
        compile_error,
        compile_module,
        is_compile_failure,
        place_cached,
    )

    if batch < 2:
        raise ConfigError(f"--batch must be >= 2 (BatchNorm needs two samples), got {batch}")
    if windows < 1 or warmup < 0 or (steps is not None and steps < 1):
        raise ConfigError(f"--windows must be >= 1, --steps >= 1 and --warmup >= 0; got {windows}, {steps}, {warmup}")
    check_precision(precision)
    config = load_config(model_dir)
    target = select_device(device)
    # A few distinct batches, cycled: the same samples go to both loops.
    pool = [torch.from_numpy(example_inputs(config, batch, seed + i)) for i in range(4)]  # (B, *input_shape)
    cache = place_cached(torch.cat(pool), target)  # (4B, *input_shape), where `vae-ros train` would keep it

    def make() -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
        """(the model, what the steps call: the model or its compiled wrapper, its optimiser)"""
        torch.manual_seed(seed)
        model = build_model(config).to(target).train()
        if layout:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model, compile_module(model) if compile_models else model, torch.optim.Adam(model.parameters(), lr=1e-3)

    layout = channels_last_applies(build_model(config), channels_last)
    # The training defaults (lr, beta, clip, annealing), at this benchmark's settings.
    tc = TrainConfig(batch_size=batch, device=device, seed=seed, precision=precision, channels_last=layout,
                     compile=compile_models)
    _, project_model, project_opt = make()
    annealing = KLAnnealing(kind=tc.kl_annealing, warmup_steps=tc.warmup_steps)
    run = RunState(started=time.monotonic())

    def project(count: int) -> None:
        order = np.arange(count * batch) % cache.shape[0]  # the pool's batches, cycled
        train_epoch(project_model, project_opt, cached_batches(cache, order, batch, target), None, annealing, run,
                    config, tc, 1, target, SINGLE)

    bare_raw, bare_model, bare_opt = make()
    bare_step = 0

    bare_batches = [cache[i * batch:(i + 1) * batch] for i in range(len(pool))]  # views of the placed tensor

    def bare(count: int) -> None:
        nonlocal bare_step
        for i in range(count):
            x = as_input(bare_batches[i % len(pool)].to(target, non_blocking=True), layout)  # (B, *input_shape)
            with autocast(target, precision):
                logits, mu, logvar = bare_model(x)
            loss = vae_loss(logits.float(), x, mu.float(), logvar.float(), config,
                            beta=tc.beta * annealing.weight(bare_step), free_bits=tc.free_bits).loss
            bare_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(bare_raw.parameters(), tc.grad_clip)
            bare_opt.step()
            bare_step += 1

    def timed(loop: Callable[[int], None], count: int) -> float:
        """Samples per second of `count` steps of loop."""
        _sync(target)
        start = time.perf_counter()
        loop(count)
        _sync(target)
        return count * batch / (time.perf_counter() - start)

    report = TrainLoopReport(model=str(model_dir), modality=config.modality, input_shape=list(config.input_shape),
                             device=str(target), batch=batch, precision=precision, channels_last=layout,
                             compiled=compile_models, steps_per_window=0,
                             windows=windows, warmup_steps=warmup, torch=torch.__version__,
                             torch_threads=torch.get_num_threads(), machine=platform.machine(),
                             target=TARGETS[target.type])
    try:
        if warmup or compile_models:  # compilation happens in the first steps: never inside a timed window
            project(max(warmup, 2))
            bare(max(warmup, 2))
    except Exception as err:
        if compile_models and is_compile_failure(err):
            raise compile_error(err) from err
        raise
    if steps is None:  # windows of about WINDOW_SECONDS, judged from one timed step of each loop
        step_s = max(batch / timed(loop, 1) for loop in (project, bare))
        steps = max(MIN_STEPS, round(WINDOW_SECONDS / step_s))
    report.steps_per_window = steps
    for window in range(windows):
        # Alternate which loop goes first, so neither always runs on a machine the other just warmed.
        order = [("project", project), ("bare", bare)][:: 1 if window % 2 == 0 else -1]
        for name, loop in order:
            getattr(report, f"{name}_windows").append(round(timed(loop, steps), 1))
        if progress is not None:
            progress(f"window {window + 1}/{windows}: vae_ros {report.project_windows[-1]:.0f} samples/s, "
                     f"bare {report.bare_windows[-1]:.0f} samples/s")
    report.project_samples_per_s = round(statistics.median(report.project_windows), 1)
    report.bare_samples_per_s = round(statistics.median(report.bare_windows), 1)
    # Each window pair ran back to back, under the same machine load: the median of their ratios is steadier
    # than the ratio of the medians on a shared machine.
    report.window_ratios = [round(p / b, 3) for p, b in zip(report.project_windows, report.bare_windows, strict=True)]
    report.ratio = round(statistics.median(report.window_ratios), 3)
    return report


def format_table(report: TrainLoopReport) -> str:
    verdict = "meets" if report.ratio >= report.target else "below"
    return "\n".join([
        f"training step loop vs a bare loop: {report.modality} model {report.model}, input "
        f"{'x'.join(map(str, report.input_shape))}, {report.device}, batch {report.batch}, {report.precision}"
        f"{', channels_last' if report.channels_last else ''}{', compiled' if report.compiled else ''}, "
        f"torch {report.torch} ({report.torch_threads} threads)",
        f"medians of {report.windows} alternating windows of {report.steps_per_window} steps, after "
        f"{report.warmup_steps} warm-up steps",
        f"{'loop':<10} {'samples/s':>10}",
        f"{'vae_ros':<10} {report.project_samples_per_s:>10.0f}",
        f"{'bare':<10} {report.bare_samples_per_s:>10.0f}",
        f"ratio {report.ratio:.2f}x, median of the window pairs' ratios ({verdict} the target of "
        f"{report.target:.1f}x on {report.device.split(':')[0]})",
    ])


def add_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """Options of the training benchmark that the other benchmarks do not have (--model, --batch, --warmup and
    --json are shared; `vae-ros bench` adds them once)."""
    parser.add_argument("--device", default="cpu", metavar="DEV", help="train: cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--windows", type=int, default=DEFAULT_WINDOWS, metavar="N",
                        help=f"train: timed windows per loop (default {DEFAULT_WINDOWS})")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help=f"train: steps per window (default: about {WINDOW_SECONDS:g} s' worth, at least "
                             f"{MIN_STEPS})")
    from vae_ros.apps.cli.common import add_speed_arguments

    add_speed_arguments(parser)


def run_from_args(args: argparse.Namespace) -> int:
    """Run with parsed arguments, print the table, optionally save JSON."""
    from vae_ros.core.model_dir import resolve_model_dir

    model_dir = resolve_model_dir(args.model, "image")
    batch = args.batch if args.batch is not None else DEFAULT_BATCH
    print(f"timing the training loop on {model_dir}'s architecture ...", file=sys.stderr, flush=True)
    report = benchmark_train_loop(model_dir, args.device, batch, args.windows, args.steps, args.warmup,
                                  progress=lambda line: print(line, file=sys.stderr, flush=True),
                                  precision=args.precision, channels_last=args.channels_last,
                                  compile_models=args.compile)
    print(format_table(report))
    if args.json:
        save_report_json(report, args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (python -m vae_ros.apps.benchmarks.train_loop, bench/train.py)."""
    from vae_ros.core.errors import VaeRosError

    parser = argparse.ArgumentParser(prog="bench/train.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", metavar="DIR", help="model directory whose architecture is "
                        "trained (default: the packaged image model)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="B",
                        help=f"batch size (default {DEFAULT_BATCH})")
    parser.add_argument("--warmup", type=int, default=10, metavar="N", help="untimed steps first (default 10)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also save the figures as JSON")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except VaeRosError as err:
        print(f"bench train: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
