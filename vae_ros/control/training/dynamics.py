"""Training the latent world model (torch): transitions from trajectories of latents and commands, the ensemble's
Gaussian NLL, a linear baseline, and ONNX export.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.runtime.dynamics import ACTION_DIM, DynamicsConfig, LatentDynamics
from vae_ros.control.training.dynamics_data import Trajectory
from vae_ros.core.distributed import SINGLE, Distributed
from vae_ros.core.errors import ConfigError, DataError, TrainingDivergedError

# Steps whose batch indices are drawn at once and sent to the device in one copy (the draws are the same as one
# call per step: NumPy's generator gives the same sequence either way).
INDEX_CHUNK = 50


# -- training (torch) -----------------------------------------------------------------------------------------
@dataclass
class DynamicsTrainConfig:
    members: int = 5
    hidden: tuple[int, ...] = (64, 64)
    steps: int = 8000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.1  # last share of each trajectory, held out for early stopping
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # or 'bf16': autocast of the ensemble's forward pass (vae_ros.core.train_speed)

    def validate(self) -> None:
        if self.members < 1 or self.steps < 1 or self.batch_size < 1 or not self.hidden:
            raise ConfigError("members, steps, batch size and hidden sizes must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if not 0.0 <= self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        from vae_ros.core.train_speed import check_precision

        check_precision(self.precision)


def transitions(trajs: Sequence[Trajectory], max_gap: float = 2.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z_t, a_t, z_{t+1}) over all trajectories, skipping intervals longer than max_gap x the median dt."""
    zs, acts, nxt = [], [], []
    for traj in trajs:
        dt = np.diff(traj.t)
        ok = dt <= max_gap * traj.median_dt()
        zs.append(traj.z[:-1][ok])
        acts.append(traj.actions[ok])
        nxt.append(traj.z[1:][ok])
    return np.concatenate(zs), np.concatenate(acts), np.concatenate(nxt)


def _split(trajs: Sequence[Trajectory], val_fraction: float) -> tuple[list[Trajectory], list[Trajectory]]:
    train, val = [], []
    for traj in trajs:
        cut = int(round(len(traj) * (1.0 - val_fraction)))
        if val_fraction <= 0 or cut < 2 or len(traj) - cut < 2:
            train.append(traj)
            continue
        train.append(Trajectory(traj.name, traj.t[:cut], traj.z[:cut], traj.actions[:cut - 1],
                                None if traj.poses is None else traj.poses[:cut]))
        val.append(Trajectory(traj.name, traj.t[cut:], traj.z[cut:], traj.actions[cut:],
                              None if traj.poses is None else traj.poses[cut:]))
    return train, val


