"""Inference backends: parity of ONNX Runtime (FP32, INT8) with eager PyTorch on a trained model, the
`auto` choice, clear errors for missing / corrupt / stale / foreign files, and the TensorRT engine cache.

TensorRT cannot exist on these machines (no GPU), so the TensorRT tests put a fake `torch_tensorrt` and
`tensorrt` into sys.modules and replace the backend's CUDA lookup; they check the cache-key and rebuild
logic, not TensorRT itself.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vae_ros.core import accel
from vae_ros.core.accel import TensorRTBackend, engine_cache_key
from vae_ros.core.backends import OnnxRuntimeBackend, TorchBackend, create_backend
from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig, PointCloudSpec, ScanSpec
from vae_ros.core.errors import BackendUnavailableError, ConfigError, InputError, ModelFileError
from vae_ros.core.export import export_int8, export_onnx, quantize_int8
from vae_ros.core.losses import vae_loss
from vae_ros.core.model_dir import save_model_dir
from vae_ros.core.models import build_model

PALETTE = np.array([[0.9, 0.15, 0.15], [0.15, 0.8, 0.25], [0.2, 0.35, 0.9]], dtype=np.float32)


def blobs(count: int, seed: int, size: int = 64) -> np.ndarray:
    """(N, 3, size, size) float32: one soft coloured blob at a random position on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(10, size - 10, count), rng.uniform(10, size - 10, count)
    colour = rng.integers(0, len(PALETTE), count)
    out = np.full((count, 3, size, size), 0.1, dtype=np.float32)
    for i in range(count):
        g = np.exp(-((xx - cx[i]) ** 2 + (yy - cy[i]) ** 2) / (2 * 5.0**2))  # (H, W)
        out[i] = out[i] * (1 - g) + PALETTE[colour[i]][:, None, None] * g
    return out


