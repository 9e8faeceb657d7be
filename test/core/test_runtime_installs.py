"""What an install gives a node: ONNX Runtime without CUDA refuses device cuda (never a silent CPU run),
TensorRT's absence points to the real sources, onnx is needed only to export, and the requirement sets keep
CPU and GPU ONNX Runtime apart and NumPy 1.x on Python 3.10 (Humble, JetPack 6)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from vae_ros.core import backends
from vae_ros.core.accel import TensorRTBackend
from vae_ros.core.backends import OnnxRuntimeBackend, TorchBackend, create_backend
from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig
from vae_ros.core.errors import BackendUnavailableError
from vae_ros.core.export import export_onnx
from vae_ros.core.model_dir import save_model_dir
from vae_ros.core.models import build_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = ModelConfig("image", arch=ArchSpec(latent_dim=4, channels=[8, 8]),
                         image=ImageSpec(height=16, width=16, channels=3))
    path = save_model_dir(tmp_path_factory.mktemp("m") / "model", config, build_model(config).eval())
    export_onnx(path)
    return path


def test_cuda_on_a_cpu_onnxruntime_is_a_clear_error(exported: Path) -> None:
    # The CPU package is what this machine has: exactly the onnxruntime-gpu-replaced-by-onnxruntime case.
    with pytest.raises(BackendUnavailableError) as raised:
        create_backend(exported, "onnxruntime", "cuda")
    message = str(raised.value)
    assert "has no CUDA execution provider" in message and "CPUExecutionProvider" in message
    assert "requirements-robot-gpu.txt" in message and "device:=cpu" in message
    with pytest.raises(BackendUnavailableError, match="CUDA execution provider"):
        create_backend(exported, "auto", "cuda")  # auto picks the runtime, never the device
    assert isinstance(create_backend(exported, "onnxruntime", "cpu"), OnnxRuntimeBackend)


def test_a_cuda_provider_that_does_not_start_is_a_clear_error(exported: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # onnxruntime-gpu without loadable CUDA libraries lists the provider, then runs on the CPU with a warning.
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"), \
            pytest.raises(BackendUnavailableError, match="could not start its CUDA execution provider"):
        create_backend(exported, "onnxruntime", "cuda")


def test_tensorrt_absent_points_to_the_jetson_sources_not_pypi(exported: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(BackendUnavailableError) as raised:
        TensorRTBackend(exported)
    message = str(raised.value)
    assert "Do not `pip install torch-tensorrt` on Jetson" in message and "docs/ROBOT.md" in message
    assert not re.search(r"\(pip install torch-tensorrt", message)
    with pytest.raises(BackendUnavailableError, match="torch_tensorrt.*docs/ROBOT.md"):
        create_backend(exported, "tensorrt", "cuda")  # the fallback chain (test_accel.py) finds no GPU either


def test_auto_without_onnxruntime_runs_torch(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "_onnxruntime_installed", lambda: False)
    assert isinstance(create_backend(exported, "auto", "cpu"), TorchBackend)


def test_export_without_onnx_says_how_to_get_it(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "onnx" else object())
    with pytest.raises(BackendUnavailableError, match="requirements-export.txt"):
        export_onnx(exported)


def _requirements(name: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in (REPO / name).read_text().splitlines()]
    return [line for line in lines if line]


def test_requirement_sets_keep_cpu_and_gpu_onnxruntime_apart() -> None:
    base = _requirements("requirements-robot-base.txt")
    cpu, gpu = _requirements("requirements-robot.txt"), _requirements("requirements-robot-gpu.txt")
    assert not [line for line in base if line.startswith(("onnx", "torch"))], base
    assert "-r requirements-robot-base.txt" in cpu and "-r requirements-robot-base.txt" in gpu
    assert any(line.startswith("onnxruntime>=") for line in cpu)
    assert not any(line.startswith("onnxruntime-gpu") for line in cpu)
    assert any(line.startswith("onnxruntime-gpu") for line in gpu)
    assert not any(line.startswith("onnxruntime>") or line == "onnxruntime" for line in gpu)
    assert _requirements("requirements-export.txt") == ["onnx>=1.14"]


def test_numpy_1_on_python_3_10() -> None:
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    def numpy_specifiers(python: str, lines: list[str]) -> list[str]:
        found = []
        for line in lines:
            requirement = Requirement(line)
            marker = requirement.marker or Marker("python_version >= '0'")
            if requirement.name == "numpy" and marker.evaluate({"python_version": python}):
                found.append(str(requirement.specifier))
        return found

    base = _requirements("requirements-robot-base.txt")
    (py310,) = numpy_specifiers("3.10", base)
    assert "<2" in py310 and ">=1.21" in py310
    (py312,) = numpy_specifiers("3.12", base)
    assert "<2" not in py312
    import ast

    tree = ast.parse((REPO / "setup.py").read_text())
    setup_lines = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                   and isinstance(node.value, str) and node.value.startswith("numpy")]
    (setup_py310,) = numpy_specifiers("3.10", setup_lines)
    assert "<2" in setup_py310
