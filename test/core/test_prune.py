"""Structured channel pruning: narrower layers with the right weights, a model directory that loads on its own, ONNX
Runtime exports, a fine-tune that helps, and one clear error for fractions that cannot work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import bagutil
import numpy as np
import pytest
import torch

from vae_ros.core.backends import open_onnx_session
from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig, PointCloudSpec, ScanSpec
from vae_ros.core.data import BagSource
from vae_ros.core.errors import ConfigError, DataError
from vae_ros.core.export import example_inputs
from vae_ros.core.model_dir import CONFIG_FILE, ENCODER_INT8_ONNX, ENCODER_ONNX, load_model_dir
from vae_ros.core.models import VAE, build_model
from vae_ros.core.prune import PRUNED_FROM_KEY, prune_model, prune_model_dir, pruned_channels
from vae_ros.core.train import TrainConfig, train

CONFIGS = {
    "image": ModelConfig(modality="image", image=ImageSpec(32, 32, 3), arch=ArchSpec(latent_dim=4, channels=[8, 16, 32])),
    "scan": ModelConfig(modality="scan", scan=ScanSpec(beams=64), arch=ArchSpec(latent_dim=4, channels=[8, 16, 32])),
    "pointcloud": ModelConfig(modality="pointcloud", pointcloud=PointCloudSpec(rows=8, cols=32),
                              arch=ArchSpec(latent_dim=4, channels=[8, 16, 32])),
}


def _random_model(config: ModelConfig, seed: int = 0) -> VAE:
    """A model with random (not default) BatchNorm statistics and affine parameters, in eval mode."""
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _convs(model: VAE) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]


@pytest.mark.parametrize("modality", sorted(CONFIGS))
def test_pruned_model_has_fewer_channels_and_the_same_shapes(modality: str) -> None:
    model = _random_model(CONFIGS[modality])
    pruned = prune_model(model, 0.5)
    assert pruned.config.arch.channels == [4, 8, 16]
    assert model.config.arch.channels == [8, 16, 32]  # the original is left as it was
    # Physically narrower: every hidden convolution has half the output channels, the output one keeps its own.
    before, after = _convs(model), _convs(pruned)
    for old, new in zip(before[:-1], after[:-1], strict=True):
        assert new.out_channels * 2 == old.out_channels
    assert after[-1].out_channels == before[-1].out_channels
    assert sum(p.numel() for p in pruned.parameters()) < 0.5 * sum(p.numel() for p in model.parameters())
    x = torch.from_numpy(example_inputs(model.config, 3))
    with torch.no_grad():
        logits, mu, logvar = pruned(x)
        ref_logits, ref_mu, _ = model(x)
    assert mu.shape == logvar.shape == ref_mu.shape == (3, 4)
    assert logits.shape == ref_logits.shape


@pytest.mark.parametrize("modality", sorted(CONFIGS))
def test_removing_dead_channels_leaves_the_outputs_exactly(modality: str) -> None:
    """Channels whose BatchNorm outputs zero (gamma = beta = 0), and decoder input rows of zero, contribute nothing:
    the criterion ranks them last, and the pruned model must compute exactly what the full one does. This checks
    every index of the surgery (filters, BatchNorm statistics, the next layer's inputs, the flattened heads)."""
    model = _random_model(CONFIGS[modality], seed=3)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for stage in [*model.encoder.stages, *model.decoder.stages[:-1]]:
            norm = next(m for m in stage if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)))
            dead = rng.choice(norm.num_features, norm.num_features // 2, replace=False)
            norm.weight[dead] = 0.0
            norm.bias[dead] = 0.0
        fc = model.decoder.fc
        rows = fc.weight.view(model.decoder.start_channels, -1, fc.in_features)
        bias = fc.bias.view(model.decoder.start_channels, -1)
        dead = rng.choice(model.decoder.start_channels, model.decoder.start_channels // 2, replace=False)
        rows[dead] = 0.0
        bias[dead] = 0.0
    pruned = prune_model(model, 0.5)
    x = torch.from_numpy(example_inputs(model.config, 4, seed=1))
    with torch.no_grad():
        mu, logvar = pruned.encode(x)
        ref_mu, ref_logvar = model.encode(x)
        torch.testing.assert_close(mu, ref_mu, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(logvar, ref_logvar, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pruned.decode(ref_mu), model.decode(ref_mu), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("channels", "fraction", "fragment"), [
    ([8, 16], 0.0, "in (0, 1)"),
    ([8, 16], 1.0, "in (0, 1)"),
    ([8, 16], -0.5, "in (0, 1)"),
    ([8, 16], float("nan"), "in (0, 1)"),
    ([1, 16], 0.6, "stage 0 with no channel"),
    ([8, 16], 0.01, "removes no channel"),
])
def test_bad_fractions_are_refused(channels: list[int], fraction: float, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        pruned_channels(channels, fraction)


def test_fractions_round_to_whole_channels() -> None:
    assert pruned_channels([16, 32, 64, 128], 0.25) == [12, 24, 48, 96]
    assert pruned_channels([16, 32, 64, 128], 0.75) == [4, 8, 16, 32]
    assert pruned_channels([3, 5], 0.5) == [2, 3]  # 1.5 and 2.5 round up


TINY_IMAGE = ModelConfig(modality="image", image=ImageSpec(16, 16, 3), arch=ArchSpec(latent_dim=4, channels=[8, 16, 32]))
TINY_TRAIN = TrainConfig(epochs=2, batch_size=16, lr=3e-3, warmup_steps=10, val_percent=20.0, seed=7)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BagSource]:
    root = tmp_path_factory.mktemp("prune")
    bag = bagutil.write_image_bag(root / "images", 80)
    source = BagSource(bag, "/camera/image_raw")
    train(source, TINY_IMAGE, TINY_TRAIN, root / "model", progress=False)
    return root / "model", source


def test_pruned_directory_loads_alone_exports_and_the_fine_tune_helps(trained: tuple[Path, BagSource],
                                                                       tmp_path: Path) -> None:
    model_dir, _ = trained
    original = tmp_path / "original"
    shutil.copytree(model_dir, original)
    out = tmp_path / "pruned"
    report = prune_model_dir(original, out, 0.5, epochs=2, held_out=16, calib_samples=16, repeats=5, progress=False,
                             min_cosine=0.0, say=lambda line: None)  # data: the bag model.json's training summary names
    assert report.channels_after == [4, 8, 16] and report.parameters_after < report.parameters_before
    # Fine-tuning on the same data improves the pruned model's held-out ELBO (same samples, same noise draws).
    assert report.elbo_pruned > report.elbo_pruned_no_fine_tune
    assert -1.0 <= report.latent_cosine_min <= report.latent_cosine_mean <= 1.0
    assert set(report.latency_ms) == {"encoder_fp32", "encoder_int8", "decoder_fp32"}
    assert all(t["unpruned"] > 0 and t["pruned"] > 0 for t in report.latency_ms.values())
    assert "ratio" in report.format_table()

    shutil.rmtree(original)  # the pruned directory stands on its own
    data = json.loads((out / CONFIG_FILE).read_text())
    assert data["arch"]["channels"] == [4, 8, 16]
    assert data["training"][PRUNED_FROM_KEY]["fraction"] == 0.5
    assert data["training"][PRUNED_FROM_KEY]["channels"] == [8, 16, 32]
    config, pruned = load_model_dir(out)
    assert [m.out_channels for m in _convs(pruned)] == [4, 8, 16, 8, 4, 3]
    assert not (out / "checkpoint").exists()
    x = example_inputs(config, 2, seed=4)
    session = open_onnx_session(out / ENCODER_ONNX)
    mean, logvar = session.run(None, {"input": x})
    with torch.no_grad():
        ref, _ = pruned.encode(torch.from_numpy(x))
    assert mean.shape == logvar.shape == (2, 4)
    np.testing.assert_allclose(mean, ref.numpy(), atol=1e-4)
    int8_mean, _ = open_onnx_session(out / ENCODER_INT8_ONNX).run(None, {"input": x})
    assert int8_mean.shape == (2, 4)


def test_pruning_never_writes_over_a_model(trained: tuple[Path, BagSource], tmp_path: Path) -> None:
    model_dir, _ = trained
    with pytest.raises(ConfigError, match="--out"):
        prune_model_dir(model_dir, None, 0.5)
    with pytest.raises(ConfigError, match="not --model itself"):
        prune_model_dir(model_dir, model_dir, 0.5)
    with pytest.raises(ConfigError, match="not an empty directory"):
        prune_model_dir(model_dir, model_dir.parent, 0.5)
    data = json.loads((model_dir / CONFIG_FILE).read_text())
    data["training"].pop("source")
    no_source = tmp_path / "no_source"
    shutil.copytree(model_dir, no_source)
    (no_source / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(DataError, match="--bag PATH --topic NAME or --images DIR"):
        prune_model_dir(no_source, tmp_path / "out", 0.5)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
