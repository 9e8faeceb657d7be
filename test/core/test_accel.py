"""backend 'tensorrt' without torch_tensorrt: the ONNX Runtime fallback chain, its engine cache folders and
its one-line announcement; the warm-up. The GPU is faked only at ONNX Runtime's provider API
(test/fake_gpu/fake_ort_gpu.py); torch_tensorrt is really absent here."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime
import pytest
import torch
from fake_gpu import fake_ort_gpu  # test/fake_gpu (test/ is on sys.path, see conftest.py)

from vae_ros.core.accel import model_cache_dir, open_tensorrt, warm_up, warm_up_summary
from vae_ros.core.backends import (
    Candidate,
    OnnxRuntimeBackend,
    TorchBackend,
    auto_candidates,
    choose_auto,
    create_backend,
)
from vae_ros.core.config import ArchSpec, ModelConfig, ScanSpec
from vae_ros.core.errors import BackendUnavailableError, ConfigError
from vae_ros.core.export import export_int8, export_onnx
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


# -- backend auto on cuda (issue 20): TensorRT, ONNX Runtime's TensorRT / CUDA providers, eager torch on the GPU ------
def _torch_on_cpu_posing_as_cuda(model_dir: Path, candidates: list[Candidate]) -> list[Candidate]:
    """The real candidates, the last one (eager torch on the GPU) opened on the CPU instead: no GPU exists here,
    and what is tested is the choice, not CUDA."""
    assert candidates[-1].label == "eager torch"
    return [*candidates[:-1], replace(candidates[-1], open=lambda: TorchBackend(model_dir, "cpu"))]


def test_auto_on_cuda_with_a_cpu_only_onnxruntime_serves_eager_torch_saying_why(
        exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen on an H200 (issue 20): auto on cuda raised "this ONNX Runtime has no CUDA execution provider"."""
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # and this onnxruntime is the real, CPU-only one
    candidates = auto_candidates(exported, "cuda")
    assert [c.label for c in candidates] == ["TensorRT", "ONNX Runtime", "eager torch"]
    backend, choice = choose_auto("cuda", _torch_on_cpu_posing_as_cuda(exported, candidates))
    assert isinstance(backend, TorchBackend) and choice.chosen == "eager torch" and not choice.defect
    assert choice.line() == ("backend auto on cuda: eager torch; passed over TensorRT (torch_tensorrt not importable), "
                             "ONNX Runtime (no TensorRT or CUDA execution provider in this build, which has "
                             f"{', '.join(onnxruntime.get_available_providers())})")
    # Through create_backend, with no GPU at all: one error naming every runtime, not ONNX Runtime's CUDA one.
    with pytest.raises(BackendUnavailableError) as raised:
        create_backend(exported, "auto", "cuda")
    message = str(raised.value)
    assert message.startswith("backend auto found no runtime that runs on cuda here: TensorRT (torch_tensorrt")
    assert "eager torch (device 'cuda' requested but CUDA is not available here)" in message
    assert "has no CUDA execution provider" not in message


def test_auto_on_cuda_takes_onnxruntime_gpu_providers_best_first(gpu: object, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    exported = _model(tmp_path / "scan", seed=0)
    with caplog.at_level("INFO", logger="vae_ros.core.backends"):
        backend = create_backend(exported, "auto", "cuda")
    assert backend.name == "onnxruntime-tensorrt"
    line = ("backend auto on cuda: ONNX Runtime (TensorRT execution provider); passed over TensorRT "
            "(torch_tensorrt not importable)")
    assert backend.auto_choice == line == backend.fallback and caplog.messages == [line]
    gpu("cuda")  # type: ignore[operator]  # an onnxruntime-gpu without the TensorRT provider
    backend = create_backend(exported, "auto", "cuda")
    assert backend.name == "onnxruntime-cuda" and isinstance(backend, OnnxRuntimeBackend)
    assert backend.auto_choice.endswith("passed over TensorRT (torch_tensorrt not importable), "
                                        "ONNX Runtime (TensorRT execution provider) (not in this build)")
    gpu("tensorrt,cuda", started="cuda")  # type: ignore[operator]  # libnvinfer missing: TensorRT does not start
    backend = create_backend(exported, "auto", "cuda")
    assert backend.name == "onnxruntime-cuda" and "could not start its TensorrtExecutionProvider" in backend.auto_choice
    # int8: encoder.int8.onnx on the CUDA provider; TensorRT is not asked.
    export_int8(exported, samples=np.random.default_rng(0).random((16, 2, 32), dtype=np.float32))
    backend = create_backend(exported, "auto", "cuda", precision="int8")
    assert backend.name == "onnxruntime-int8-cuda" and backend.auto_choice == \
        "backend auto on cuda: ONNX Runtime (CUDA execution provider)"


def test_auto_on_cuda_without_an_export_goes_to_eager_torch(gpu: object, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = ModelConfig("scan", arch=ArchSpec(latent_dim=4, channels=[8, 8]), scan=ScanSpec(beams=32))
    bare = save_model_dir(tmp_path / "bare", config, build_model(config).eval())
    _, choice = choose_auto("cuda", _torch_on_cpu_posing_as_cuda(bare, auto_candidates(bare, "cuda")))
    assert choice.line() == (f"backend auto on cuda: eager torch; passed over TensorRT (torch_tensorrt not importable),"
                             f" ONNX Runtime (no encoder.onnx: `vae-ros export --model {bare}` writes it)")


def test_auto_on_cpu_says_its_choice_in_one_line(exported: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="vae_ros.core.backends"):
        backend = create_backend(exported, "auto", "cpu")
    assert caplog.messages == ["backend auto on cpu: ONNX Runtime"] and backend.fallback == ""
    assert [c.label for c in auto_candidates(exported, "cpu", "int8")] == ["ONNX Runtime int8"]