def image_config() -> ModelConfig:
    return ModelConfig("image", arch=ArchSpec(latent_dim=8, channels=[8, 16, 32]),
                       image=ImageSpec(height=64, width=64, channels=3))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small image VAE trained for 100 steps on blobs (latents that mean something: a few seconds),
    exported to ONNX and INT8 (calibrated on training blobs)."""
    torch.manual_seed(0)
    config = image_config()
    model = build_model(config)
    data = torch.from_numpy(blobs(384, seed=0))
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine, two OpenMP threads spin against other jobs
    try:
        for _ in range(100):
            batch = data[torch.randint(0, len(data), (16,), generator=generator)]
            logits, mu, logvar = model(batch)
            loss = vae_loss(logits, batch, mu, logvar, config).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    directory = save_model_dir(tmp_path_factory.mktemp("trained") / "blobs", config, model.eval())
    export_onnx(directory)
    export_int8(directory, samples=data[:128].numpy())
    return directory


def copy_model(src: Path, dst: Path, exports: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for name in ("model.json", "weights.safetensors", *exports):
        shutil.copy2(src / name, dst / name)
    return dst


def record_as_exported(model_dir: Path, name: str) -> None:
    """Make model.json vouch for whatever file `name` now holds (its SHA-256 recorded, as export does),
    so that the checks after the hash (ONNX Runtime's parsing, shapes) are what a test exercises."""
    data = json.loads((model_dir / "model.json").read_text())
    record = data["exports"][name]
    record["sha256"] = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
    (model_dir / "model.json").write_text(json.dumps(data))


def tiny_model_dir(path: Path, config: ModelConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_model_dir(path, config, build_model(config).eval())


# -- parity ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_matches_torch_on_held_out_data(trained: Path, batch: int) -> None:
    x = blobs(batch, seed=100 + batch)  # never seen in training or calibration
    ref_mean, ref_logvar = create_backend(trained, "torch").encode(x)
    ort = create_backend(trained, "onnxruntime")
    mean, logvar = ort.encode(x)
    assert mean.shape == logvar.shape == (batch, 8) and mean.dtype == logvar.dtype == np.float32
    assert np.abs(mean - ref_mean).max() <= 1e-4
    assert np.abs(logvar - ref_logvar).max() <= 1e-4
    # The latents carry information: different blobs, different means.
    if batch > 1:
        assert np.std(ref_mean, axis=0).max() > 0.1


@pytest.mark.parametrize("batch", [1, 7])
def test_decode_parity(trained: Path, batch: int) -> None:
    torch_backend = create_backend(trained, "torch")
    z, _ = torch_backend.encode(blobs(batch, seed=200))
    ref = torch_backend.decode(z)
    out = create_backend(trained, "onnxruntime").decode(z)
    assert out.shape == ref.shape == (batch, 3, 64, 64) and out.dtype == np.float32
    assert np.abs(out - ref).max() <= 1e-4
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_int8_latents_keep_cosine_similarity_on_held_out_data(trained: Path) -> None:
    held_out = blobs(64, seed=300)  # not among the calibration samples
    fp32, _ = create_backend(trained, "onnxruntime").encode(held_out)
    int8_backend = create_backend(trained, "onnxruntime", precision="int8")
    assert int8_backend.name == "onnxruntime-int8"
    int8, _ = int8_backend.encode(held_out)
    cosine = np.sum(fp32 * int8, axis=1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(int8, axis=1))
    print(f"\nINT8 vs FP32 latent means, 64 held-out blobs: cosine similarity mean {cosine.mean():.5f}, "
          f"min {cosine.min():.5f}")
    assert cosine.mean() >= 0.99
    assert cosine.min() >= 0.95
    # INT8 is not a copy of FP32: the quantised graph really differs.
    assert np.abs(fp32 - int8).max() > 1e-6
    record = json.loads((trained / "model.json").read_text())["exports"]["encoder.int8.onnx"]
    assert record["format"] == "int8" and record["cosine_mean"] >= 0.99


@pytest.mark.parametrize("modality", ["scan", "pointcloud"])
def test_lidar_models_onnx_parity(tmp_path: Path, modality: str) -> None:
    config = (ModelConfig("scan", arch=ArchSpec(latent_dim=6, channels=[8, 16, 16]), scan=ScanSpec(beams=360))
              if modality == "scan" else
              ModelConfig("pointcloud", arch=ArchSpec(latent_dim=6, channels=[8, 16, 16]),
                          pointcloud=PointCloudSpec(rows=16, cols=128)))
    directory = tiny_model_dir(tmp_path / modality, config)
    export_onnx(directory)
    from vae_ros.core.export import example_inputs

    for batch in (1, 7):
        x = example_inputs(config, batch, seed=batch)
        ref_mean, ref_logvar = create_backend(directory, "torch").encode(x)
        ort = create_backend(directory, "auto")
        assert ort.name == "onnxruntime"
        mean, logvar = ort.encode(x)
        assert np.abs(mean - ref_mean).max() <= 1e-4 and np.abs(logvar - ref_logvar).max() <= 1e-4
        recon = ort.decode(mean)
        assert recon.shape == (batch, 1, *config.input_shape[1:])
        assert np.abs(recon - create_backend(directory, "torch").decode(mean)).max() <= 1e-4


# -- choosing and errors -----------------------------------------------------------------------------------
def test_auto_picks_onnxruntime_when_exported_else_torch(trained: Path, tmp_path: Path) -> None:
    assert isinstance(create_backend(trained), OnnxRuntimeBackend)
    bare = copy_model(trained, tmp_path / "bare")
    assert isinstance(create_backend(bare), TorchBackend)


def test_onnxruntime_without_export_says_how_to_make_it(trained: Path, tmp_path: Path) -> None:
    bare = copy_model(trained, tmp_path / "bare")
    with pytest.raises(ModelFileError, match="vae-ros export --model .* --format onnx"):
        create_backend(bare, "onnxruntime")
    with pytest.raises(ModelFileError, match="--format int8"):
        create_backend(bare, "onnxruntime", precision="int8")


def test_missing_decoder_onnx_falls_back_to_torch_for_decoding(trained: Path, tmp_path: Path) -> None:
    only_encoder = copy_model(trained, tmp_path / "enc", ("encoder.onnx",))
    backend = create_backend(only_encoder, "onnxruntime")
    z = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    np.testing.assert_allclose(backend.decode(z), create_backend(trained, "torch").decode(z), atol=1e-6)


@pytest.mark.parametrize("content", [b"", b"definitely not protobuf \x00\xff" * 10])
def test_corrupt_onnx_is_one_clear_line(trained: Path, tmp_path: Path, content: bytes) -> None:
    broken = copy_model(trained, tmp_path / "broken")
    (broken / "encoder.onnx").write_bytes(content)
    record_as_exported(broken, "encoder.onnx")
    with pytest.raises(ModelFileError, match="not a usable ONNX model") as info:
        create_backend(broken, "onnxruntime")
    assert "\n" not in str(info.value)


def test_crafted_pickle_as_export_is_refused_and_never_run(trained: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (Path.touch, (str(marker),))  # type: ignore[return-value]

    payload = pickle.dumps(Exploit())
    crafted = copy_model(trained, tmp_path / "crafted")
    (crafted / "encoder.onnx").write_bytes(payload)
    (crafted / "encoder.torchscript.pt").write_bytes(payload)
    with pytest.raises(ModelFileError, match="SHA-256 differs"):  # not what export wrote: never parsed
        create_backend(crafted, "onnxruntime")
    record_as_exported(crafted, "encoder.onnx")
    with pytest.raises(ModelFileError, match="not a usable ONNX model"):
        create_backend(crafted, "onnxruntime")
    assert isinstance(create_backend(crafted, "auto"), TorchBackend)  # auto falls back, saying why
    (crafted / "encoder.onnx").unlink()
    backend = create_backend(crafted, "auto")  # TorchScript files are never loaded
    assert isinstance(backend, TorchBackend)
    backend.encode(blobs(1, seed=1))
    assert not marker.exists()


def test_onnx_of_another_shape_is_refused(trained: Path, tmp_path: Path) -> None:
    other = image_config()
    other.image = ImageSpec(height=32, width=32, channels=3)
    foreign = tiny_model_dir(tmp_path / "foreign", other)
    export_onnx(foreign)
    target = copy_model(trained, tmp_path / "target")
    shutil.copy2(foreign / "encoder.onnx", target / "encoder.onnx")
    record_as_exported(target, "encoder.onnx")
    with pytest.raises(ModelFileError, match=r"takes inputs shaped \(B, 3, 32, 32\) but model.json says"):
        create_backend(target, "onnxruntime")


def test_exports_of_older_weights_are_detected(trained: Path, tmp_path: Path) -> None:
    model_dir = copy_model(trained, tmp_path / "retrained", ("encoder.onnx", "decoder.onnx"))
    records = json.loads((trained / "model.json").read_text())["exports"]
    data = json.loads((model_dir / "model.json").read_text())
    data["exports"] = {k: v for k, v in records.items() if k in ("encoder.onnx", "decoder.onnx")}
    (model_dir / "model.json").write_text(json.dumps(data))
    assert isinstance(create_backend(model_dir), OnnxRuntimeBackend)
    # Weights replaced by hand (save_model_dir itself deletes old exports): the exports no longer match.
    other = tiny_model_dir(tmp_path / "other", image_config(), seed=5)
    shutil.copy2(other / "weights.safetensors", model_dir / "weights.safetensors")
    with pytest.raises(ModelFileError, match="exported from different weights.*vae-ros export"):
        create_backend(model_dir, "onnxruntime")
    assert isinstance(create_backend(model_dir, "auto"), TorchBackend)


def test_inputs_are_checked(trained: Path) -> None:
    backend = create_backend(trained, "onnxruntime")
    with pytest.raises(InputError, match=r"shape \(B, 3, 64, 64\)"):
        backend.encode(np.zeros((3, 64, 64), np.float32))
    with pytest.raises(InputError, match="NaN"):
        backend.encode(np.full((1, 3, 64, 64), np.nan, np.float32))
    with pytest.raises(InputError, match=r"\(B, 8\)"):
        backend.decode(np.zeros((2, 9), np.float32))
    with pytest.raises(InputError, match="must be floating point"):
        backend.encode(np.zeros((1, 3, 64, 64), np.uint8))  # a raw image, not a preprocessed one
    mean, _ = backend.encode(np.zeros((2, 3, 64, 64), np.float64))  # other float types are converted
    assert mean.dtype == np.float32


def test_bad_arguments(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="backend must be one of"):
        create_backend(trained, "tflite")
    with pytest.raises(ConfigError, match="device must be one of"):
        create_backend(trained, "torch", "tpu")
    with pytest.raises(ConfigError, match="fp32 only"):
        create_backend(trained, "torch", precision="int8")
    with pytest.raises(ModelFileError, match="does not exist"):
        create_backend(tmp_path / "nowhere")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="CUDA"):
            create_backend(trained, "torch", "cuda")


def test_quantize_rejects_samples_of_the_wrong_shape(trained: Path) -> None:
    from vae_ros.core.errors import DataError

    with pytest.raises(DataError, match=r"\(N >= 1, 3, 64, 64\)"):
        quantize_int8(trained, np.zeros((4, 3, 32, 32), np.float32), np.zeros((2, 3, 64, 64), np.float32))


# -- TensorRT (faked: no GPU here) -------------------------------------------------------------------------
def test_engine_cache_key() -> None:
    key = engine_cache_key("NVIDIA H100 80GB HBM3", "10.3.0", (1, 3, 64, 64))
    assert key == "nvidia-h100-80gb-hbm3_trt10.3.0_1x3x64x64_fp16"
    assert engine_cache_key("Orin (nvgpu)", "8.6.2", (7, 2, 360)) == "orin-nvgpu_trt8.6.2_7x2x360_fp16"


def test_tensorrt_absent_is_backend_unavailable(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import now fails, as on a machine without it
    with pytest.raises(BackendUnavailableError, match="torch_tensorrt"):
        create_backend(trained, "tensorrt")
    assert not accel.tensorrt_available("cuda")
    assert isinstance(create_backend(trained, "auto", "cpu"), OnnxRuntimeBackend)


class FakeTorchTensorRT(types.ModuleType):
    """Stands in for torch_tensorrt: compile returns the module itself; save/load go through a dict."""

    def __init__(self) -> None:
        super().__init__("torch_tensorrt")
        self.__version__ = "2.9.0-fake"
        self.compiled: list[tuple[int, ...]] = []
        self.loaded: list[str] = []
        self.saved: dict[str, Any] = {}
        self.options: list[tuple[torch.dtype, set[Any] | None]] = []

    def compile(self, module: Any, ir: str, inputs: list[torch.Tensor],
                enabled_precisions: set[Any] | None = None) -> Any:
        assert ir == "dynamo"
        self.compiled.append(tuple(inputs[0].shape))
        self.options.append((inputs[0].dtype, enabled_precisions))
        return module

    def save(self, module: Any, path: str, inputs: list[torch.Tensor]) -> None:
        Path(path).write_bytes(b"fake engine")
        self.saved[path] = module

    def load(self, path: str) -> Any:
        self.loaded.append(path)
        module = self.saved[path]
        return types.SimpleNamespace(module=lambda: module)


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> FakeTorchTensorRT:
    fake = FakeTorchTensorRT()
    monkeypatch.setitem(sys.modules, "torch_tensorrt", fake)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(accel, "_cuda_target", lambda device: ("NVIDIA Fake GPU", torch.device("cpu")))
    return fake


def test_tensorrt_engines_are_cached_and_rebuilt_on_mismatch(trained: Path, tmp_path: Path,
                                                              fake_trt: FakeTorchTensorRT,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = copy_model(trained, tmp_path / "trt_model")
    x = blobs(1, seed=7)
    ref_mean, _ = create_backend(model_dir, "torch").encode(x)

    first = create_backend(model_dir, "tensorrt")
    assert isinstance(first, TensorRTBackend) and first.name == "tensorrt-fp16"
    mean, _ = first.encode(x)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-5)
    engine = model_dir / "trt" / "encoder_nvidia-fake-gpu_trt10.3.0_1x3x64x64_fp16.ep"
    assert engine.is_file() and engine.with_suffix(".json").is_file()
    assert fake_trt.compiled == [(1, 3, 64, 64)]
    # An older (weakly typed) torch_tensorrt: FP32 module and inputs, FP16 allowed by enabled_precisions.
    assert fake_trt.options[0] == (torch.float32, {torch.float16, torch.float32})

    # Same GPU, TensorRT and shape: loaded from the cache, not rebuilt.
    create_backend(model_dir, "tensorrt").encode(x)
    assert fake_trt.compiled == [(1, 3, 64, 64)] and fake_trt.loaded == [str(engine)]
    # Another batch size is another engine.
    create_backend(model_dir, "tensorrt").encode(blobs(7, seed=8))
    assert fake_trt.compiled[-1] == (7, 3, 64, 64)

    # Another TensorRT version or GPU: a new engine is built beside the old one.
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.4.1"))
    create_backend(model_dir, "tensorrt").encode(x)
    assert (model_dir / "trt" / "encoder_nvidia-fake-gpu_trt10.4.1_1x3x64x64_fp16.ep").is_file()
    monkeypatch.setattr(accel, "_cuda_target", lambda device: ("Orin", torch.device("cpu")))
    create_backend(model_dir, "tensorrt").encode(x)
    assert len(fake_trt.compiled) == 4

    # An engine built from other weights (its sidecar says so) is rebuilt, not trusted.
    monkeypatch.setattr(accel, "_cuda_target", lambda device: ("NVIDIA Fake GPU", torch.device("cpu")))
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    sidecar = engine.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["weights_sha256"] = "0" * 64
    sidecar.write_text(json.dumps(meta))
    decoded = create_backend(model_dir, "tensorrt")
    decoded.encode(x)
    assert len(fake_trt.compiled) == 5 and json.loads(sidecar.read_text())["weights_sha256"] != "0" * 64
    # An engine file changed behind the cache's back (its SHA-256 no longer matches the sidecar): rebuilt.
    engine.write_bytes(engine.read_bytes() + b"tampered")
    create_backend(model_dir, "tensorrt").encode(x)
    assert len(fake_trt.compiled) == 6
    recon = decoded.decode(mean)
    np.testing.assert_allclose(recon, create_backend(model_dir, "torch").decode(mean), atol=1e-5)


def test_auto_prefers_tensorrt_on_cuda(trained: Path, tmp_path: Path, fake_trt: FakeTorchTensorRT,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model_dir = copy_model(trained, tmp_path / "auto_trt", ("encoder.onnx", "decoder.onnx"))
    assert isinstance(create_backend(model_dir, "auto", "cuda"), TensorRTBackend)
    assert isinstance(create_backend(model_dir, "auto", "cpu"), OnnxRuntimeBackend)


def test_tensorrt_fp16_with_explicit_typing(trained: Path, tmp_path: Path, fake_trt: FakeTorchTensorRT) -> None:
    """Recent torch_tensorrt types networks by the module's dtypes: the module and inputs become FP16."""
    fake_trt.dynamo = types.SimpleNamespace(_defaults=types.SimpleNamespace(USE_EXPLICIT_TYPING=True))
    model_dir = copy_model(trained, tmp_path / "explicit")
    x = blobs(2, seed=9)
    ref_mean, _ = create_backend(model_dir, "torch").encode(x)
    backend = create_backend(model_dir, "tensorrt")
    mean, _ = backend.encode(x)  # the fake runs the FP16 module on the CPU
    assert fake_trt.options == [(torch.float16, None)]
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean, ref_mean, atol=0.05)
    assert json.loads(next((model_dir / "trt").glob("encoder_*.json")).read_text())["input_dtype"] == "float16"


def test_a_swapped_export_is_refused_and_auto_falls_back_saying_why(
        trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 10: a different encoder.onnx with the same shapes (latents of exactly 42.0) was served by
    backend auto without a word. Each export's own SHA-256 is now recorded and checked."""
    import onnx
    from onnx import TensorProto, helper

    model_dir = copy_model(trained, tmp_path / "swapped", ("encoder.onnx", "decoder.onnx"))
    assert isinstance(create_backend(model_dir, "onnxruntime"), OnnxRuntimeBackend)
    assert len(json.loads((model_dir / "model.json").read_text())["exports"]["encoder.onnx"]["sha256"]) == 64
    # Same input and outputs as the real encoder; every latent is 42.
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 64, 64])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 8]) for n in ("mean", "logvar")]
    nodes = [helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["pooled", "axis"], ["col"]),
             helper.make_node("Mul", ["col", "zeros"], ["zero"]),
             helper.make_node("Add", ["zero", "fortytwo"], ["mean"]),
             helper.make_node("Identity", ["zero"], ["logvar"])]
    inits = [helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
             helper.make_tensor("zeros", TensorProto.FLOAT, [1, 8], [0.0] * 8),
             helper.make_tensor("fortytwo", TensorProto.FLOAT, [1, 8], [42.0] * 8)]
    graph = helper.make_graph(nodes, "impostor", [x], outs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model_dir / "encoder.onnx")

    with pytest.raises(ModelFileError, match="encoder.onnx is not the file `vae-ros export` wrote.*vae-ros export"):
        create_backend(model_dir, "onnxruntime")
    with caplog.at_level("WARNING"):
        backend = create_backend(model_dir, "auto")
    assert isinstance(backend, TorchBackend)
    assert "backend auto on cpu: eager torch; passed over ONNX Runtime (" in caplog.text and "SHA-256" in caplog.text
    mean, _ = backend.encode(blobs(1, seed=3))
    assert not np.allclose(mean, 42.0)
    # Once vouched for, the impostor would have run: the hash is what stops it.
    record_as_exported(model_dir, "encoder.onnx")
    np.testing.assert_allclose(create_backend(model_dir, "onnxruntime").encode(blobs(1, seed=3))[0], 42.0)


