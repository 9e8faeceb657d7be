"""The training loop: best model and summary, checkpoints without pickles, resume == uninterrupted."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import bagutil
import pytest
import torch
from safetensors.torch import load_file

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.data import BagSource
from vae_ros.core.errors import (
    BackendUnavailableError,
    ConfigError,
    DataError,
    ModelFileError,
    TrainingDivergedError,
)
from vae_ros.core.model_dir import load_model_dir
from vae_ros.core.train import (
    CHECKPOINT_DIR,
    CHECKPOINT_META,
    CURVES_FILE,
    TrainConfig,
    load_checkpoint,
    select_device,
    train,
)

TINY_IMAGE = ModelConfig(modality="image", image=ImageSpec(32, 32, 3),
                         arch=ArchSpec(latent_dim=4, channels=[8, 16, 32]))
TINY_TRAIN = TrainConfig(epochs=2, batch_size=16, lr=3e-3, warmup_steps=10, val_percent=20.0, seed=7)


@pytest.fixture(scope="module")
def image_source(tmp_path_factory: pytest.TempPathFactory) -> BagSource:
    bag = bagutil.write_image_bag(tmp_path_factory.mktemp("train") / "images", 100, bad=[4])
    return BagSource(bag, "/camera/image_raw")


def _states_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_resumed_training_matches_uninterrupted(image_source: BagSource, tmp_path: Path) -> None:
    full = train(image_source, TINY_IMAGE, TINY_TRAIN, tmp_path / "full", progress=False)
    first = train(image_source, TINY_IMAGE, dataclasses.replace(TINY_TRAIN, epochs=1), tmp_path / "split",
                  progress=False)
    assert first["epochs"] == 1
    # A checkpoint written before TrainConfig lost its model overrides still names them: it resumes.
    meta_path = tmp_path / "split" / CHECKPOINT_DIR / CHECKPOINT_META
    meta = json.loads(meta_path.read_text())
    meta["train_config"].update(latent_dim=None, arch_channels=None, likelihood=None, image_size=None,
                                image_channels=None)
    meta_path.write_text(json.dumps(meta))
    # Resume from the checkpoint with nothing but the new epoch count.
    resumed = train(image_source, ModelConfig(modality="image"), TrainConfig(epochs=2), tmp_path / "split",
                    resume=True, progress=False)
    assert resumed["epochs"] == 2 and len(resumed["history"]) == 2
    # Resuming a finished run trains nothing and keeps the summary.
    again = train(image_source, TINY_IMAGE, TrainConfig(epochs=2), tmp_path / "split", resume=True,
                  progress=False)
    assert again["history"] == resumed["history"] and again["samples"] == resumed["samples"]
    for a, b in zip(full["history"], resumed["history"], strict=True):
        assert a["val_elbo"] == pytest.approx(b["val_elbo"], rel=1e-5)
        assert a["train_elbo"] == pytest.approx(b["train_elbo"], rel=1e-5)
    _states_close(load_checkpoint(tmp_path / "full" / CHECKPOINT_DIR).model_state,
                  load_checkpoint(tmp_path / "split" / CHECKPOINT_DIR).model_state)
    _states_close(load_file(str(tmp_path / "full" / "weights.safetensors")),
                  load_file(str(tmp_path / "split" / "weights.safetensors")))


def test_training_writes_a_model_directory_with_its_summary(image_source: BagSource, tmp_path: Path) -> None:
    summary = train(image_source, TINY_IMAGE, TINY_TRAIN, tmp_path, progress=False)
    config, model = load_model_dir(tmp_path)
    assert config.training == summary and config.latent_dim == 4 and not model.training
    assert summary["samples"]["skipped"] == 1
    assert summary["samples"]["train"] + summary["samples"]["val"] == 99
    best = summary["best"]
    assert summary["best_epoch"] == best["epoch"]
    assert best["val_elbo"] == max(h["val_elbo"] for h in summary["history"])
    assert best["val_psnr_db"] > 10 and 0 <= best["active_units"] <= 4 and len(best["kl_per_dim"]) == 4
    # The latent range its consumers hold latents to (vae_ros.core.latent_range): the validation means'.
    from vae_ros.core.latent_range import latent_bound

    latent_range = summary["latent_range"]
    assert latent_range["samples"] == summary["samples"]["val"] and latent_range["abs_max"] > 0
    assert latent_bound(summary) == latent_range["bound"] == pytest.approx(4 * latent_range["abs_max"], abs=0.01)
    assert (tmp_path / CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The checkpoint is safetensors + JSON only: nothing that would need unpickling.
    names = sorted(p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir())
    assert names == ["state.json", "state.safetensors"]
    meta = json.loads((tmp_path / CHECKPOINT_DIR / "state.json").read_text())
    assert meta["epoch"] == 2 and meta["optimizer"]["param_groups"][0]["lr"] == TINY_TRAIN.lr
    # The optimizer state restores exactly into a fresh Adam.
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_DIR)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0)
    optimizer.load_state_dict(checkpoint.optimizer_state)
    assert optimizer.param_groups[0]["lr"] == TINY_TRAIN.lr
    assert int(optimizer.state[model.encoder.fc_mu.weight]["step"]) == meta["step"]


@pytest.mark.parametrize("modality", ["scan", "pointcloud"])
def test_lidar_models_train_from_bags(tmp_path: Path, modality: str) -> None:
    if modality == "scan":
        bag = bagutil.write_scan_bag(tmp_path / "bag", 40, storage="sqlite3", beams=64)
        source = BagSource(bag, "/scan")
        from vae_ros.core.data import scan_spec_from_message

        config = ModelConfig(modality="scan", scan=scan_spec_from_message(source.first_message()),
                             arch=ArchSpec(latent_dim=4, channels=[8, 16]))
    else:
        bag = bagutil.write_cloud_bag(tmp_path / "bag", 40)
        source = BagSource(bag, "/lidar/points")
        config = ModelConfig(modality="pointcloud", arch=ArchSpec(latent_dim=4, channels=[8, 16]))
    summary = train(source, config, dataclasses.replace(TINY_TRAIN, epochs=1, val_percent=25.0),
                    tmp_path / "model", progress=False)
    best = summary["best"]
    assert 0 < best["val_range_mae_m"] < 10 and "val_psnr_db" not in best
    assert load_model_dir(tmp_path / "model")[0].modality == modality


def test_resume_needs_a_checkpoint(image_source: BagSource, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no training checkpoint"):
        train(image_source, TINY_IMAGE, TINY_TRAIN, tmp_path, resume=True, progress=False)


def test_bad_settings_are_refused_before_training(image_source: BagSource, tmp_path: Path) -> None:
    for change, message in [({"epochs": 0}, "epochs"), ({"batch_size": 1}, "batch size"),
                            ({"val_percent": 0.0}, "validation percent"), ({"lr": -1.0}, "learning rate"),
                            ({"kl_annealing": "cosine"}, "KL annealing")]:
        with pytest.raises(ConfigError, match=message):
            train(image_source, TINY_IMAGE, dataclasses.replace(TINY_TRAIN, **change), tmp_path, progress=False)
    with pytest.raises(DataError, match="modality is 'scan'"):
        train(image_source, ModelConfig(modality="scan"), TINY_TRAIN, tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is absent")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailableError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(ConfigError, match="device must be"):
        select_device("tpu")


def test_a_non_finite_loss_stops_training_naming_its_step(image_source: BagSource, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The finite-loss check runs on the device and is read every HOST_READ_EVERY steps and at the end of the
    epoch (no host sync per step), and still names the first bad step and its loss."""
    from vae_ros.core import train as train_module

    real_loss, calls = train_module.vae_loss, []

    def loss_that_breaks_at_step_3(*args: object, **kwargs: object) -> object:
        terms = real_loss(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(1)
        return dataclasses.replace(terms, loss=terms.loss * float("nan")) if len(calls) == 4 else terms

    monkeypatch.setattr(train_module, "vae_loss", loss_that_breaks_at_step_3)
    with pytest.raises(TrainingDivergedError, match=r"the loss became nan at epoch 1, step 3; lower --lr"):
        train(image_source, TINY_IMAGE, TINY_TRAIN, tmp_path / "diverged", progress=False)
