"""The latent world model on the robot (ROS-free, NumPy, optional torch rollouts): an ensemble of MLPs z_{t+1} = z_t +
f(z_t, a_t) with a predictive variance, and its directory (dynamics.json + weights.safetensors, loaded without
unpickling).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.errors import ConfigError, InputError, ModelFileError
from vae_ros.core.model_dir import WEIGHTS_FILE

DYNAMICS_FILE = "dynamics.json"
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


PLAN_DEVICES = ("auto", "cpu", "cuda")


def plan_device(choice: str, device: str) -> str:
    """Where world_model_node scores its plans' candidates: "cpu" (today's path: NumPy, or torch rollouts where
    rollout_runtime says so) or "cuda" (vae_ros.control.runtime.plan_torch on the GPU). `choice` is its
    `plan_device` parameter, `device` its `device` (the model's): auto plans on the GPU where the model runs on
    one (the node has a GPU and loads torch for it anyway), on the CPU otherwise, so a CPU node never imports
    torch for planning. ConfigError, one line, for another choice."""
    if choice not in PLAN_DEVICES:
        raise ConfigError(f"plan_device must be one of {', '.join(PLAN_DEVICES)}, got {choice!r}")
    if choice == "auto":
        return "cuda" if device == "cuda" else "cpu"
    return choice


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