def test_an_export_without_a_recorded_hash_is_refused_naming_vae_ros_export(trained: Path, tmp_path: Path) -> None:
    model_dir = copy_model(trained, tmp_path / "legacy", ("encoder.onnx", "decoder.onnx"))
    data = json.loads((model_dir / "model.json").read_text())
    for record in data["exports"].values():
        del record["sha256"]  # as an older vae_ros wrote them
    (model_dir / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="no SHA-256 recorded.*re-run `vae-ros export --model .* --format onnx`"):
        create_backend(model_dir, "onnxruntime")
    assert isinstance(create_backend(model_dir, "auto"), TorchBackend)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "too_big"])
@pytest.mark.parametrize("name", ["weights.safetensors", "encoder.onnx", "model.json"])
def test_model_files_that_are_not_regular_files_are_refused_at_once(trained: Path, tmp_path: Path, kind: str,
                                                                   name: str) -> None:
    """Issue 10: weights.safetensors as a link to /dev/zero or a FIFO kept backends hashing (or blocked)
    forever; backend torch said 'has no weights.safetensors'. Every backend now refuses, naming the file."""
    import os
    import time

    from vae_ros.core import files

    model_dir = copy_model(trained, tmp_path / "hostile", ("encoder.onnx", "decoder.onnx"))
    target = model_dir / name
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
        expected = "is a FIFO"
    elif kind == "dev_zero":
        target.symlink_to("/dev/zero")
        expected = "is a link to /dev/zero, which is a character device"
    else:
        with open(target, "wb") as handle:  # sparse: huge on paper, nothing on disk
            handle.truncate(files.MAX_WEIGHTS_BYTES + 1)
        expected = "bytes, more than the"
    start = time.monotonic()
    # Only ONNX Runtime reads encoder.onnx; auto then falls back (saying why) and torch never looks at it.
    refusing = ("onnxruntime",) if name == "encoder.onnx" else ("auto", "torch", "onnxruntime")
    for backend in refusing:
        with pytest.raises(ModelFileError, match=expected) as info:
            create_backend(model_dir, backend)
        assert str(target) in str(info.value) and "\n" not in str(info.value)
    if name == "encoder.onnx":
        assert isinstance(create_backend(model_dir, "auto"), TorchBackend)
    assert time.monotonic() - start < 20.0


@pytest.mark.parametrize("modality", ["image", "scan", "pointcloud"])
def test_packaged_exports_record_their_own_hash_and_verify(modality: str) -> None:
    from vae_ros.core.backends import check_export_fresh, read_export_records
    from vae_ros.resources import default_model_dir

    model_dir = default_model_dir(modality)
    records = read_export_records(model_dir)
    assert {"encoder.onnx", "decoder.onnx", "encoder.int8.onnx"} <= set(records)
    for name in records:
        check_export_fresh(model_dir, name)
    assert create_backend(model_dir, "auto").name == "onnxruntime"
