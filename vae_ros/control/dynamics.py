"""The latent world model z_{t+1} = f(z_t, a_t) (ROS-free): a probabilistic ensemble of residual MLPs.

Each of `members` MLPs maps the normalised (z_t, a_t) to a diagonal Gaussian over the normalised change
Δz = z_{t+1} - z_t (mean and log-variance), trained with the Gaussian negative log-likelihood and learned
soft bounds on the log-variance (PETS: Chua et al. 2018, "Deep Reinforcement Learning in a Handful of
Trials using Probabilistic Dynamics Models"). Members differ by initialisation and batch order; their
spread is the model's epistemic uncertainty, their predicted variance the aleatoric one.

Training uses torch (batched over members as (E, B, ·) tensors); inference (`LatentDynamics`) is NumPy,
float32, batched over members and samples, so the world-model node and the planner need no torch; planning
rollouts may run in torch where a process has chosen torch anyway (`rollout_runtime`). torch is imported
only inside the functions that use it, never by importing this module.
A dynamics directory holds `dynamics.json` (config, normalisation, training and evaluation summary) and
`weights.safetensors` (loaded with safetensors.numpy, never unpickled); `dynamics.onnx` is optional.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.dynamics_data import Trajectory
from vae_ros.core.distributed import SINGLE, Distributed
from vae_ros.core.errors import ConfigError, DataError, InputError, ModelFileError

DYNAMICS_FILE = "dynamics.json"
WEIGHTS_FILE = "weights.safetensors"
ONNX_FILE = "dynamics.onnx"
FORMAT = "vae_ros.dynamics"
FORMAT_VERSION = 1
ACTION_DIM = 2  # (v m/s, w rad/s)


@dataclass
class DynamicsConfig:
    """Architecture and normalisation of a dynamics model (dynamics.json); the checkpoint carries it."""

    latent_dim: int
    action_dim: int = ACTION_DIM
    members: int = 5
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    dt: float = 0.1  # s: one model step (the sensor period of the training data)
    z_mean: list[float] = field(default_factory=list)
    z_std: list[float] = field(default_factory=list)
    a_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    dz_mean: list[float] = field(default_factory=list)
    dz_std: list[float] = field(default_factory=list)
    action_low: list[float] = field(default_factory=lambda: [-1.0, -2.0])  # seen in training
    action_high: list[float] = field(default_factory=lambda: [1.0, 2.0])
    latent_model: dict[str, Any] = field(default_factory=dict)  # the VAE the latents came from
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        d = self.latent_dim
        if d < 1 or self.action_dim != ACTION_DIM or self.members < 1 or not self.hidden:
            raise ConfigError(f"dynamics: bad sizes (latent {d}, action {self.action_dim}, members "
                              f"{self.members}, hidden {self.hidden})")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"dynamics: hidden sizes must be >= 1, got {self.hidden}")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ConfigError(f"dynamics: dt must be a positive number of seconds, got {self.dt}")
        for name, size in (("z_mean", d), ("z_std", d), ("dz_mean", d), ("dz_std", d), ("a_scale", 2),
                           ("action_low", 2), ("action_high", 2)):
            values = getattr(self, name)
            if len(values) != size or not all(math.isfinite(v) for v in values):
                raise ConfigError(f"dynamics: {name} must hold {size} finite numbers, got {len(values)}")
        if min(self.z_std + self.dz_std + self.a_scale) <= 0:
            raise ConfigError("dynamics: normalisation scales must be positive")

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}, indent=2,
                          sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DynamicsConfig:
        if data.get("format") != FORMAT:
            raise ModelFileError(f"not a vae_ros dynamics file (format {data.get('format')!r}, expected {FORMAT!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"dynamics format_version {data.get('format_version')!r} is not supported "
                                 f"(this vae_ros reads {FORMAT_VERSION})")
        names = {f for f in cls.__dataclass_fields__}
        try:
            config = cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as err:
            raise ModelFileError(f"dynamics.json: {err}") from err
        try:
            config.validate()
        except ConfigError as err:
            raise ModelFileError(str(err)) from err
        return config


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class LatentDynamics:
    """NumPy inference of a trained ensemble: batched one-step predictions and rollouts (float32)."""

    def __init__(self, config: DynamicsConfig, weights: dict[str, np.ndarray]) -> None:
        config.validate()
        self.config = config
        e = config.members
        sizes = [config.latent_dim + config.action_dim, *config.hidden, 2 * config.latent_dim]
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            w = weights.get(f"layers.{i}.weight")
            b = weights.get(f"layers.{i}.bias")
            if w is None or b is None or w.shape != (e, n_in, n_out) or b.shape != (e, n_out):
                raise ModelFileError(f"dynamics weights: layer {i} missing or not ({e}, {n_in}, {n_out})")
            self.layers.append((np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32)[:, None]))
        for name, tensor in weights.items():  # NaN weights would plan NaN rollouts and drive on whatever came out
            if not np.all(np.isfinite(tensor)):
                raise ModelFileError(f"dynamics weights: tensor {name!r} holds NaN or infinite values")
        self.max_logvar = np.asarray(weights.get("max_logvar", np.zeros(config.latent_dim)), np.float32)
        self.min_logvar = np.asarray(weights.get("min_logvar", np.full(config.latent_dim, -10.0)), np.float32)
        f32 = np.float32
        self.z_mean, self.z_std = np.asarray(config.z_mean, f32), np.asarray(config.z_std, f32)
        self.a_scale = np.asarray(config.a_scale, f32)
        self.dz_mean, self.dz_std = np.asarray(config.dz_mean, f32), np.asarray(config.dz_std, f32)
        self.rollout_backend = "torch"  # or "numpy": see rollout_split
        self._torch: dict[str, Any] | None = None

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def members(self) -> int:
        return self.config.members

    @property
    def dt(self) -> float:
        return self.config.dt

    def forward(self, z: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-member Δz mean and log-variance in latent units: z, a (E, B, D) / (E, B, 2) -> (E, B, D) x 2."""
        x = np.concatenate([(z - self.z_mean) / self.z_std, a / self.a_scale], axis=-1).astype(np.float32)
        for i, (w, b) in enumerate(self.layers):
            x = np.matmul(x, w) + b  # (E, B, out)
            if i < len(self.layers) - 1:
                x = _silu(x)
        d = self.latent_dim
        mean = x[..., :d] * self.dz_std + self.dz_mean
        logvar = self.max_logvar - np.logaddexp(0.0, self.max_logvar - x[..., d:])
        logvar = self.min_logvar + np.logaddexp(0.0, logvar - self.min_logvar)
        return mean, logvar + 2.0 * np.log(self.dz_std)

    def step_members(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Each member's mean next latent: z (E, B, D), a (E, B, 2) -> (E, B, D)."""
        mean, _ = self.forward(z, a)
        return z + mean

    def predict(self, z: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble prediction of the next latent: z (B, D), a (B, 2) -> mean (B, D), variance (B, D).

        The variance is the mixture's: mean predicted variance plus the spread of the members' means.
        """
        z = np.asarray(z, np.float32)
        a = np.asarray(a, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or a.shape != (z.shape[0], ACTION_DIM):
            raise InputError(f"predict needs z (B, {self.latent_dim}) and a (B, 2), got {z.shape} and {a.shape}")
        e = self.members
        mean, logvar = self.forward(np.broadcast_to(z, (e, *z.shape)), np.broadcast_to(a, (e, *a.shape)))
        nxt = z + mean  # (E, B, D)
        mu = nxt.mean(axis=0)
        var = np.exp(logvar).mean(axis=0) + nxt.var(axis=0)
        return mu, var

    def rollout_split(self, z0: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Candidates split across members (PETS' trajectory sampling): z0 (D,), actions (N, H, 2) -> (N, H, D).

        Candidate i rolls out with member i mod E, so a batch costs one member's forward passes. Runs in torch
        (`rollout_backend` "torch", faster on small CPUs: measured in bench/planner.py) or NumPy.
        """
        n, h = actions.shape[:2]
        e, d = self.members, self.latent_dim
        per = -(-n // e)  # ceil
        acts = np.asarray(actions, np.float32)
        if per * e != n:
            acts = np.concatenate([acts, np.repeat(acts[-1:], per * e - n, axis=0)])
        acts = acts.reshape(per, e, h, 2).transpose(1, 0, 2, 3)  # (E, per, H, 2): member k gets rows k, k+E, ...
        if self.rollout_backend == "torch":
            zs = self._rollout_torch(np.asarray(z0, np.float32), acts)
        else:
            zs = np.empty((e, per, h, d), np.float32)
            cur = np.broadcast_to(np.asarray(z0, np.float32), (e, per, d))
            for step in range(h):
                cur = self.step_members(cur, acts[:, :, step])
                zs[:, :, step] = cur
        return zs.transpose(1, 0, 2, 3).reshape(per * e, h, d)[:n]

    def _rollout_torch(self, z0: np.ndarray, acts: np.ndarray) -> np.ndarray:
        import torch

        if self._torch is None:
            self._torch = {
                "w": [torch.from_numpy(w) for w, _ in self.layers], "b": [torch.from_numpy(b) for _, b in self.layers],
                **{k: torch.from_numpy(np.asarray(getattr(self, k), np.float32)) for k in
                   ("z_mean", "z_std", "a_scale", "dz_mean", "dz_std")}}
        t = self._torch
        e, per, h = acts.shape[:3]
        d = self.latent_dim
        with torch.inference_mode():
            a = torch.from_numpy(np.ascontiguousarray(acts)) / t["a_scale"]  # (E, per, H, 2)
            cur = torch.from_numpy(z0).expand(e, per, d)
            out = torch.empty(e, per, h, d)
            for step in range(h):
                x = torch.cat([(cur - t["z_mean"]) / t["z_std"], a[:, :, step]], dim=-1)
                for i in range(len(t["w"])):
                    x = torch.baddbmm(t["b"][i], x, t["w"][i])
                    if i < len(t["w"]) - 1:
                        x = torch.nn.functional.silu(x)
                cur = cur + x[..., :d] * t["dz_std"] + t["dz_mean"]
                out[:, :, step] = cur
            return out.numpy()

    def rollout(self, z0: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Open-loop ensemble-mean rollout: z0 (B, D), actions (B, H, 2) -> (B, H, D) latents after each step.

        Each member propagates its own mean; the prediction is the average over members at each step.
        """
        z0 = np.asarray(z0, np.float32)
        actions = np.asarray(actions, np.float32)
        e = self.members
        z = np.broadcast_to(z0, (e, *z0.shape)).copy()
        out = np.empty((z0.shape[0], actions.shape[1], self.latent_dim), np.float32)
        for h in range(actions.shape[1]):
            z = self.step_members(z, np.broadcast_to(actions[:, h], (e, *actions[:, h].shape)))
            out[:, h] = z.mean(axis=0)
        return out


def rollout_runtime(backend: str) -> str:
    """LatentDynamics.rollout_backend for a node whose inference `backend` parameter is `backend`.

    Torch rollouts are 2-2.5x faster than NumPy's on small CPUs (bench/planner.py), but loading torch costs
    a node about 200 MB and a second at start. So torch only where the node runs torch anyway (backend
    torch or tensorrt); NumPy for auto and onnxruntime, so such a node never imports torch.
    """
    return "torch" if backend in ("torch", "tensorrt") else "numpy"


# -- files ----------------------------------------------------------------------------------------------------
def save_dynamics_dir(path: str | Path, config: DynamicsConfig, weights: dict[str, np.ndarray]) -> Path:
    """Write weights.safetensors then dynamics.json, each atomically (temp file renamed into place)."""
    from safetensors.numpy import save_file

    config.validate()
    LatentDynamics(config, weights)  # refuse to write what could not be loaded
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    tmp_w, tmp_c = directory / f".{WEIGHTS_FILE}.tmp", directory / f".{DYNAMICS_FILE}.tmp"
    try:
        save_file({k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()}, str(tmp_w),
                  metadata={"format": FORMAT})
        tmp_c.write_text(config.to_json() + "\n")
        for tmp in (tmp_w, tmp_c):
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            tmp.chmod(0o644)
        os.replace(tmp_w, directory / WEIGHTS_FILE)
        os.replace(tmp_c, directory / DYNAMICS_FILE)
    finally:
        tmp_w.unlink(missing_ok=True)
        tmp_c.unlink(missing_ok=True)
    (directory / ONNX_FILE).unlink(missing_ok=True)  # an export of older weights would be stale
    return directory


def load_dynamics_dir(path: str | Path) -> LatentDynamics:
    """A dynamics directory -> LatentDynamics; ModelFileError with what is wrong (never unpickles).

    Each file is checked before it is read (core.files, core.model_dir): not a FIFO or a link to /dev/zero,
    dynamics.json at most MAX_JSON_BYTES, the weights at most MAX_CONTROL_WEIGHTS_BYTES with a header that
    accounts for their bytes; and the weights must be finite."""
    from vae_ros.core.config import read_json_object
    from vae_ros.core.files import MAX_CONTROL_WEIGHTS_BYTES
    from vae_ros.core.model_dir import load_safetensors_numpy

    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ModelFileError(f"dynamics directory {directory} does not exist (train one with "
                             "`vae-ros train-dynamics`)")
    config_path, weights_path = directory / DYNAMICS_FILE, directory / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not os.path.lexists(required):
            raise ModelFileError(f"{directory} has no {required.name}: not a dynamics directory")
    config = DynamicsConfig.from_dict(read_json_object(config_path))
    return LatentDynamics(config, load_safetensors_numpy(weights_path, MAX_CONTROL_WEIGHTS_BYTES))


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

    def validate(self) -> None:
        if self.members < 1 or self.steps < 1 or self.batch_size < 1 or not self.hidden:
            raise ConfigError("members, steps, batch size and hidden sizes must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if not 0.0 <= self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")


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
    for step in range(1, config.steps + 1):
        idx = torch.as_tensor(share[rng.integers(0, share.size, size=(e, batch))], device=device)  # own batch per member
        loss_members = _nll(ddp_net, x_train[idx], y_train[idx])
        # Keep the log-variance bounds tight (PETS): a small penalty on their spread.
        loss = loss_members.sum() + 0.01 * (net.max_logvar.sum() - net.min_logvar.sum())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % eval_every == 0 or step == config.steps:
            record = _validate(net, x_val, y_val, float(loss_members.detach().mean()), step, started)
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


def _nll(net: Any, x: Any, y: Any) -> Any:
    """Per-member Gaussian NLL (nats per dimension, without the log 2π constant): (E,)."""
    import torch

    mean, logvar = net(x)
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
                                        "variance": {0: "batch"}}, opset_version=17, dynamo=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
