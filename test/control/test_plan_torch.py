"""The planner's costs on a torch device (vae_ros.control.runtime.plan_torch) against NumPy's, on the CPU's torch:
the packaged control model and its dynamics, the planner as world_model_node runs it; the same random draws
(the NumPy Generator in planner.plan, in both paths), so the plans must be the same."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from vae_ros.control.runtime.control_model import control_model_dir, servo_head_dir
from vae_ros.control.runtime.dynamics import load_dynamics_dir, plan_device
from vae_ros.control.runtime.plan_torch import TorchPlanCosts, measure_plans
from vae_ros.control.runtime.planner import (
    MpcConfig,
    MpcState,
    differential_drive_config,
    plan,
    plan_step,
    rate_limit,
    sequence_costs,
)
from vae_ros.control.runtime.pose_head import PoseHeadNumpy
from vae_ros.control.runtime.servo import ServoConfig
from vae_ros.core.errors import BackendUnavailableError, ConfigError

TOL = 1e-5


@pytest.fixture(scope="module")
def packaged() -> tuple[MpcConfig, MpcConfig, np.ndarray]:
    """(NumPy config, device config, a stream of plausible latents) of models/control_default."""
    model_dir = control_model_dir("")
    dynamics = load_dynamics_dir(model_dir / "dynamics")
    dynamics.rollout_backend = "numpy"
    head = PoseHeadNumpy.load(servo_head_dir(model_dir), dynamics.latent_dim)
    tolerance = 0.2
    numpy_config = differential_drive_config(dynamics, head, tolerance, servo=ServoConfig(tolerance=tolerance))
    device_config = replace(numpy_config, device_costs=TorchPlanCosts(dynamics, head, "cpu"))
    rng = np.random.default_rng(0)
    latents = (dynamics.z_mean + 0.8 * dynamics.z_std * rng.standard_normal((8, dynamics.latent_dim))).astype(np.float32)
    return numpy_config, device_config, latents


def _ring(radius: float, gap: float = 0.6) -> np.ndarray:
    """LiDAR points (P, 2) on a circle round the robot, open ahead over `gap` rad."""
    angles = np.linspace(gap / 2, 2 * math.pi - gap / 2, 90)
    return (radius * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(np.float32)


def test_costs_and_rollouts_match_numpys_for_every_cost_branch(packaged: tuple[MpcConfig, MpcConfig, np.ndarray]) -> None:
    numpy_config, device_config, latents = packaged
    rng = np.random.default_rng(1)
    h = numpy_config.horizon
    actions = rate_limit((rng.uniform(-1, 1, (157, h, 2)) * numpy_config.limits).astype(np.float32), (0.1, 0.0),
                         numpy_config)  # not a multiple of the members: the split pads
    z, goal = latents[0], latents[1]
    cases = [dict(), dict(obstacles=_ring(0.7)), dict(belief=np.array([1.0, -0.4, 2.5])),
             dict(obstacles=_ring(0.5), belief=np.array([-0.8, 0.3, -1.0]), waypoint=np.array([0.4, 0.5]))]
    for cost_kind in ("pose", "latent"):
        for case in cases:
            ref_cost, ref_pred = sequence_costs(replace(numpy_config, cost=cost_kind), z, goal, actions, **case)
            cost, pred = device_config.device_costs.sequence_costs(replace(device_config, cost=cost_kind), z, goal,
                                                                   actions, **case)
            np.testing.assert_allclose(pred.numpy(), ref_pred, atol=TOL, err_msg=f"{cost_kind} {sorted(case)}")
            np.testing.assert_allclose(cost, ref_cost, rtol=TOL, atol=TOL, err_msg=f"{cost_kind} {sorted(case)}")


def test_cem_plans_are_numpys_given_the_same_draws(packaged: tuple[MpcConfig, MpcConfig, np.ndarray]) -> None:
    numpy_config, device_config, latents = packaged
    extra = np.zeros((1, numpy_config.horizon, 2), np.float32)
    for seed in range(3):
        args = dict(warm=None, command=(0.05, 0.1), obstacles=_ring(0.8), extra=extra,
                    belief=np.array([1.2, 0.5, 0.3]))
        ref = plan(numpy_config, latents[seed], latents[-1], rng=np.random.default_rng(seed), **args)
        got = plan(device_config, latents[seed], latents[-1], rng=np.random.default_rng(seed), **args)
        np.testing.assert_allclose(got[0], ref[0], atol=TOL)  # the plan
        assert got[1] == pytest.approx(ref[1], rel=TOL, abs=TOL)  # its cost
        np.testing.assert_allclose(got[2], ref[2], atol=TOL)  # its predicted latents


def test_planning_steps_are_numpys_step_after_step(packaged: tuple[MpcConfig, MpcConfig, np.ndarray]) -> None:
    # No hand-over to the servo law: these random latents read as near the goal, and every step is to plan.
    configs = [replace(c, handover_distance=0.0, handover_near=0.0) for c in packaged[:2]]
    latents = packaged[2]
    obstacles = _ring(0.9)
    states = [MpcState(), MpcState()]
    planned = 0
    for z in latents[:6]:
        commands = []
        for i, config in enumerate(configs):
            states[i], command = plan_step(states[i], z, latents[-1], config, obstacles)
            commands.append(command)
        ref, got = states
        np.testing.assert_allclose(commands[1], commands[0], atol=TOL)
        assert got.mode == ref.mode and got.step == ref.step
        if ref.plan is not None:
            planned += 1
            np.testing.assert_allclose(got.plan, ref.plan, atol=TOL)
            np.testing.assert_allclose(got.predicted, ref.predicted, atol=TOL)
            assert got.cost == pytest.approx(ref.cost, rel=TOL, abs=TOL)
    assert planned >= 3  # the comparison was about plans, not servo-law steps


def test_measure_plans_times_both_ways(packaged: tuple[MpcConfig, MpcConfig, np.ndarray]) -> None:
    """What plan_device auto decides by (on a GPU; here with the CPU's torch as the device)."""
    numpy_ms, device_ms = measure_plans(packaged[0], packaged[1].device_costs, runs=2)
    assert numpy_ms > 0 and device_ms > 0


def test_plan_device_choice() -> None:
    assert plan_device("cpu", "cuda") == "cpu"
    assert plan_device("cuda", "cpu") == "cuda"
    assert plan_device("auto", "cpu") == "cpu"
    assert plan_device("auto", "cuda") == "cuda"  # where the node's model runs on the GPU
    with pytest.raises(ConfigError, match="plan_device must be one of auto, cpu, cuda"):
        plan_device("gpu", "cpu")


def test_cuda_without_a_gpu_is_refused_in_one_line(packaged: tuple[MpcConfig, MpcConfig, np.ndarray]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: nothing to refuse")
    with pytest.raises(BackendUnavailableError, match="sees no CUDA device"):
        TorchPlanCosts(packaged[0].dynamics, packaged[0].head, "cuda")


@pytest.mark.gpu
def test_on_cuda_the_plans_are_the_cpus(packaged: tuple[MpcConfig, MpcConfig, np.ndarray]) -> None:
    numpy_config, _, latents = packaged
    cuda_config = replace(numpy_config, device_costs=TorchPlanCosts(numpy_config.dynamics, numpy_config.head, "cuda"))
    args = dict(warm=None, command=(0.0, 0.0), obstacles=_ring(0.8))
    ref_cost, _ = sequence_costs(numpy_config, latents[0], latents[-1],
                                 rate_limit(np.zeros((4, numpy_config.horizon, 2), np.float32), (0, 0), numpy_config))
    assert np.isfinite(ref_cost).all()
    ref = plan(numpy_config, latents[0], latents[-1], rng=np.random.default_rng(0), **args)
    got = plan(cuda_config, latents[0], latents[-1], rng=np.random.default_rng(0), **args)
    # cuBLAS may take TF32 for float32 matmuls on recent GPUs: the costs agree to about 1e-3, and a plan may then
    # take another of two near-equal candidates; its cost must be as good.
    assert got[1] <= ref[1] * (1 + 1e-3) + 1e-3
