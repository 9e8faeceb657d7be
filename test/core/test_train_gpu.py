"""Training on a CUDA GPU (marked `gpu`: skipped, with the reason, where torch sees no CUDA device; all of them
run by scripts/gpu_check.sh). Needs torch, numpy, safetensors, tqdm and matplotlib only: no bag, no OpenCV, no ROS.

- a training step on cuda gives the CPU's loss and weights (TF32 off, the same reparameterisation noise);
- the cached split goes to the GPU once, and its batches are the CPU's; pinned host memory when it does not fit;
- a whole `train` on cuda in fp32 and bf16 + channels_last keeps a finite ELBO, the cache on the GPU;
- train-dynamics on cuda, and backend auto on cuda (torch-cuda where ONNX Runtime has no CUDA provider).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.data import ArraySource, SplitDataset, smooth_images
from vae_ros.core.distributed import SINGLE
from vae_ros.core.losses import KLAnnealing
from vae_ros.core.models import VAE, build_model
from vae_ros.core.train import RunState, TrainConfig, train, train_epoch
from vae_ros.core.train_speed import cached_batches, place_cached

pytestmark = pytest.mark.gpu

TINY = ModelConfig(modality="image", image=ImageSpec(32, 32, 3), arch=ArchSpec(latent_dim=4, channels=[8, 16, 32]))
CUDA = torch.device("cuda")


def array_source(count: int = 96, seed: int = 0) -> ArraySource:
    return ArraySource(smooth_images(count, seed=seed))


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TF32 off (cuDNN convolutions and matmuls use it by default on Ampere and later), restored afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_a_training_step_on_cuda_matches_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    batches = [torch.from_numpy(smooth_images(32, seed=s)) for s in range(3)]  # (32, 3, 32, 32) each
    noise = torch.randn(32, TINY.latent_dim)  # the same reparameterisation noise on both devices
    monkeypatch.setattr(VAE, "reparameterize",
                        staticmethod(lambda mu, logvar: mu + torch.exp(0.5 * logvar) * noise.to(mu.device)))
    torch.manual_seed(0)
    reference = build_model(TINY).train()
    results = {}
    with exact_float32():
        for name in ("cpu", "cuda"):
            device = torch.device(name)
            model = copy.deepcopy(reference).to(device)
            # SGD: an update in proportion to the gradient. Adam's first steps move every weight by about lr
            # whatever its gradient's size, so rounding noise on a gradient that is all but zero (a convolution's
            # bias before BatchNorm) would flip its sign between the devices.
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
            tc = TrainConfig(batch_size=32, device=name)
            sums = train_epoch(model, optimizer, batches, None, KLAnnealing("linear", 10), RunState(time.monotonic()),
                               TINY, tc, 1, device, SINGLE)
            results[name] = (sums, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    (cpu_sums, cpu_state), (gpu_sums, gpu_state) = results["cpu"], results["cuda"]
    assert gpu_sums["seen"] == cpu_sums["seen"] == 96
    for key in ("elbo", "recon_nll", "kl"):
        assert gpu_sums[key] == pytest.approx(cpu_sums[key], rel=1e-4, abs=1e-3), key
    for key, value in cpu_state.items():
        if value.is_floating_point():
            torch.testing.assert_close(gpu_state[key], value, rtol=1e-3, atol=1e-4, msg=key)


def _cached_split() -> SplitDataset:
    split = SplitDataset(array_source(), TINY, "train", 10.0, shuffle=True, shuffle_buffer=16, seed=3)
    split.set_epoch(1)
    for _ in split:  # the first pass fills the cache
        pass
    assert split.cache is not None
    return split


def test_the_cached_split_goes_to_the_gpu_once_and_gives_the_cpus_batches() -> None:
    split = _cached_split()
    split.set_epoch(2)
    order = split.epoch_order()
    assert order is not None
    on_cpu = [b.clone() for b in cached_batches(split.cache, order, 16, torch.device("cpu"))]
    placed = place_cached(split.cache, CUDA)
    assert placed.is_cuda
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        on_gpu = list(cached_batches(placed, order, 16, CUDA))
        torch.cuda.synchronize()
    copies = [e for e in prof.events() if "HtoD" in e.name or "Memcpy HtoD" in e.name]
    if not prof.events():
        pytest.skip("the profiler recorded no CUDA activity here (CUPTI missing?): cannot count the copies")
    assert len(copies) <= 1, [e.name for e in copies]  # the epoch's row order, nothing per batch
    assert [b.device.type for b in on_gpu] == ["cuda"] * len(on_cpu)
    for cpu_batch, gpu_batch in zip(on_cpu, on_gpu, strict=True):
        assert torch.equal(cpu_batch, gpu_batch.cpu())


def test_a_cache_too_large_for_the_gpu_stays_pinned_on_the_host() -> None:
    split = _cached_split()
    placed = place_cached(split.cache, CUDA, fraction=0.0)
    assert placed.device.type == "cpu" and placed.is_pinned()
    order = np.arange(placed.shape[0])
    batches = list(cached_batches(placed, order, 16, CUDA))
    assert all(b.is_cuda for b in batches)
    assert torch.equal(torch.cat(batches).cpu(), split.cache)


@pytest.mark.parametrize("precision, channels_last", [("fp32", False), ("bf16", True)])
def test_training_on_cuda_keeps_a_finite_elbo(tmp_path: Path, precision: str, channels_last: bool) -> None:
    tc = TrainConfig(epochs=3, batch_size=16, lr=3e-3, warmup_steps=10, val_percent=20.0, seed=7, device="cuda",
                     precision=precision, channels_last=channels_last)
    summary = train(array_source(), TINY, tc, tmp_path / precision, progress=False)
    assert summary["device"].startswith("cuda") and summary["train_config"]["precision"] == precision
    elbos = [record["val_elbo"] for record in summary["history"]]
    assert all(math.isfinite(e) for e in elbos) and elbos[-1] > elbos[0]


def test_train_dynamics_on_cuda() -> None:
    from vae_ros.control.training.dynamics import DynamicsTrainConfig, train_dynamics
    from vae_ros.control.training.dynamics_data import Trajectory

    rng = np.random.default_rng(0)
    trajs = []
    for k in range(2):
        actions = rng.uniform(-1, 1, (199, 2)).astype(np.float32)
        z = np.cumsum(np.concatenate([np.zeros((1, 4)), 0.1 * np.tile(actions, 2)]), axis=0).astype(np.float32)
        trajs.append(Trajectory(f"t{k}", np.arange(200) * 0.1, z, actions, None))
    for precision in ("fp32", "bf16"):
        config = DynamicsTrainConfig(steps=120, batch_size=64, device="cuda", precision=precision)
        _, _, history = train_dynamics(trajs, config)
        assert all(math.isfinite(h["val_nll"]) and math.isfinite(h["train_nll_mean"]) for h in history)


def test_backend_auto_on_cuda_is_torch_cuda_without_an_onnx_runtime_cuda_provider(tmp_path: Path) -> None:
    import onnxruntime

    from vae_ros.core.backends import create_backend
    from vae_ros.core.export import export_onnx
    from vae_ros.core.model_dir import save_model_dir

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(onnxruntime.get_available_providers()):
        pytest.skip("this ONNX Runtime has a CUDA provider: auto rightly takes it")
    try:
        import torch_tensorrt  # noqa: F401

        pytest.skip("torch_tensorrt imports here: auto rightly takes TensorRT")
    except ImportError:
        pass
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    save_model_dir(tmp_path, TINY, model)
    export_onnx(tmp_path)  # a current encoder.onnx: auto would take it on the CPU
    backend = create_backend(tmp_path, "auto", "cuda")
    assert backend.name == "torch-cuda"
    x = smooth_images(4)
    with exact_float32():
        mean, _ = backend.encode(x)
    reference, _ = create_backend(tmp_path, "torch", "cpu").encode(x)
    np.testing.assert_allclose(mean, reference, rtol=1e-4, atol=1e-5)
