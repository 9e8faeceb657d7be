"""backend 'tensorrt' without torch_tensorrt: the ONNX Runtime fallback chain, its engine cache folders and
its one-line announcement; the warm-up. The GPU is faked only at ONNX Runtime's provider API
(test/fake_gpu/fake_ort_gpu.py); torch_tensorrt is really absent here."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime
import pytest
import torch
from fake_gpu import fake_ort_gpu  # test/fake_gpu (test/ is on sys.path, see conftest.py)

from vae_ros.core.accel import model_cache_dir, open_tensorrt, warm_up, warm_up_summary
from vae_ros.core.backends import OnnxRuntimeBackend, create_backend
from vae_ros.core.config import ArchSpec, ModelConfig, ScanSpec
from vae_ros.core.errors import BackendUnavailableError, ConfigError
from vae_ros.core.export import export_onnx
from vae_ros.core.model_dir import save_model_dir
from vae_ros.core.models import build_model


def _model(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    config = ModelConfig("scan", arch=ArchSpec(latent_dim=4, channels=[8, 8]), scan=ScanSpec(beams=32))
    directory = save_model_dir(path, config, build_model(config).eval())
    export_onnx(directory)
    return directory


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model(tmp_path_factory.mktemp("m") / "scan", seed=0)


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> object:
    """onnxruntime-gpu with TensorRT and CUDA providers (faked); torch_tensorrt absent."""
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    real = SimpleNamespace(get_available_providers=onnxruntime.get_available_providers,
                           InferenceSession=onnxruntime.InferenceSession)

    def offer(offered: str = "tensorrt,cuda", started: str | None = None) -> None:
        for name, value in fake_ort_gpu.fakes(real, offered, started).items():
            monkeypatch.setattr(onnxruntime, name, value)

    offer()
    fake_ort_gpu.SESSIONS.clear()
    return offer


def test_without_torch_tensorrt_onnxruntime_tensorrt_takes_over_with_a_cache(exported: Path, gpu: object,
                                                                              tmp_path: Path) -> None:
    backend = create_backend(exported, "tensorrt", "cuda", engine_cache=tmp_path / "engines")
    assert isinstance(backend, OnnxRuntimeBackend) and backend.name == "onnxruntime-tensorrt"
    assert backend.fallback.startswith("backend 'tensorrt' runs as onnxruntime-tensorrt (TensorrtExecutionProvider")
    assert "torch_tensorrt" in backend.fallback and "\n" not in backend.fallback
    cache = model_cache_dir(tmp_path / "engines", exported) / "onnxruntime-trtunknown"  # no tensorrt module here
    assert str(cache) in backend.fallback
    encoder_session = fake_ort_gpu.SESSIONS[0]
    options = encoder_session.options["TensorrtExecutionProvider"]
    assert options["trt_fp16_enable"] is True and options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == str(cache)
    assert [p[0] if isinstance(p, tuple) else p for p in encoder_session.requested] == \
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    engines = sorted(p.name for p in cache.iterdir())  # encoder and decoder graphs
    assert len(engines) == 2 and all(name.endswith(".engine") for name in engines), engines
    assert all(session.engine_built for session in fake_ort_gpu.SESSIONS)
    # Same numbers as the CPU (the fake runs there): the chain changes where it runs, not what.
    x = np.random.default_rng(0).random((1, 2, 32), dtype=np.float32)
    cpu = create_backend(exported, "onnxruntime", "cpu")
    np.testing.assert_allclose(backend.encode(x)[0], cpu.encode(x)[0], rtol=1e-5, atol=1e-6)

    # A second start reuses the engines; other weights get their own folder.
    fake_ort_gpu.SESSIONS.clear()
    create_backend(exported, "tensorrt", "cuda", engine_cache=tmp_path / "engines")
    assert not any(session.engine_built for session in fake_ort_gpu.SESSIONS)
    other = _model(tmp_path / "other", seed=1)
    assert model_cache_dir(tmp_path / "engines", other) != model_cache_dir(tmp_path / "engines", exported)


def test_cuda_provider_when_tensorrt_provider_is_missing_or_does_not_start(exported: Path, gpu: object) -> None:
    gpu("cuda")  # type: ignore[operator]
    backend = open_tensorrt(exported)
    assert backend.name == "onnxruntime-cuda"
    assert "offers no TensorrtExecutionProvider" in backend.fallback
    gpu("tensorrt,cuda", started="cuda")  # type: ignore[operator]  # e.g. libnvinfer missing
    backend = open_tensorrt(exported)
    assert backend.name == "onnxruntime-cuda" and "could not start its TensorrtExecutionProvider" in backend.fallback


def test_no_gpu_runtime_at_all_is_one_error_with_every_reason(exported: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(BackendUnavailableError) as raised:
        create_backend(exported, "tensorrt", "cuda")
    message = str(raised.value)
    for reason in ("torch_tensorrt", "no TensorrtExecutionProvider", "no CUDAExecutionProvider", "docs/ROBOT.md"):
        assert reason in message, message


def test_warm_up_runs_blank_inputs(exported: Path) -> None:
    backend = create_backend(exported, "onnxruntime", "cpu")
    shapes = []
    seconds = warm_up(lambda x: shapes.append(x.shape) or backend.encode(x), (2, 32), 3)
    assert shapes == [(1, 2, 32)] * 3 and len(seconds) == 3
    assert warm_up_summary(seconds).startswith("warm-up: 3 runs, first ")
    assert warm_up(backend.encode, (2, 32), 0) == [] and warm_up_summary([]) == ""
    with pytest.raises(ConfigError, match="warm-up"):
        warm_up(backend.encode, (2, 32), -1)
