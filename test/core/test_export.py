"""Exports: ONNX graphs (checked, dynamic batch, recorded), INT8 calibration sources and its quality gate,
TorchScript, --out copies, and the errors when something cannot be exported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bagutil  # test/bagutil.py (test/conftest.py puts test/ on sys.path)
import numpy as np
import onnx
import pytest
import torch

from vae_ros.core.backends import create_backend
from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.errors import BackendUnavailableError, ConfigError, DataError, ModelFileError
from vae_ros.core.export import (
    MAX_OPSET,
    calibration_data,
    example_inputs,
    export_int8,
    export_model,
    export_onnx,
    export_tensorrt,
    export_torchscript,
    pin_onnx_versions,
    split_calibration,
)
from vae_ros.core.model_dir import load_model_dir, save_model_dir
from vae_ros.core.models import build_model


def image_config(size: int = 32) -> ModelConfig:
    return ModelConfig("image", arch=ArchSpec(latent_dim=6, channels=[8, 16, 16]),
                       image=ImageSpec(height=size, width=size, channels=3))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = image_config()
    return save_model_dir(tmp_path / "model", config, build_model(config).eval())


def test_onnx_export_is_checked_dynamic_and_recorded(model_dir: Path) -> None:
    result = export_onnx(model_dir)
    assert result.files == ["encoder.onnx", "decoder.onnx"]
    assert result.figures["max_abs_mean"] <= 1e-4
    encoder = onnx.load(str(model_dir / "encoder.onnx"))
    onnx.checker.check_model(encoder)
    assert encoder.opset_import[0].version >= 17
    assert [o.name for o in encoder.graph.output] == ["mean", "logvar"]
    batch_dim = encoder.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch" and not batch_dim.HasField("dim_value")
    decoder = onnx.load(str(model_dir / "decoder.onnx"))
    assert [o.name for o in decoder.graph.output] == ["reconstruction"]

    records = json.loads((model_dir / "model.json").read_text())["exports"]
    assert set(records) == {"encoder.onnx", "decoder.onnx"}
    assert records["encoder.onnx"]["format"] == "onnx" and len(records["encoder.onnx"]["weights_sha256"]) == 64
    assert records["encoder.onnx"]["opset"] == 17
    load_model_dir(model_dir)  # model.json with an exports section still loads
    assert not list(model_dir.glob(".*.tmp"))


def test_failed_parity_writes_nothing(model_dir: Path) -> None:
    with pytest.raises(ModelFileError, match="does not match PyTorch.*nothing was written"):
        export_onnx(model_dir, atol=-1.0)  # no graph can be within a negative tolerance
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.json", "weights.safetensors"]


def test_bad_options(model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="opset must be from 17 to 20"):
        export_onnx(model_dir, opset=13)
    with pytest.raises(ConfigError, match="format must be one of"):
        export_model(model_dir, "tflite")
    with pytest.raises(ModelFileError, match="does not exist"):
        export_onnx(model_dir.parent / "missing")


def test_out_writes_a_complete_model_directory(model_dir: Path, tmp_path: Path) -> None:
    export_torchscript(model_dir)
    out = tmp_path / "deploy"
    export_onnx(model_dir, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx", "model.json",
                                                      "weights.safetensors"]
    assert set(json.loads((out / "model.json").read_text())["exports"]) == {"encoder.onnx", "decoder.onnx"}
    assert not (model_dir / "encoder.onnx").exists()
    x = example_inputs(image_config(), 3)
    np.testing.assert_allclose(create_backend(out, "onnxruntime").encode(x)[0],
                               create_backend(model_dir, "torch").encode(x)[0], atol=1e-4)

    # The same model again: exports accumulate.
    export_torchscript(model_dir, out_dir=out)
    assert {"encoder.onnx", "encoder.torchscript.pt"} <= {p.name for p in out.iterdir()}
    # Another model into the same directory: the first model's exports are gone, not served as the new one.
    torch.manual_seed(1)
    other = save_model_dir(tmp_path / "other", image_config(), build_model(image_config()).eval())
    export_torchscript(other, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["decoder.torchscript.pt", "encoder.torchscript.pt",
                                                      "model.json", "weights.safetensors"]
    assert isinstance(create_backend(out), type(create_backend(other, "torch")))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_matches_eager(model_dir: Path) -> None:
    result = export_torchscript(model_dir)
    assert result.files == ["encoder.torchscript.pt", "decoder.torchscript.pt"]
    # The test loads its own fresh export; vae_ros itself never loads TorchScript.
    encoder = torch.jit.load(str(model_dir / "encoder.torchscript.pt"))
    decoder = torch.jit.load(str(model_dir / "decoder.torchscript.pt"))
    x = example_inputs(image_config(), 4, seed=3)
    ref_mean, _ = create_backend(model_dir, "torch").encode(x)
    with torch.inference_mode():
        mean, _ = encoder(torch.from_numpy(x))
        recon = decoder(mean)
    np.testing.assert_allclose(mean.numpy(), ref_mean, atol=1e-5)
    assert recon.shape == (4, 3, 32, 32) and float(recon.min()) >= 0.0


def test_int8_from_an_image_folder_and_from_the_training_summary(model_dir: Path, tmp_path: Path) -> None:
    folder = bagutil.write_image_folder(tmp_path / "images", 48)
    result = export_int8(model_dir, images=str(folder), calib_samples=32)
    assert (model_dir / "encoder.int8.onnx").is_file() and (model_dir / "encoder.onnx").is_file()
    print(f"\nINT8 cosine on held-out images: {result.figures['cosine_mean']:.5f}")
    assert result.figures["cosine_mean"] >= 0.99
    assert 0 < result.figures["calibration_samples"] <= 32

    # No source given: the one model.json's training summary names (as vae_ros.core.data describes it).
    data = json.loads((model_dir / "model.json").read_text())
    data["training"] = {"source": {"kind": "images", "path": str(folder), "files": 48}}
    (model_dir / "model.json").write_text(json.dumps(data))
    (model_dir / "encoder.int8.onnx").unlink()
    export_int8(model_dir, calib_samples=16)
    assert (model_dir / "encoder.int8.onnx").is_file()


def test_int8_calibration_splits_train_and_validation(model_dir: Path, tmp_path: Path) -> None:
    bag = bagutil.write_image_bag(tmp_path / "bag", 60)
    calibration, held_out = calibration_data(image_config(), 20, bag=str(bag), topic="/camera/image_raw")
    assert calibration.shape == (20, 3, 32, 32) and held_out.ndim == 4 and len(held_out) >= 1
    # Held-out samples are other frames than the calibration ones.
    assert not any(np.array_equal(h, c) for h in held_out for c in calibration)


def test_int8_without_data_asks_for_it(model_dir: Path) -> None:
    with pytest.raises(DataError, match="--bag PATH --topic NAME or --images DIR"):
        export_int8(model_dir)
    with pytest.raises(DataError, match="at least 2 samples"):
        split_calibration(np.zeros((1, 3, 32, 32), np.float32))


def test_int8_below_the_quality_bar_is_not_written(model_dir: Path) -> None:
    samples = example_inputs(image_config(), 16)
    with pytest.raises(ModelFileError, match="cosine similarity .* below the required 1.01; nothing was written"):
        export_int8(model_dir, samples=samples, min_cosine=1.01)
    assert not (model_dir / "encoder.int8.onnx").exists()
    assert "encoder.int8.onnx" not in json.loads((model_dir / "model.json").read_text()).get("exports", {})


def test_tensorrt_export_without_torch_tensorrt(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # as on every machine without TensorRT
    with pytest.raises(BackendUnavailableError, match="torch_tensorrt"):
        export_tensorrt(model_dir)
    assert not (model_dir / "trt").exists()


# -- exports JetPack 6's ONNX Runtime loads (issue 20: a newer torch wrote IR 14, which ONNX Runtime 1.30 refused) ----
def _versions(path: Path) -> tuple[int, dict[str, int]]:
    model = onnx.load(str(path))
    return model.ir_version, {o.domain or "ai.onnx": o.version for o in model.opset_import}


def test_exports_are_pinned_to_ir_8_and_opset_17(model_dir: Path) -> None:
    export_onnx(model_dir)
    for name in ("encoder.onnx", "decoder.onnx"):
        assert _versions(model_dir / name) == (8, {"ai.onnx": 17}), name
    assert json.loads((model_dir / "model.json").read_text())["exports"]["encoder.onnx"]["ir_version"] == 8
    samples = np.random.default_rng(0).random((64, 3, 32, 32), dtype=np.float32)
    export_int8(model_dir, samples=samples, min_cosine=0.0)
    # ONNX Runtime's quantiser declares a dozen domains it does not use (ai.onnx.ml 5 among them, which needs
    # IR 10 and an ONNX Runtime newer than JetPack 6.0's): only the used ones stay.
    assert _versions(model_dir / "encoder.int8.onnx") == (8, {"ai.onnx": 17})
    assert create_backend(model_dir, "onnxruntime", precision="int8").encode(samples[:2])[0].shape == (2, 6)
    with pytest.raises(ConfigError, match="opset must be from 17 to 20"):
        export_onnx(model_dir, opset=MAX_OPSET + 1)


def test_a_graph_written_at_a_newer_ir_version_is_brought_down(model_dir: Path, tmp_path: Path) -> None:
    export_onnx(model_dir)
    model = onnx.load(str(model_dir / "encoder.onnx"))
    model.ir_version = 11  # as onnx >= 1.19 writes by default (IR 14 was seen from torch 2.11 with onnx 1.23)
    onnx.save(model, str(tmp_path / "newer.onnx"))
    assert pin_onnx_versions(tmp_path / "newer.onnx") == (8, 17)
    assert _versions(tmp_path / "newer.onnx")[0] == 8
    onnx.checker.check_model(str(tmp_path / "newer.onnx"), full_check=True)
    model.opset_import[0].version = 21  # needs IR 10: refused, one line
    onnx.save(model, str(tmp_path / "opset21.onnx"))
    with pytest.raises(ModelFileError, match="opset 21; JetPack 6's ONNX Runtime"):
        pin_onnx_versions(tmp_path / "opset21.onnx")

