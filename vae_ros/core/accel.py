"""backend 'tensorrt': torch_tensorrt engines (TensorRTBackend, TensorRTEngineCache), the fallback chain on a
robot (Jetson), the persistent engine cache, the warm-up. vae_ros.core.backends holds the other runtimes and
create_backend, which comes here for TensorRT.

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

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_ros.core.backends import EXPORT_SHA256_KEY, InferenceBackend, OnnxRuntimeBackend, weights_digest
from vae_ros.core.errors import BackendUnavailableError, ConfigError, ModelFileError
from vae_ros.core.files import MAX_WEIGHTS_BYTES, sha256_file
from vae_ros.core.model_dir import TRT_DIR, torch_device

if TYPE_CHECKING:  # torch loads only where a TensorRT engine is built or run
    import torch

_log = logging.getLogger(__name__)

TENSORRT_PROVIDER = "TensorrtExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


# -- TensorRT (torch_tensorrt, FP16, engines cached in the model directory) --------------------------------
def import_torch_tensorrt() -> Any:
    """The torch_tensorrt module, or BackendUnavailableError saying how to get it (and how not to on Jetson)."""
    try:
        import torch_tensorrt
    except ImportError as err:
        raise BackendUnavailableError(
            "backend 'tensorrt' needs torch_tensorrt built for this torch and a CUDA GPU, and torch_tensorrt is not "
            "installed here. Do not `pip install torch-tensorrt` on Jetson: it pins a PyPI torch and replaces "
            "NVIDIA's; see docs/ROBOT.md (NVIDIA's Jetson wheels, or ONNX Runtime's TensorRT execution provider: "
            "backend 'onnxruntime' with device 'cuda')"
        ) from err
    return torch_tensorrt


def tensorrt_version() -> str:
    """Version of the TensorRT library under torch_tensorrt ("unknown" when it does not say)."""
    try:
        import tensorrt
    except ImportError:
        return "unknown"
    return str(getattr(tensorrt, "__version__", "unknown"))


def _cuda_target(device: str) -> tuple[str, torch.device]:
    """(GPU name, torch device) for TensorRT; a seam the tests replace, as no GPU exists there."""
    target = torch_device("cuda" if device == "cpu" else device)
    import torch

    return torch.cuda.get_device_name(target), target


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def engine_cache_key(gpu_name: str, trt_version: str, input_shape: Sequence[int], precision: str = "fp16") -> str:
    """File stem of a cached engine: one per GPU model, TensorRT version, full input shape and precision.

    e.g. ("NVIDIA H100 80GB HBM3", "10.3.0", (1, 3, 64, 64)) -> "nvidia-h100-80gb-hbm3_trt10.3.0_1x3x64x64_fp16".
    """
    shape = "x".join(str(int(s)) for s in input_shape)
    return f"{_slug(gpu_name)}_trt{_slug(trt_version)}_{shape}_{precision}"


class TensorRTEngineCache:
    """Per-shape TensorRT engines for one network part, saved as ExportedPrograms under model_dir/trt/.

    An engine is rebuilt when none matches the GPU, the TensorRT version and the input shape, or when the
    sidecar JSON says it was built from other weights. Engines are static-shape (one per batch size),
    which keeps them simple to save and as fast as TensorRT gets; a node uses batch 1 only. The files are
    vae_ros's own cache (read back with torch_tensorrt.load); delete trt/ to force a rebuild.
    """

    def __init__(self, model_dir: Path, part: str, module: torch.nn.Module, device: str = "cuda",
                 precision: str = "fp16", cache_dir: Path | None = None) -> None:
        self.torch_tensorrt = import_torch_tensorrt()
        self.gpu_name, self.device = _cuda_target(device)
        self.trt_version = tensorrt_version()
        self.model_dir = model_dir
        self.cache_dir = model_dir / TRT_DIR if cache_dir is None else Path(cache_dir)
        self.part = part
        self.precision = precision
        # Recent torch_tensorrt builds strongly typed networks (the module's dtypes decide; TensorRT 10
        # deprecates weak typing), older ones take enabled_precisions. FP16 the way each one wants it.
        defaults = getattr(getattr(self.torch_tensorrt, "dynamo", None), "_defaults", None)
        self.explicit_typing = bool(getattr(defaults, "USE_EXPLICIT_TYPING", False))
        half = precision == "fp16" and self.explicit_typing
        self.input_dtype = "float16" if half else "float32"
        self.module = (module.half() if half else module).to(self.device).eval()
        self.weights_sha256 = weights_digest(model_dir)
        self._engines: dict[tuple[int, ...], Any] = {}
        self.built: list[Path] = []  # engines compiled (not loaded) by this object, for logs and tests

    def engine_path(self, input_shape: Sequence[int]) -> Path:
        key = engine_cache_key(self.gpu_name, self.trt_version, input_shape, self.precision)
        return self.cache_dir / f"{self.part}_{key}.ep"

    def _meta(self, input_shape: Sequence[int]) -> dict[str, Any]:
        return {"part": self.part, "gpu": self.gpu_name, "tensorrt": self.trt_version,
                "torch_tensorrt": str(getattr(self.torch_tensorrt, "__version__", "unknown")),
                "input_shape": [int(s) for s in input_shape], "precision": self.precision,
                "input_dtype": self.input_dtype, "weights_sha256": self.weights_sha256}

    def get(self, input_shape: Sequence[int]) -> Any:
        """The compiled module for input_shape: from memory, from the cache file, or built now."""
        shape = tuple(int(s) for s in input_shape)
        engine = self._engines.get(shape)
        if engine is None:
            engine = self._load(shape)
            if engine is None:
                engine = self._build(shape)
            self._engines[shape] = engine
        return engine

    def _load(self, shape: tuple[int, ...]) -> Any:
        path = self.engine_path(shape)
        sidecar = path.with_suffix(".json")
        if not (path.is_file() and sidecar.is_file()):
            return None
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            meta = None
        recorded = meta.pop(EXPORT_SHA256_KEY, None) if isinstance(meta, dict) else None
        if meta != self._meta(shape):
            _log.info("TensorRT engine %s does not match this model/GPU/TensorRT; rebuilding it", path.name)
            return None
        if recorded != sha256_file(path, MAX_WEIGHTS_BYTES):
            _log.warning("TensorRT engine %s is not the file vae_ros built (SHA-256 differs from %s or none "
                         "recorded); rebuilding it", path.name, sidecar.name)
            return None
        return self.torch_tensorrt.load(str(path)).module()

    def _build(self, shape: tuple[int, ...]) -> Any:
        import torch

        _log.info("building a TensorRT %s engine for %s on %s (takes a minute, cached afterwards)",
                  self.precision.upper(), shape, self.gpu_name)
        example = torch.zeros(shape, dtype=getattr(torch, self.input_dtype), device=self.device)
        options: dict[str, Any] = {}
        if not self.explicit_typing and self.precision == "fp16":
            options["enabled_precisions"] = {torch.float16, torch.float32}
        compiled = self.torch_tensorrt.compile(self.module, ir="dynamo", inputs=[example], **options)
        path = self.engine_path(shape)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.torch_tensorrt.save(compiled, str(path), inputs=[example])
        meta = {**self._meta(shape), EXPORT_SHA256_KEY: sha256_file(path, MAX_WEIGHTS_BYTES)}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        self.built.append(path)
        return compiled

    def run(self, x: np.ndarray) -> Any:
        import torch

        engine = self.get(x.shape)
        with torch.inference_mode():
            return engine(torch.from_numpy(x).to(self.device, getattr(torch, self.input_dtype)))


class TensorRTBackend(InferenceBackend):
    """torch_tensorrt FP16 engines of the encoder and decoder, cached per GPU, TensorRT version and shape."""

    def __init__(self, model_dir: str | Path, device: str = "cuda", precision: str = "fp16",
                 cache_dir: Path | None = None) -> None:
        """cache_dir: where engines are kept (default model_dir/trt)."""
        from vae_ros.core.model_dir import load_model_dir

        import_torch_tensorrt()  # the clear error first, before loading anything
        self.model_dir = Path(model_dir)
        self.config, model = load_model_dir(self.model_dir, device="cpu")
        # model.encoder: x -> (mean, logvar); export_decoder(): z -> reconstruction in [0, 1].
        self.encoder = TensorRTEngineCache(self.model_dir, "encoder", model.encoder, device, precision, cache_dir)
        self.decoder = TensorRTEngineCache(self.model_dir, "decoder", model.export_decoder(), device, precision,
                                           cache_dir)
        self.name = "tensorrt" if precision == "fp32" else f"tensorrt-{precision}"

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, logvar = self.encoder.run(x)  # (B, D) each
        return mean.float().cpu().numpy(), logvar.float().cpu().numpy()

    def _decode(self, z: np.ndarray) -> np.ndarray:
        return self.decoder.run(z).float().cpu().numpy()  # (B, C, ...)


def tensorrt_missing(device: str = "cuda") -> str:
    """Why torch_tensorrt cannot run on `device` here, in a few words; "" when it can."""
    if device != "cuda":
        return "TensorRT runs on CUDA only"
    try:
        import torch_tensorrt  # noqa: F401
    except ImportError:
        return "torch_tensorrt not importable"
    import torch

    return "" if torch.cuda.is_available() else "torch sees no CUDA device"


def tensorrt_available(device: str = "cuda") -> bool:
    """True when torch_tensorrt imports and PyTorch sees a CUDA device."""
    return not tensorrt_missing(device)


# -- the fallback chain and the engine cache outside the model directory --------------------------------------
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


def available_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendUnavailableError("onnxruntime is not installed (Jetson: NVIDIA's onnxruntime-gpu wheel)") \
            from err
    return list(onnxruntime.get_available_providers())


def open_onnxruntime_on(model_dir: Path, wanted: str, providers: list[Any], threads: int | None,
                      precision: str = "fp32") -> OnnxRuntimeBackend:
    """ONNX Runtime on `wanted` first, or BackendUnavailableError saying why not."""
    available = available_providers()
    if wanted not in available:
        raise BackendUnavailableError(f"onnxruntime offers no {wanted} (it has {', '.join(available)})")
    backend = OnnxRuntimeBackend(model_dir, "cuda", precision, threads, providers=providers)
    if backend.providers[0] != wanted:
        raise BackendUnavailableError(f"onnxruntime could not start its {wanted} (it runs on "
                                      f"{', '.join(backend.providers)})")
    return backend


def engine_caches(model_dir: Path, engine_cache: str | Path | None) -> tuple[Path | None, Path | None]:
    """(torch_tensorrt's, ONNX Runtime TensorRT provider's) engine folders for this model; None, None
    without an engine cache (torch_tensorrt then keeps its engines in model_dir/trt)."""
    if not engine_cache:
        return None, None
    cache = model_cache_dir(engine_cache, model_dir)
    return cache / "torch-tensorrt", cache / f"onnxruntime-trt{_slug(tensorrt_version())}"


def open_tensorrt(model_dir: str | Path, precision: str = "fp16", engine_cache: str | Path | None = None,
                  threads: int | None = None) -> InferenceBackend:
    """The first runtime of the chain (module docstring) that runs here; its `fallback` says when it is not
    torch_tensorrt. engine_cache: None keeps torch_tensorrt's engines in model_dir/trt and gives ONNX
    Runtime no cache."""
    path = Path(model_dir)
    trt_cache, ort_cache = engine_caches(path, engine_cache)
    reasons: list[str] = []
    try:
        return TensorRTBackend(path, "cuda", precision, trt_cache)
    except BackendUnavailableError as err:
        reasons.append(f"torch_tensorrt: {str(err).split('. ')[0]}")
    steps: list[tuple[str, list[Any]]] = [
        (TENSORRT_PROVIDER, onnxruntime_tensorrt_providers(ort_cache, fp16=precision == "fp16")),
        (CUDA_PROVIDER, [(CUDA_PROVIDER, {"device_id": 0}), "CPUExecutionProvider"]),
    ]
    for wanted, providers in steps:
        if ort_cache is not None and wanted == TENSORRT_PROVIDER:
            ort_cache.mkdir(parents=True, exist_ok=True)
        try:
            backend = open_onnxruntime_on(path, wanted, providers, threads)
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
