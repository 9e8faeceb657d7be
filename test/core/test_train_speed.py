"""What keeps a GPU busy, checked on the CPU (vae_ros.core.train_speed): batches indexed from the cached split are
the loader's, so histories stay bit-identical; --precision bf16 trains with a finite ELBO; channels_last and the
compile path; the per-part epoch seconds; train-dynamics' chunked index draws and precision."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import bagutil
import numpy as np
import pytest
import torch

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.data import ArraySource, BagSource, SplitDataset, make_loader, smooth_images
from vae_ros.core.errors import BackendUnavailableError, ConfigError
from vae_ros.core.train import TrainConfig, train
from vae_ros.core.train_speed import as_input, autocast, cached_batches, channels_last_applies, place_cached

TINY = ModelConfig(modality="image", image=ImageSpec(32, 32, 3), arch=ArchSpec(latent_dim=4, channels=[8, 16, 32]))
TINY_TRAIN = TrainConfig(epochs=3, batch_size=16, lr=3e-3, warmup_steps=10, val_percent=20.0, seed=7)


@pytest.fixture(scope="module")
def image_source(tmp_path_factory: pytest.TempPathFactory) -> BagSource:
    bag = bagutil.write_image_bag(tmp_path_factory.mktemp("speed") / "images", 100, bad=[4])
    return BagSource(bag, "/camera/image_raw")


@pytest.mark.parametrize("shuffle_buffer", [1, 7, 1024])
def test_batches_indexed_from_the_cache_are_the_loaders(shuffle_buffer: int) -> None:
    split = SplitDataset(ArraySource(smooth_images(90)), TINY, "train", 10.0, shuffle=True,
                         shuffle_buffer=shuffle_buffer, seed=5)
    loader = make_loader(split, 16)
    split.set_epoch(1)
    first = [b.clone() for b in loader]  # streams, and fills the cache
    assert split.cache is not None and split.cache.shape == (split.samples_last_pass, 3, 32, 32)
    assert split.epoch_order() is not None
    for epoch in (1, 2, 3):
        split.set_epoch(epoch)
        from_loader = [b.clone() for b in loader]
        order = split.epoch_order()
        assert order is not None
        from_cache = list(cached_batches(place_cached(split.cache, torch.device("cpu")), order, 16,
                                         torch.device("cpu")))
        assert [b.shape for b in from_cache] == [b.shape for b in from_loader]
        assert all(torch.equal(a, b) for a, b in zip(from_cache, from_loader, strict=True)), epoch
        if epoch == 1:
            assert all(torch.equal(a, b) for a, b in zip(first, from_loader, strict=True))  # disk pass == cache


def test_an_unshuffled_cache_keeps_source_order() -> None:
    images = smooth_images(20)
    split = SplitDataset(ArraySource(images), TINY, "all", shuffle=False)
    list(split)
    assert split.epoch_order().tolist() == list(range(20))  # type: ignore[union-attr]
    assert torch.equal(split.cache, torch.from_numpy(images))  # type: ignore[arg-type]


def test_the_cached_path_gives_the_streamed_runs_history(image_source: BagSource, tmp_path: Path) -> None:
    """cache_mb=0 streams every epoch through the DataLoader (the path before the cache was a tensor); the cached
    run indexes its batches from the tensor: bit-identical histories."""
    cached = train(image_source, TINY, TINY_TRAIN, tmp_path / "cached", progress=False)
    streamed = train(image_source, TINY, dataclasses.replace(TINY_TRAIN, cache_mb=0), tmp_path / "streamed",
                     progress=False)
    assert cached["history"] == streamed["history"]
    assert cached["samples"] == streamed["samples"]
    seconds = cached["seconds"]
    assert set(seconds) == {"train", "validate", "save", "checkpoint", "plots"}
    assert seconds["train"] > 0 and all(v >= 0 for v in seconds.values())


def test_bf16_trains_with_a_finite_elbo_and_says_so(image_source: BagSource, tmp_path: Path) -> None:
    tc = dataclasses.replace(TINY_TRAIN, precision="bf16", channels_last=True)
    summary = train(image_source, TINY, tc, tmp_path / "bf16", progress=False)
    assert summary["train_config"]["precision"] == "bf16" and summary["train_config"]["channels_last"] is True
    elbos = [r["val_elbo"] for r in summary["history"]]
    assert all(math.isfinite(e) for e in elbos) and elbos[-1] > elbos[0]


def test_bf16_autocast_runs_the_convolutions_in_bf16_and_the_loss_stays_float32() -> None:
    from vae_ros.core.models import build_model

    model = build_model(TINY).train()
    x = torch.from_numpy(smooth_images(4))
    seen: list[torch.dtype] = []
    hook = model.encoder.register_forward_hook(lambda _m, _i, out: seen.append(out[0].dtype))
    with autocast(torch.device("cpu"), "bf16"):
        model(x)
    hook.remove()
    assert seen == [torch.bfloat16]
    with autocast(torch.device("cpu"), "fp32"):
        model(x)


def test_bad_precision_is_refused() -> None:
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, got 'fp16'"):
        dataclasses.replace(TINY_TRAIN, precision="fp16").validate()


def test_channels_last_applies_to_2d_convolutions_only(caplog: pytest.LogCaptureFixture) -> None:
    from vae_ros.core.config import ScanSpec
    from vae_ros.core.models import build_model

    assert channels_last_applies(build_model(TINY), True)
    assert not channels_last_applies(build_model(TINY), False)
    scan = ModelConfig(modality="scan", scan=ScanSpec(beams=64), arch=ArchSpec(latent_dim=4, channels=[8, 16]))
    assert not channels_last_applies(build_model(scan), True)
    assert "no effect" in caplog.text
    x = torch.zeros(2, 3, 8, 8)
    assert as_input(x, True).is_contiguous(memory_format=torch.channels_last)
    assert as_input(torch.zeros(2, 2, 64), True).is_contiguous()  # a scan batch: unchanged


def test_a_compile_failure_is_one_clear_error(image_source: BagSource, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Where torch.compile cannot build (no C++ compiler, no Triton), training stops with one line naming the flag."""
    from torch._dynamo.exc import TorchDynamoException

    from vae_ros.core import train as train_module

    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> None:
            raise TorchDynamoException("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(train_module, "compile_module", lambda module: Broken())
    with pytest.raises(BackendUnavailableError, match=r"torch.compile failed here .*train without --compile"):
        train(image_source, TINY, dataclasses.replace(TINY_TRAIN, compile=True), tmp_path / "c", progress=False)


def test_dynamics_index_chunks_are_the_per_step_draws() -> None:
    from vae_ros.control.training.dynamics import INDEX_CHUNK, _index_chunks

    share = np.arange(3, 500, 2)
    steps = 2 * INDEX_CHUNK + 7
    rng = np.random.default_rng(11)
    per_step = [share[rng.integers(0, share.size, size=(5, 32))] for _ in range(steps)]
    chunked = list(_index_chunks(np.random.default_rng(11), share, steps, 5, 32, torch.device("cpu")))
    assert len(chunked) == steps
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(per_step, chunked, strict=True))


def test_dynamics_precision_plumbs_through_and_bf16_stays_finite() -> None:
    from vae_ros.control.training.dynamics import DynamicsTrainConfig, train_dynamics
    from vae_ros.control.training.dynamics_data import Trajectory

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (199, 2)).astype(np.float32)
    z = np.cumsum(np.concatenate([np.zeros((1, 4)), 0.1 * np.tile(actions, 2)]), axis=0).astype(np.float32)
    trajs = [Trajectory("t", np.arange(200) * 0.1, z, actions, None)]
    config = DynamicsTrainConfig(steps=60, batch_size=32, precision="bf16")
    dyn, _, history = train_dynamics(trajs, config)
    assert dyn.training["precision"] == "bf16"
    assert all(math.isfinite(h["val_nll"]) and math.isfinite(h["train_nll_mean"]) for h in history)
    with pytest.raises(ConfigError, match="precision"):
        train_dynamics(trajs, dataclasses.replace(config, precision="half"))
