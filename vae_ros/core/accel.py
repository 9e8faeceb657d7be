"""backend 'tensorrt' on a robot (Jetson): the fallback chain, the persistent engine cache, the warm-up.

The chain, best first, each tried only when the one before cannot run here:
1. torch_tensorrt FP16 engines (TensorRTBackend), which NVIDIA's Jetson torch wheels do not include;
2. ONNX Runtime's TensorRT execution provider (FP16, its own engine cache) on encoder.onnx / decoder.onnx,
   which NVIDIA's onnxruntime-gpu for JetPack has;
3. ONNX Runtime's CUDA execution provider.
Nothing runs on the CPU in place of a GPU runtime: without any of them the error lists why each failed.
A backend from step 2 or 3 carries `fallback`, one line saying what runs and why; the nodes log it once at
start and report it in /diagnostics.

Engine caches: `engine_cache` is a folder that outlives installs (e.g. ~/.cache/vae_ros/engines); each model
gets <engine_cache>/<first 16 hex digits of its weights' SHA-256>/, so new weights never meet old engines.
Inside, torch_tensorrt engines are keyed by GPU, TensorRT version and input shape (TensorRTEngineCache);
ONNX Runtime's go into onnxruntime-trt<TensorRT version>/ (ONNX Runtime keys its files by graph and GPU
compute capability). Engines are built on the first start on the device and reused afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vae_ros.core.backends import (
    InferenceBackend,
    OnnxRuntimeBackend,
    TensorRTBackend,
    _slug,
    tensorrt_version,
    weights_digest,
)
from vae_ros.core.errors import BackendUnavailableError, ConfigError, ModelFileError

TENSORRT_PROVIDER = "TensorrtExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def model_cache_dir(engine_cache: str | Path, model_dir: str | Path) -> Path:
    """This model's folder in an engine cache: <engine_cache>/<weights SHA-256, 16 hex digits>."""
    return Path(engine_cache).expanduser() / weights_digest(model_dir)[:16]


def onnxruntime_tensorrt_providers(cache: Path | None, fp16: bool = True) -> list[Any]:
    """ONNX Runtime providers for step 2: TensorRT (FP16, engine and timing caches in `cache`), CUDA for
    what TensorRT does not take, CPU for what neither does."""
    options: dict[str, Any] = {"device_id": 0, "trt_fp16_enable": fp16}
    if cache is not None:
        options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache),
                       trt_timing_cache_enable=True, trt_timing_cache_path=str(cache))
    return [(TENSORRT_PROVIDER, options), (CUDA_PROVIDER, {"device_id": 0}), "CPUExecutionProvider"]


def _available_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendUnavailableError("onnxruntime is not installed (Jetson: NVIDIA's onnxruntime-gpu wheel)") \
            from err
    return list(onnxruntime.get_available_providers())


def _open_onnxruntime(model_dir: Path, wanted: str, providers: list[Any], threads: int | None) -> OnnxRuntimeBackend:
    """ONNX Runtime on `wanted` first, or BackendUnavailableError saying why not."""
    available = _available_providers()
    if wanted not in available:
        raise BackendUnavailableError(f"onnxruntime offers no {wanted} (it has {', '.join(available)})")
    backend = OnnxRuntimeBackend(model_dir, "cuda", "fp32", threads, providers=providers)
    if backend.providers[0] != wanted:
        raise BackendUnavailableError(f"onnxruntime could not start its {wanted} (it runs on "
                                      f"{', '.join(backend.providers)})")
    return backend


def open_tensorrt(model_dir: str | Path, precision: str = "fp16", engine_cache: str | Path | None = None,
                  threads: int | None = None) -> InferenceBackend:
    """The first runtime of the chain (module docstring) that runs here; its `fallback` says when it is not
    torch_tensorrt. engine_cache: None keeps torch_tensorrt's engines in model_dir/trt and gives ONNX
    Runtime no cache."""
    path = Path(model_dir)
    cache = model_cache_dir(engine_cache, path) if engine_cache else None
    reasons: list[str] = []
    try:
        return TensorRTBackend(path, "cuda", precision, None if cache is None else cache / "torch-tensorrt")
    except BackendUnavailableError as err:
        reasons.append(f"torch_tensorrt: {str(err).split('. ')[0]}")
    ort_cache = None if cache is None else cache / f"onnxruntime-trt{_slug(tensorrt_version())}"
    steps: list[tuple[str, list[Any]]] = [
        (TENSORRT_PROVIDER, onnxruntime_tensorrt_providers(ort_cache, fp16=precision == "fp16")),
        (CUDA_PROVIDER, [(CUDA_PROVIDER, {"device_id": 0}), "CPUExecutionProvider"]),
    ]
    for wanted, providers in steps:
        if ort_cache is not None and wanted == TENSORRT_PROVIDER:
            ort_cache.mkdir(parents=True, exist_ok=True)
        try:
            backend = _open_onnxruntime(path, wanted, providers, threads)
        except (BackendUnavailableError, ModelFileError) as err:
            reasons.append(f"{wanted}: {err}")
            continue
        where = f", engines in {ort_cache}" if ort_cache is not None and wanted == TENSORRT_PROVIDER else ""
        backend.fallback = (f"backend 'tensorrt' runs as {backend.name} ({wanted}{where}) because "
                            + "; ".join(reasons))
        return backend
    raise BackendUnavailableError("backend 'tensorrt' found no GPU runtime here: " + "; ".join(reasons)
                                  + ". See docs/ROBOT.md (Jetson), or run with backend 'onnxruntime' or "
                                    "'torch' and device 'cpu'")


def warm_up(run: Callable[[np.ndarray], Any], sample_shape: Sequence[int], runs: int) -> list[float]:
    """Run `run` on zeros of (1, *sample_shape) `runs` times; seconds each.

    The first inference of a TensorRT backend builds or loads its engines, and CUDA initialises lazily:
    a node does this before it accepts its first frame, so that frame is not late by seconds.
    """
    if runs < 0:
        raise ConfigError(f"warm-up runs must be >= 0, got {runs}")
    x = np.zeros((1, *(int(s) for s in sample_shape)), dtype=np.float32)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        seconds.append(time.perf_counter() - start)
    return seconds


def warm_up_summary(seconds: Sequence[float]) -> str:
    """'warm-up: 10 runs, first 812.0 ms, last 1.9 ms' ('' for none)."""
    if not seconds:
        return ""
    return f"warm-up: {len(seconds)} runs, first {1000 * seconds[0]:.1f} ms, last {1000 * seconds[-1]:.1f} ms"
