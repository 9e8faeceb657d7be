"""Open-loop multi-step evaluation of latent world models on held-out trajectories (ROS-free).

From every start t (stride `stride`) with regular sensor intervals ahead, each predictor rolls the latent
forward under the recorded commands, without seeing later latents, and is compared with the latent actually
observed h steps later. Predictors: `no_change` (z_{t+h} = z_t), `constant_velocity` (the last latent step
repeated: z_t + h (z_t - z_{t-1})), `linear` (a ridge-regression model Δz = [z, a, 1] W fitted on the
training data, rolled out) and the trained ensemble.

Reported per horizon: RMSE (latent units), R² of the change z_{t+h} - z_t pooled over dimensions and per
dimension (1 = perfect, 0 = no better than predicting the mean change, < 0 worse), and, where the bags have
odometry, pose terms: a read-out (z_t, Δz) -> robot-frame displacement (dx, dy, dyaw), fitted on the training
trajectories per horizon, turns each prediction into a displacement whose error against odometry is
reported (median m and deg); `read_out_floor` is the read-out applied to the true latent change.
The read-out is a small MLP on (z_t, z_{t+h} - z_t), so the floor says how much of the motion the latent
itself carries; a predictor is good in pose terms when it comes close to that floor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.control.runtime.dynamics import LatentDynamics
from vae_ros.control.training.dynamics import fit_linear
from vae_ros.control.training.dynamics_data import Trajectory
from vae_ros.core.errors import DataError
from vae_ros.sim.geometry import wrap_angles

DEFAULT_HORIZONS_S = (0.1, 0.2, 0.5, 1.0, 2.0)
PREDICTORS = ("no_change", "constant_velocity", "linear", "ensemble")

# (z0 (S, D), z_prev (S, D), actions (S, H, 2)) -> (S, H, D) predicted latents after each step
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _starts(traj: Trajectory, steps: int, stride: int) -> np.ndarray:
    """Start indices with a previous frame and `steps` regular intervals ahead."""
    dt = np.diff(traj.t)
    regular = dt <= 1.5 * np.median(dt)
    # ok[i]: intervals i-1 .. i+steps-1 all regular
    bad = np.concatenate([[0], np.cumsum(~regular)])  # bad[k] = irregular intervals before k
    idx = np.arange(1, len(traj) - steps)
    ok = bad[idx + steps] - bad[idx - 1] == 0
    return idx[ok][::stride]


def _robot_frame_delta(poses: np.ndarray, starts: np.ndarray, steps: int) -> np.ndarray:
    """(S, 3) displacement from pose[i] to pose[i+steps] in the frame of pose[i] (dx, dy, dyaw)."""
    p0, p1 = poses[starts], poses[starts + steps]
    c, s = np.cos(p0[:, 2]), np.sin(p0[:, 2])
    dx, dy = p1[:, 0] - p0[:, 0], p1[:, 1] - p0[:, 1]
    dyaw = wrap_angles(p1[:, 2] - p0[:, 2])
    return np.stack([c * dx + s * dy, -s * dx + c * dy, dyaw], axis=1)


def predictors(dynamics: LatentDynamics, train: Sequence[Trajectory]) -> dict[str, Predictor]:
    w = fit_linear(train)  # (D+3, D)

    def no_change(z0: np.ndarray, _prev: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.repeat(z0[:, None], actions.shape[1], axis=1)

    def constant_velocity(z0: np.ndarray, prev: np.ndarray, actions: np.ndarray) -> np.ndarray:
        h = np.arange(1, actions.shape[1] + 1, dtype=np.float32)[None, :, None]
        return z0[:, None] + h * (z0 - prev)[:, None]

    def linear(z0: np.ndarray, _prev: np.ndarray, actions: np.ndarray) -> np.ndarray:
        z = z0.astype(np.float64)
        out = np.empty((*actions.shape[:2], z0.shape[1]))
        ones = np.ones((z.shape[0], 1))
        for h in range(actions.shape[1]):
            z = z + np.concatenate([z, actions[:, h], ones], axis=1) @ w
            out[:, h] = z
        return out

    def ensemble(z0: np.ndarray, _prev: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return dynamics.rollout(z0, actions)

    return {"no_change": no_change, "constant_velocity": constant_velocity, "linear": linear, "ensemble": ensemble}


ReadOut = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (z_t (S, D), z_{t+h} (S, D)) -> (S, 3) displacement


def _fit_readout(train: Sequence[Trajectory], steps: int, fit_steps: int = 600, seed: int = 0) -> ReadOut | None:
    """A small MLP (z_t, z_{t+h} - z_t) -> robot-frame displacement over h steps, fitted on the training data.

    Nonlinear and conditioned on z_t because a latent change means different motions in different scenes.
    """
    import torch

    xs, ys = [], []
    for traj in train:
        if traj.poses is None:
            continue
        starts = _starts(traj, steps, 1)
        if starts.size == 0:
            continue
        xs.append(np.concatenate([traj.z[starts], traj.z[starts + steps] - traj.z[starts]], axis=1))
        ys.append(_robot_frame_delta(traj.poses, starts, steps))
    if not xs:
        return None
    x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)
    x_mean, x_std = x.mean(0), x.std(0) + 1e-6
    y_std = y.std(0) + 1e-6
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.SiLU(), torch.nn.Linear(128, 128),
                              torch.nn.SiLU(), torch.nn.Linear(128, 3))
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt = torch.from_numpy((x - x_mean) / x_std)
    yt = torch.from_numpy(y / y_std)
    for _ in range(fit_steps):
        idx = torch.randint(0, xt.shape[0], (512,), generator=generator)
        loss = torch.nn.functional.smooth_l1_loss(net(xt[idx]), yt[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()

    def read_out(z0: np.ndarray, z1: np.ndarray) -> np.ndarray:
        feats = np.concatenate([z0, z1 - z0], axis=1).astype(np.float32)
        with torch.no_grad():
            return net(torch.from_numpy((feats - x_mean) / x_std)).numpy().astype(np.float64) * y_std

    return read_out


def _pose_errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    pos = np.hypot(pred[:, 0] - truth[:, 0], pred[:, 1] - truth[:, 1])
    yaw = np.degrees(np.abs(wrap_angles(pred[:, 2] - truth[:, 2])))
    return {"position_m_median": float(np.median(pos)), "yaw_deg_median": float(np.median(yaw))}


def evaluate(dynamics: LatentDynamics, test: Sequence[Trajectory], train: Sequence[Trajectory],
             horizons_s: Sequence[float] = DEFAULT_HORIZONS_S, stride: int = 2,
             keep_example: bool = True) -> dict[str, Any]:
    """Metrics per horizon and predictor on `test` (see the module docstring); JSON-able."""
    if not test:
        raise DataError("no held-out trajectories to evaluate on")
    dt = dynamics.dt
    steps_of = {float(h): max(1, int(round(h / dt))) for h in horizons_s}
    max_steps = max(steps_of.values())
    preds = predictors(dynamics, train)
    # Gather windows from every test trajectory.
    z0s, prevs, acts, futures = [], [], [], []
    pose_truth: dict[int, list[np.ndarray]] = {s: [] for s in set(steps_of.values())}
    with_poses = all(t.poses is not None for t in test)
    for traj in test:
        starts = _starts(traj, max_steps, stride)
        if starts.size == 0:
            continue
        offsets = np.arange(1, max_steps + 1)
        z0s.append(traj.z[starts])
        prevs.append(traj.z[starts - 1])
        acts.append(traj.actions[starts[:, None] + offsets[None] - 1])  # (S, H, 2)
        futures.append(traj.z[starts[:, None] + offsets[None]])  # (S, H, D)
        if with_poses and traj.poses is not None:
            for s in pose_truth:
                pose_truth[s].append(_robot_frame_delta(traj.poses, starts, s))
    if not z0s:
        raise DataError(f"held-out trajectories are shorter than the longest horizon ({max_steps} steps)")
    z0 = np.concatenate(z0s).astype(np.float32)
    prev = np.concatenate(prevs).astype(np.float32)
    actions = np.concatenate(acts).astype(np.float32)
    future = np.concatenate(futures).astype(np.float64)
    rollouts = {name: np.asarray(fn(z0, prev, actions), dtype=np.float64) for name, fn in preds.items()}

    table: list[dict[str, Any]] = []
    for horizon, steps in steps_of.items():
        truth = future[:, steps - 1]  # (S, D)
        change = truth - z0
        sst = ((change - change.mean(0)) ** 2).sum(0)  # (D,)
        row: dict[str, Any] = {"horizon_s": horizon, "steps": steps, "windows": int(z0.shape[0]),
                               "change_rms": float(np.sqrt((change**2).mean()))}
        readout = _fit_readout(train, steps) if with_poses else None
        moved = np.concatenate(pose_truth[steps]) if readout is not None else None
        if readout is not None and moved is not None:
            row["pose_read_out_floor"] = _pose_errors(readout(z0, truth), moved)
            row["pose_no_motion"] = _pose_errors(np.zeros_like(moved), moved)
        for name, roll in rollouts.items():
            err = roll[:, steps - 1] - truth
            sse = (err**2).sum(0)
            entry: dict[str, Any] = {
                "rmse": float(np.sqrt((err**2).mean())),
                "r2": float(1.0 - sse.sum() / max(sst.sum(), 1e-12)),
                "r2_per_dim": [float(v) for v in 1.0 - sse / np.maximum(sst, 1e-12)],
            }
            if readout is not None and moved is not None:
                entry["pose"] = _pose_errors(readout(z0, roll[:, steps - 1]), moved)
            row[name] = entry
        table.append(row)

    # Calibration of the one-step predictive distribution: share of |error| within 1 and 2 sigma.
    mu, var = dynamics.predict(z0, actions[:, 0])
    zscore = np.abs(future[:, 0] - mu) / np.sqrt(var)
    result: dict[str, Any] = {
        "dt": dt, "windows": int(z0.shape[0]), "trajectories": len(test), "table": table,
        "one_step_calibration": {"within_1_sigma": float((zscore < 1).mean()),
                                 "within_2_sigma": float((zscore < 2).mean()),
                                 "expected": [0.683, 0.954]},
    }
    if keep_example:
        k = int(np.argmax(np.abs(actions[:, :, 1]).mean(1)))  # a window with turning in it
        result["example"] = {"truth": future[k].tolist(), "start": z0[k].tolist(),
                             **{name: roll[k].tolist() for name, roll in rollouts.items()}}
    return result


def format_table(result: dict[str, Any]) -> str:
    """The evaluation as a Markdown table: horizon vs RMSE / R² (and pose error) per predictor."""
    has_pose = any("pose_read_out_floor" in row for row in result["table"])
    head = "| horizon | " + " | ".join(PREDICTORS) + " |"
    lines = [f"RMSE in latent units (R² of the change) over {result['windows']} windows:", "",
             head, "|" + " --- |" * (len(PREDICTORS) + 1)]
    for row in result["table"]:
        cells = [f"{row[p]['rmse']:.3f} ({row[p]['r2']:+.2f})" for p in PREDICTORS]
        lines.append(f"| {row['horizon_s']:.1f} s | " + " | ".join(cells) + " |")
    if has_pose:
        lines += ["", "Pose terms (median error of the read-out displacement, m / deg; floor = read out from the true "
                      "latents; no motion = the motion itself):", "",
                  "| horizon | " + " | ".join(PREDICTORS) + " | floor | no motion |",
                  "|" + " --- |" * (len(PREDICTORS) + 3)]
        for row in result["table"]:
            if "pose_read_out_floor" not in row:
                continue
            cells = [f"{row[p]['pose']['position_m_median']:.3f} / {row[p]['pose']['yaw_deg_median']:.1f}"
                     for p in PREDICTORS]
            for key in ("pose_read_out_floor", "pose_no_motion"):
                cells.append(f"{row[key]['position_m_median']:.3f} / {row[key]['yaw_deg_median']:.1f}")
            lines.append(f"| {row['horizon_s']:.1f} s | " + " | ".join(cells) + " |")
    cal = result["one_step_calibration"]
    lines += ["", f"One-step predictive distribution: {cal['within_1_sigma']:.0%} of errors within 1 sigma, "
                  f"{cal['within_2_sigma']:.0%} within 2 sigma (Gaussian: 68%, 95%)."]
    return "\n".join(lines)


# -- plots ----------------------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_plots(result: dict[str, Any], history: Sequence[dict[str, float]], out_dir: str | Path) -> list[Path]:
    """error_vs_horizon.png, r2_per_dim.png, example_rollout.png, training_curve.png in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    table = result["table"]
    hs = [row["horizon_s"] for row in table]
    has_pose = all("pose_read_out_floor" in row for row in table)
    fig = _figure(13 if has_pose else 9, 3.6)
    axes = fig.subplots(1, 3 if has_pose else 2)
    for name in PREDICTORS:
        axes[0].plot(hs, [row[name]["rmse"] for row in table], "-o", label=name, markersize=3)
        axes[1].plot(hs, [row[name]["r2"] for row in table], "-o", label=name, markersize=3)
        if has_pose:
            axes[2].plot(hs, [row[name]["pose"]["position_m_median"] for row in table], "-o", label=name,
                         markersize=3)
    if has_pose:
        axes[2].plot(hs, [row["pose_read_out_floor"]["position_m_median"] for row in table], "k--",
                     label="read-out floor")
        axes[2].set_title("pose terms: median position error (m)")
    axes[0].set_title("open-loop RMSE (latent units)")
    axes[1].set_title("R² of the latent change")
    axes[1].set_ylim(-1.0, 1.0)
    for ax in axes:
        ax.set_xlabel("horizon (s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    written.append(_save(fig, out / "error_vs_horizon.png"))

    fig = _figure(10, 3.4)
    ax = fig.subplots()
    row = min(table, key=lambda r: abs(r["horizon_s"] - 0.5))
    dims = np.arange(len(row["ensemble"]["r2_per_dim"]))
    width = 0.8 / len(PREDICTORS)
    for k, name in enumerate(PREDICTORS):
        ax.bar(dims + k * width, np.clip(row[name]["r2_per_dim"], -1, 1), width, label=name)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel(f"R² at {row['horizon_s']:.1f} s (clipped to [-1, 1])")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    written.append(_save(fig, out / "r2_per_dim.png"))

    if "example" in result:
        ex = result["example"]
        truth = np.asarray(ex["truth"])
        t = np.arange(1, truth.shape[0] + 1) * result["dt"]
        fig = _figure(12, 6)
        axes = fig.subplots(2, 3).ravel()
        var_order = np.argsort(-truth.var(0))[: len(axes)]
        for ax, d in zip(axes, var_order, strict=False):
            ax.plot(t, truth[:, d], "k-", label="observed")
            for name in PREDICTORS:
                ax.plot(t, np.asarray(ex[name])[:, d], "--", label=name)
            ax.set_title(f"z[{d}]")
            ax.set_xlabel("s ahead")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        written.append(_save(fig, out / "example_rollout.png"))

    if history:
        fig = _figure(6, 3.4)
        ax = fig.subplots()
        steps = [h["step"] for h in history]
        ax.plot(steps, [h["train_nll"] for h in history], label="train NLL")
        ax.plot(steps, [h["val_nll"] for h in history], label="validation NLL")
        ax.set_xlabel("step")
        ax.set_ylabel("Gaussian NLL per dim (normalised)")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / "training_curve.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, format="png")
    return path