def train_dynamics(trajs: Sequence[Trajectory], config: DynamicsTrainConfig,
                   progress: Callable[[int, dict[str, float]], None] | None = None,
                   dist: Distributed = SINGLE) -> tuple[DynamicsConfig, dict[str, np.ndarray], list[dict[str, float]]]:
    """Fit the ensemble; returns (config, NumPy weights of the best validation NLL, history).

    dist: this process's place under torchrun (process group initialised). Each process draws its batches
    from its own share of the transitions, batch_size / world_size per member, and DistributedDataParallel
    averages the gradients, so a step sees the same global batch as one process does.
    """
    import torch

    from vae_ros.core.train_speed import autocast

    config.validate()
    if config.batch_size % dist.world_size:
        raise ConfigError(f"the batch size ({config.batch_size}) is shared by the {dist.world_size} processes: "
                          f"it must be a multiple of {dist.world_size}")
    dyn, dts, train_t, val_t = _normalisation(trajs, config)
    d = dyn.latent_dim
    torch.manual_seed(config.seed)
    # Rank 0 draws what a single process draws; the others their own stream.
    rng = np.random.default_rng(config.seed if dist.rank == 0 else [config.seed, dist.rank])
    device = torch.device(config.device)
    x_train, y_train = _tensors(*transitions(train_t), dyn, device)
    val = transitions(val_t) if val_t else None
    x_val, y_val = _tensors(*val, dyn, device) if val is not None and val[0].shape[0] > 0 else (x_train[:2048],
                                                                                                   y_train[:2048])
    net = _ensemble_net(d, [d + ACTION_DIM, *config.hidden, 2 * d], config.members, device)
    ddp_net = dist.wrap(net, device)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps, eta_min=config.lr * 0.05)

    n = x_train.shape[0]
    share = np.arange(dist.rank, n, dist.world_size)  # this process's transitions
    e, batch = config.members, config.batch_size // dist.world_size
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, np.ndarray] | None] = (math.inf, None)
    eval_every = max(1, min(250, config.steps // 8))
    started = time.perf_counter()
    # Read by the host only at the evaluation steps (each read waits for the GPU): the running sum of the
    # training NLL since the last evaluation and the first non-finite loss (step, value).
    nll_sum = torch.zeros((), dtype=torch.float64, device=device)
    first_bad = torch.full((2,), -1.0, dtype=torch.float64, device=device)
    step_on_device = torch.zeros((), dtype=torch.float64, device=device)
    indices = _index_chunks(rng, share, config.steps, e, batch, device)
    summed = 0
    for step in range(1, config.steps + 1):
        idx = next(indices)  # (E, B): each member's own batch
        with autocast(device, config.precision):
            loss_members = _nll(ddp_net, x_train[idx], y_train[idx])
        # Keep the log-variance bounds tight (PETS): a small penalty on their spread.
        loss = loss_members.sum() + 0.01 * (net.max_logvar.sum() - net.min_logvar.sum())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        step_nll = loss_members.detach().mean()
        nll_sum += step_nll.double()
        summed += 1
        step_on_device += 1
        bad = (first_bad[0] < 0) & ~torch.isfinite(step_nll)
        first_bad = torch.where(bad, torch.stack([step_on_device, step_nll.double()]), first_bad)
        if step % eval_every == 0 or step == config.steps:
            bad_step, bad_value = first_bad.tolist()
            if bad_step >= 0:
                raise TrainingDivergedError(f"training diverged: the loss became {bad_value} at step "
                                            f"{int(bad_step)}; lower --lr (now {config.lr})")
            record = _validate(net, x_val, y_val, float(step_nll), step, started)
            record["train_nll_mean"] = float(nll_sum) / summed  # since the last evaluation
            nll_sum.zero_()
            summed = 0
            history.append(record)
            if record["val_nll"] < best[0]:
                best = (record["val_nll"], net.numpy_state())
            if progress is not None:
                progress(step, record)
    best_state = best[1]
    if best_state is None:
        raise DataError("training produced no finite validation loss (check the data for NaN)")
    dyn.training = {
        "transitions": int(n), "validation_transitions": int(x_val.shape[0]), "trajectories": len(trajs),
        "best_val_nll": best[0], "seconds": round(time.perf_counter() - started, 1),
        "steps": config.steps, "batch_size": config.batch_size, "lr": config.lr, "seed": config.seed,
        "precision": config.precision,
        "dt_median": float(np.median(dts)), "dt_p90": float(np.percentile(dts, 90)),
    }
    if dist.enabled:
        dyn.training["processes"] = dist.world_size
    return dyn, best_state, history


def _normalisation(trajs: Sequence[Trajectory], config: DynamicsTrainConfig,
                   ) -> tuple[DynamicsConfig, np.ndarray, list[Trajectory], list[Trajectory]]:
    """The dynamics config with its normalisation from the training transitions; (config, time steps, train and
    validation trajectories)."""
    if not trajs:
        raise DataError("no trajectories to train on")
    dims = {t.latent_dim for t in trajs}
    if len(dims) != 1:
        raise DataError(f"trajectories have different latent sizes {sorted(dims)}")
    d = dims.pop()
    dts = np.concatenate([np.diff(t.t) for t in trajs])
    train_t, val_t = _split(trajs, config.val_fraction)
    z, a, z1 = transitions(train_t)
    if z.shape[0] < config.batch_size // 4 or z.shape[0] < 8:
        raise DataError(f"only {z.shape[0]} transitions to train on; record longer bags")
    dz = z1 - z
    f64 = np.float64
    dyn = DynamicsConfig(
        latent_dim=d, members=config.members, hidden=list(config.hidden), dt=float(np.median(dts)),
        z_mean=z.mean(0, dtype=f64).tolist(), z_std=(z.std(0, dtype=f64) + 1e-6).tolist(),
        a_scale=np.maximum(np.abs(a).max(0).astype(f64), 1e-3).tolist(), dz_mean=dz.mean(0, dtype=f64).tolist(),
        dz_std=(dz.std(0, dtype=f64) + 1e-6).tolist(), action_low=a.min(0).astype(f64).tolist(),
        action_high=a.max(0).astype(f64).tolist())
    dyn.validate()
    return dyn, dts, train_t, val_t


def _tensors(z: np.ndarray, a: np.ndarray, z1: np.ndarray, dyn: DynamicsConfig, device: Any) -> tuple[Any, Any]:
    """Normalised inputs [z, a] (N, D + 2) and targets Δz (N, D), float32 on device."""
    import torch

    z_mean, z_std = np.asarray(dyn.z_mean), np.asarray(dyn.z_std)
    x = np.concatenate([(z - z_mean) / z_std, a / np.asarray(dyn.a_scale)], axis=1)
    y = ((z1 - z) - np.asarray(dyn.dz_mean)) / np.asarray(dyn.dz_std)
    return (torch.as_tensor(x, dtype=torch.float32, device=device),
            torch.as_tensor(y, dtype=torch.float32, device=device))


def _ensemble_net(d: int, sizes: list[int], members: int, device: Any) -> Any:
    """The ensemble as one torch module: (E, B, D + 2) -> mean, log-variance (E, B, D) of the normalised Δz."""
    import torch

    class EnsembleNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            params: list[torch.nn.Parameter] = []
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
                w = torch.empty(members, n_in, n_out, device=device)
                for k in range(members):
                    torch.nn.init.kaiming_uniform_(w[k].T, a=math.sqrt(5))  # nn.Linear's default, per member
                bound = 1.0 / math.sqrt(n_in)
                b = torch.empty(members, n_out, device=device).uniform_(-bound, bound)
                params += [torch.nn.Parameter(w), torch.nn.Parameter(b)]
            self.layers = torch.nn.ParameterList(params)  # weight, bias, weight, bias, ...
            self.max_logvar = torch.nn.Parameter(torch.full((d,), 0.5, device=device))
            self.min_logvar = torch.nn.Parameter(torch.full((d,), -10.0, device=device))

        def forward(self, x: Any) -> tuple[Any, Any]:
            h = x  # (E, B, in)
            for i in range(0, len(self.layers), 2):
                h = torch.baddbmm(self.layers[i + 1][:, None, :], h, self.layers[i])
                if i < len(self.layers) - 2:
                    h = torch.nn.functional.silu(h)
            mean, raw = h[..., :d], h[..., d:]
            logvar = self.max_logvar - torch.nn.functional.softplus(self.max_logvar - raw)
            logvar = self.min_logvar + torch.nn.functional.softplus(logvar - self.min_logvar)
            return mean, logvar

        def numpy_state(self) -> dict[str, np.ndarray]:
            """The weights as save_dynamics_dir and LatentDynamics name them."""
            state = {f"layers.{i // 2}.{'weight' if i % 2 == 0 else 'bias'}": p.detach().cpu().numpy().copy()
                     for i, p in enumerate(self.layers)}
            state["max_logvar"] = self.max_logvar.detach().cpu().numpy().copy()
            state["min_logvar"] = self.min_logvar.detach().cpu().numpy().copy()
            return state

    return EnsembleNet()


def _index_chunks(rng: np.random.Generator, share: np.ndarray, steps: int, members: int, batch: int,
                  device: Any) -> Any:
    """Each step's (E, B) transition indices on device, drawn INDEX_CHUNK steps at a time and copied through
    pinned memory without blocking (a GPU), instead of one small blocking copy a step."""
    import torch

    pin = torch.device(device).type == "cuda"
    for first in range(0, steps, INDEX_CHUNK):
        count = min(INDEX_CHUNK, steps - first)
        chunk = torch.from_numpy(share[rng.integers(0, share.size, size=(count, members, batch))])  # (S, E, B)
        if pin:
            chunk = chunk.pin_memory()
        chunk = chunk.to(device, non_blocking=True)
        yield from chunk


def _nll(net: Any, x: Any, y: Any) -> Any:
    """Per-member Gaussian NLL (nats per dimension, without the log 2π constant): (E,). The loss itself in float32
    whatever precision the network ran in."""
    import torch

    mean, logvar = net(x)
    mean, logvar = mean.float(), logvar.float()
    with torch.autocast(device_type=mean.device.type, enabled=False):
            return (0.5 * ((y - mean) ** 2 * torch.exp(-logvar) + logvar)).mean(dim=(1, 2))


def _validate(net: Any, x_val: Any, y_val: Any, train_nll: float, step: int, started: float) -> dict[str, float]:
    """Validation NLL of the members and normalised error of the ensemble mean (every process: cheap)."""
    import torch

    members = net.layers[0].shape[0]
    with torch.no_grad():
        xv = x_val.expand(members, *x_val.shape)
        yv = y_val.expand(members, *y_val.shape)
        val_nll = float(_nll(net, xv, yv).mean())
        mean, _ = net(xv)
        val_mse = float(((mean.mean(0) - y_val) ** 2).mean())
    return {"step": float(step), "train_nll": train_nll, "val_nll": val_nll, "val_mse_normalised": val_mse,
            "seconds": time.perf_counter() - started}


def fit_linear(trajs: Sequence[Trajectory], ridge: float = 1e-3) -> np.ndarray:
    """The linear baseline: ridge least squares Δz = [z, a, 1] @ W -> W (D+3, D)."""
    z, a, z1 = transitions(trajs)
    x = np.concatenate([z, a, np.ones((z.shape[0], 1), np.float32)], axis=1).astype(np.float64)
    y = (z1 - z).astype(np.float64)
    try:
        w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
    except np.linalg.LinAlgError as err:  # values so large that the normal equations overflow
        raise DataError(f"the linear baseline cannot be fitted to these latents and commands ({err}); check the "
                        "recording for absurd values") from err
    return w


def export_onnx(dynamics: LatentDynamics, path: str | Path) -> Path:
    """dynamics.onnx: (z (B, D), a (B, 2)) -> (next latent mean (B, D), variance (B, D)), ensemble mixture."""
    import torch

    from vae_ros.core.export import OPSET, pin_onnx_versions

    cfg = dynamics.config

    class _Ensemble(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(w.copy())) for w, _ in dynamics.layers])
            self.b = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(b.copy())) for _, b in dynamics.layers])
            # Constants of the traced graph (plain tensors, baked into the ONNX file).
            self.c: dict[str, Any] = {
                name: torch.from_numpy(np.array(value, np.float32)) for name, value in (
                    ("z_mean", dynamics.z_mean), ("z_std", dynamics.z_std), ("a_scale", dynamics.a_scale),
                    ("dz_mean", dynamics.dz_mean), ("dz_std", dynamics.dz_std), ("max_lv", dynamics.max_logvar),
                    ("min_lv", dynamics.min_logvar))}

        def forward(self, z: Any, a: Any) -> tuple[Any, Any]:
            c = self.c
            x = torch.cat([(z - c["z_mean"]) / c["z_std"], a / c["a_scale"]], dim=-1)
            h = x.unsqueeze(0).expand(cfg.members, *x.shape)
            for i in range(len(self.w)):
                h = torch.matmul(h, self.w[i]) + self.b[i]
                if i < len(self.w) - 1:
                    h = torch.nn.functional.silu(h)
            d = cfg.latent_dim
            mean = h[..., :d] * c["dz_std"] + c["dz_mean"]
            lv = c["max_lv"] - torch.nn.functional.softplus(c["max_lv"] - h[..., d:])
            lv = c["min_lv"] + torch.nn.functional.softplus(lv - c["min_lv"]) + 2.0 * torch.log(c["dz_std"])
            nxt = z.unsqueeze(0) + mean
            mu = nxt.mean(0)
            var = torch.exp(lv).mean(0) + ((nxt - mu) ** 2).mean(0)
            return mu, var

    module = _Ensemble().eval()
    out = Path(path)
    z = torch.zeros(4, cfg.latent_dim)
    a = torch.zeros(4, ACTION_DIM)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        torch.onnx.export(module, (z, a), str(tmp), input_names=["z", "action"], output_names=["mean", "variance"],
                          dynamic_axes={"z": {0: "batch"}, "action": {0: "batch"}, "mean": {0: "batch"},
                                        "variance": {0: "batch"}}, opset_version=OPSET, dynamo=False)
        pin_onnx_versions(tmp)  # IR and opset that JetPack 6's ONNX Runtime loads, whatever this torch writes
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
