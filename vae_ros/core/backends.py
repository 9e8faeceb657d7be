"""One inference interface over several runtimes: eager PyTorch, ONNX Runtime (FP32 or INT8) and TensorRT
(the TensorRT backend, its engine cache and fallback chain live in vae_ros.core.accel).

Nodes and tools call `create_backend(model_dir, backend, device)` and get an object with `encode` and
`decode` that take and return float32 NumPy arrays, whatever runs underneath. `auto` picks the fastest
runtime available here (auto_candidates): on cuda TensorRT with torch_tensorrt, then ONNX Runtime's TensorRT
and CUDA execution providers, then eager PyTorch on the GPU; on cpu ONNX Runtime when the model directory
holds an up-to-date encoder.onnx (about 3x faster than eager on a CPU), else eager PyTorch. It says in one
log line what it chose and why each faster runtime was passed over (AutoChoice).

Loading never unpickles: weights come from safetensors (through model_dir.load_model_dir) and graphs from
ONNX protobufs. TorchScript files are written by `vae-ros export` for users who want them, but no backend
loads them, because torch.jit.load runs an unpickler over the archive's constants.
"""

from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_ros.core.config import ModelConfig, read_json_object
from vae_ros.core.errors import BackendUnavailableError, ConfigError, InputError, ModelFileError
from vae_ros.core.files import MAX_ONNX_BYTES, MAX_WEIGHTS_BYTES, check_regular_file, sha256_file
from vae_ros.core.model_dir import (
    CONFIG_FILE,
    DECODER_ONNX,
    ENCODER_INT8_ONNX,
    ENCODER_ONNX,
    WEIGHTS_FILE,
    torch_device,
)

if TYPE_CHECKING:  # heavy imports stay lazy: an ONNX Runtime node never pays for CUDA or TensorRT
    import onnxruntime
    import torch

    from vae_ros.core.models import VAE

_log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "int8")

# model.json section where `vae-ros export` records what it wrote (file, format, date, parity figures).
EXPORTS_KEY = "exports"


# -- model directory bookkeeping shared with vae_ros.core.export ------------------------------------------
def weights_digest(model_dir: str | Path) -> str:
    """SHA-256 of weights.safetensors: exports record it, so artifacts of older weights are detected."""
    path = Path(model_dir) / WEIGHTS_FILE
    if not os.path.lexists(path):
        raise ModelFileError(f"{path} does not exist; a model directory needs {WEIGHTS_FILE}")
    return sha256_file(path, MAX_WEIGHTS_BYTES)


def read_export_records(model_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The "exports" section of model.json: {file name: record}; empty when nothing was exported."""
    records = read_json_object(Path(model_dir) / CONFIG_FILE).get(EXPORTS_KEY, {})
    return records if isinstance(records, dict) else {}


# model.json export record key holding the SHA-256 of the exported file itself.
EXPORT_SHA256_KEY = "sha256"


def _export_format(file_name: str) -> str:
    return "int8" if file_name == ENCODER_INT8_ONNX else "torchscript" if file_name.endswith(".pt") else "onnx"


def export_record(model_dir: str | Path, file_name: str) -> dict[str, Any]:
    """The export record of file_name, checked against today's weights; ModelFileError when the file was
    exported from other weights, or when model.json records no SHA-256 of it (exported by hand, by an
    older vae_ros, or swapped in), so it could not be verified."""
    path = Path(model_dir) / file_name
    record = read_export_records(model_dir).get(file_name)
    rerun = f"re-run `vae-ros export --model {model_dir} --format {_export_format(file_name)}`"
    if not isinstance(record, dict) or not isinstance(record.get(EXPORT_SHA256_KEY), str):
        raise ModelFileError(f"{path} has no SHA-256 recorded in {CONFIG_FILE} (exported by hand or by an older "
                             f"vae_ros), so it cannot be verified; {rerun}")
    if record.get("weights_sha256") != weights_digest(model_dir):
        raise ModelFileError(f"{path} was exported from different weights than {WEIGHTS_FILE} (the model was "
                             f"retrained since); {rerun}")
    return record


def check_export_fresh(model_dir: str | Path, file_name: str) -> None:
    """Raise ModelFileError unless file_name is exactly what `vae-ros export` wrote from today's weights:
    its record matches the weights (export_record) and the file's own SHA-256 matches the record."""
    record = export_record(model_dir, file_name)
    path = Path(model_dir) / file_name
    if sha256_file(path, MAX_ONNX_BYTES) != record[EXPORT_SHA256_KEY]:
        raise ModelFileError(f"{path} is not the file `vae-ros export` wrote (its SHA-256 differs from the one in "
                             f"{CONFIG_FILE}); it was changed or replaced since: re-run `vae-ros export --model "
                             f"{model_dir} --format {_export_format(file_name)}`")


def load_config(model_dir: str | Path) -> ModelConfig:
    """model.json of a model directory, with a clear error when the directory is not one."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelFileError(f"model directory {path} does not exist or is not a directory")
    return ModelConfig.load(path / CONFIG_FILE)


# -- input checks ------------------------------------------------------------------------------------------
def _as_batch(x: np.ndarray, sample_shape: Sequence[int], what: str) -> np.ndarray:
    """Check a (B, *sample_shape) array and return it as C-contiguous float32."""
    if not isinstance(x, np.ndarray):
        raise InputError(f"{what} must be a NumPy array, got {type(x).__name__}")
    expected = tuple(int(s) for s in sample_shape)
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected or x.shape[0] < 1:
        raise InputError(f"{what} must have shape (B, {', '.join(map(str, expected))}) with B >= 1, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        # An integer array is most likely a raw image: scaling it silently would give garbage latents.
        raise InputError(f"{what} must be floating point (preprocessed, see vae_ros.core.preprocess), "
                         f"got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InputError(f"{what} holds NaN or infinite values")
    return x


def _finite_latents(mean: Any, logvar: Any) -> tuple[np.ndarray, np.ndarray]:
    """An encoder's outputs as float32 arrays; InputError when any is NaN or infinite."""
    mean, logvar = np.asarray(mean, dtype=np.float32), np.asarray(logvar, dtype=np.float32)
    if not (np.isfinite(mean).all() and np.isfinite(logvar).all()):
        raise InputError("the encoder produced NaN or infinite latents for this input; nothing published")
    return mean, logvar


# -- the interface ------------------------------------------------------------------------------------------
class InferenceBackend(ABC):
    """Encode preprocessed batches to latent Gaussians and decode latents to reconstructions.

    encode: (B, *config.input_shape) float32 -> (mean (B, D), logvar (B, D)) float32.
    decode: (B, D) float32 -> (B, config.output_channels, ...) float32 in [0, 1].
    """

    name: str
    config: ModelConfig
    model_dir: Path
    # Set when this runtime stands in for the one asked for (vae_ros.core.accel), or when backend 'auto' passed
    # over a faster one: what runs and why, one line.
    fallback: str = ""
    # Set by backend 'auto': what it chose and why (AutoChoice.line), also when nothing was passed over.
    auto_choice: str = ""

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latent means and log-variances of a preprocessed batch."""
        batch = _as_batch(x, self.config.input_shape, "encoder input")
        return _finite_latents(*self._encode(batch))

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Reconstructions in [0, 1] of a batch of latents; InputError when they are not finite."""
        batch = _as_batch(z, (self.config.latent_dim,), "latent batch")
        out = np.asarray(self._decode(batch), dtype=np.float32)
        if not np.isfinite(out).all():  # e.g. a latent of 3e38 overflows inside the decoder
            raise InputError(f"the decoder produced NaN or infinite values for this latent (largest |z| "
                             f"{float(np.abs(batch).max()):.3g}, far outside the prior N(0, I)); nothing published")
        return out

    @abstractmethod
    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _decode(self, z: np.ndarray) -> np.ndarray: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.model_dir}>"


# -- eager PyTorch -------------------------------------------------------------------------------------------
class TorchBackend(InferenceBackend):
    """Eager PyTorch under inference_mode; the reference every other backend is checked against."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", model: VAE | None = None) -> None:
        from vae_ros.core.model_dir import load_model_dir

        self.model_dir = Path(model_dir)
        self.device = torch_device(device)
        if model is None:
            self.config, model = load_model_dir(self.model_dir, device=str(self.device))
        else:
            self.config = model.config
        self.model = model.to(self.device).eval()
        self.name = "torch" if self.device.type == "cpu" else f"torch-{self.device.type}"
        # Batch-1 encodes replayed from a CUDA graph (vae_ros.core.cuda_graph.apply_cuda_graph sets it); None: eager.
        self.graphed: Any = None

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        return self._encode_on_device(torch.from_numpy(x))

    def _encode_on_device(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, *input_shape) float32 on any device -> host (mean, logvar); the CUDA graph at batch 1 if there is one."""
        import torch

        if self.graphed is not None and x.shape[0] == 1:
            mean, logvar = self.graphed(x)  # the graph's buffers: copied out below, before the next call
        else:
            with torch.inference_mode():
                mean, logvar = self.model.encode(x.to(self.device))  # (B, D) each
        return mean.float().cpu().numpy(), logvar.float().cpu().numpy()

    def _decode(self, z: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model.decode(torch.from_numpy(z).to(self.device))  # (B, C, ...)
        return out.float().cpu().numpy()

    def encode_tensor(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """encode for a batch already on this backend's device (vae_ros.core.preprocess_torch made it there from
        an image it checked): no copy of the input through the host. (B, *input_shape) float32 -> as encode."""
        import torch

        expected = tuple(int(s) for s in self.config.input_shape)
        if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected or x.shape[0] < 1 or x.dtype != torch.float32:
            raise InputError(f"encoder input must be a float32 tensor of shape (B, {', '.join(map(str, expected))}) "
                             f"with B >= 1, got {x.dtype} {tuple(x.shape)}")
        return _finite_latents(*self._encode_on_device(x))


# -- ONNX Runtime --------------------------------------------------------------------------------------------
def _ort_errors() -> tuple[type[BaseException], ...]:
    """The exception types onnxruntime raises for unreadable, invalid or unsupported models."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidProtobuf", "InvalidGraph", "NoSuchFile", "NoModel",
             "NotImplemented", "RuntimeException", "ModelLoaded", "EPFail", "NotFound", "EngineError",
             "ModelRequiresCompilation")
    return tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type)) + (
        RuntimeError,
        ValueError,
    )


def default_threads() -> int:
    """Intra-op threads for CPU inference: all cores up to 4; more rarely helps these small networks
    and would starve the other nodes on a robot's computer."""
    return max(1, min(4, os.cpu_count() or 1))


def onnx_providers(device: str) -> list[str]:
    """Execution providers to ask ONNX Runtime for, best first; CPU is always the last resort."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if device == "cuda" else []
    chosen = [p for p in wanted if p in available]
    if device == "cuda" and not chosen:
        raise BackendUnavailableError(_NO_CUDA_IN_ORT.format(why="has no CUDA execution provider (it offers "
                                                             + ", ".join(sorted(available)) + ")"))
    return chosen + ["CPUExecutionProvider"]


# device:=cuda on an ONNX Runtime without CUDA: most often the CPU package installed after (over) onnxruntime-gpu.
_NO_CUDA_IN_ORT = (
    "device 'cuda' was asked for, but this ONNX Runtime {why}. Install the GPU build alone: `pip uninstall -y "
    "onnxruntime onnxruntime-gpu && pip install -r requirements-robot-gpu.txt` (Jetson: NVIDIA's onnxruntime-gpu "
    "wheel for your JetPack, docs/ROBOT.md), or run with device:=cpu"
)


def open_onnx_session(path: Path, device: str = "cpu", threads: int | None = None,
                      sha256: str | None = None, providers: Sequence[Any] | None = None,
                      ) -> onnxruntime.InferenceSession:
    """An InferenceSession for path, or ModelFileError in one line when the file is missing or corrupt.

    With sha256 given, the bytes are read once, checked against it and handed to ONNX Runtime, so the
    graph that runs is the one verified (no window to swap the file between check and load).
    providers: execution providers with their options (vae_ros.core.accel); None = onnx_providers(device).
    """
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendUnavailableError("onnxruntime is not installed (pip install onnxruntime)") from err
    if not os.path.lexists(path):
        raise ModelFileError(f"{path} does not exist; create it with `vae-ros export --model {path.parent} --format "
                             f"{'int8' if path.name == ENCODER_INT8_ONNX else 'onnx'}`")
    check_regular_file(path, MAX_ONNX_BYTES)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; the warnings are about unused initialisers
    model: str | bytes = str(path)
    if sha256 is not None:
        try:
            model = path.read_bytes()
        except OSError as err:
            raise ModelFileError(f"{path} is not readable: {err}") from err
        if len(model) > MAX_ONNX_BYTES or hashlib.sha256(model).hexdigest() != sha256:
            raise ModelFileError(f"{path} is not the file `vae-ros export` wrote (its SHA-256 differs from the one "
                                 f"in {CONFIG_FILE}); it was changed or replaced since: re-run `vae-ros export "
                                 f"--model {path.parent} --format {_export_format(path.name)}`")
    providers = onnx_providers(device) if providers is None else list(providers)
    try:
        return onnxruntime.InferenceSession(model, sess_options=options, providers=providers)
    except _ort_errors() as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"{path} is not a usable ONNX model ({first_line}); re-export it with "
                             f"`vae-ros export --model {path.parent}`") from err


def _check_io(session: onnxruntime.InferenceSession, path: Path, in_shape: Sequence[int],
              out_dims: Sequence[Sequence[int]]) -> None:
    """Compare the graph's non-batch dimensions with model.json: a stale or foreign file fails here."""

    def concrete(shape: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(d if isinstance(d, int) else None for d in shape[1:])

    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != len(out_dims):
        raise ModelFileError(f"{path} has {len(inputs)} input(s) and {len(outputs)} output(s); expected 1 and "
                             f"{len(out_dims)}")
    got = concrete(inputs[0].shape)
    if any(g is not None and g != e for g, e in zip(got, in_shape, strict=False)) or len(got) != len(in_shape):
        raise ModelFileError(f"{path} takes inputs shaped (B, {', '.join(map(str, got))}) but model.json says "
                             f"(B, {', '.join(map(str, in_shape))}); re-export it")
    for output, want in zip(outputs, out_dims, strict=True):
        have = concrete(output.shape)
        if len(have) != len(want) or any(h is not None and h != w for h, w in zip(have, want, strict=True)):
            raise ModelFileError(f"{path} output {output.name!r} is shaped (B, {', '.join(map(str, have))}) but "
                                 f"model.json says (B, {', '.join(map(str, want))}); re-export it")


class OnnxRuntimeBackend(InferenceBackend):
    """ONNX Runtime on encoder.onnx (or encoder.int8.onnx) and decoder.onnx.

    Without decoder.onnx, decode falls back to eager PyTorch on the same weights, so a directory with
    only the encoder exported still does everything.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", precision: str = "fp32",
                 threads: int | None = None, providers: Sequence[Any] | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.config = load_config(self.model_dir)
        self.device = device
        self.threads = threads
        encoder_file = ENCODER_INT8_ONNX if precision == "int8" else ENCODER_ONNX
        encoder_path = self.model_dir / encoder_file
        if not os.path.lexists(encoder_path):
            raise ModelFileError(
                f"{encoder_path} does not exist; backend 'onnxruntime' needs it: run `vae-ros export --model "
                f"{self.model_dir} --format {'int8' if precision == 'int8' else 'onnx'}`"
            )
        record = export_record(self.model_dir, encoder_file)
        self._encoder = open_onnx_session(encoder_path, device, threads, sha256=record[EXPORT_SHA256_KEY],
                                          providers=providers)
        latent = (self.config.latent_dim,)
        _check_io(self._encoder, encoder_path, self.config.input_shape, [latent, latent])
        self._encoder_input = self._encoder.get_inputs()[0].name
        self._decoder: onnxruntime.InferenceSession | None = None
        self._decoder_input = ""
        self._torch_fallback: TorchBackend | None = None
        decoder_path = self.model_dir / DECODER_ONNX
        if os.path.lexists(decoder_path):
            record = export_record(self.model_dir, DECODER_ONNX)
            self._decoder = open_onnx_session(decoder_path, device, threads, sha256=record[EXPORT_SHA256_KEY],
                                              providers=providers)
            _check_io(self._decoder, decoder_path, latent, [self._output_shape()])
            self._decoder_input = self._decoder.get_inputs()[0].name
        self.providers: list[str] = list(self._encoder.get_providers())
        if device == "cuda" and self.providers[0] == "CPUExecutionProvider":
            # onnxruntime-gpu whose CUDA/cuDNN libraries do not load falls back to the CPU with a mere warning.
            raise BackendUnavailableError(_NO_CUDA_IN_ORT.format(
                why="could not start its CUDA execution provider (are CUDA 12 and cuDNN 9 on the library path?)"))
        self.name = "onnxruntime" + ("-int8" if precision == "int8" else "")
        if self.providers[0] != "CPUExecutionProvider":
            self.name += f"-{self.providers[0].removesuffix('ExecutionProvider').lower()}"

    def _output_shape(self) -> tuple[int, ...]:
        return (self.config.output_channels, *self.config.input_shape[1:])

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, logvar = self._encoder.run(None, {self._encoder_input: x})  # (B, D) each
        return mean, logvar

    def _decode(self, z: np.ndarray) -> np.ndarray:
        if self._decoder is not None:
            return self._decoder.run(None, {self._decoder_input: z})[0]  # (B, C, ...)
        if self._torch_fallback is None:
            _log.warning("%s has no %s; decoding with eager PyTorch, which loads torch into this process "
                         "(`vae-ros export --model %s` writes it)", self.model_dir, DECODER_ONNX, self.model_dir)
            self._torch_fallback = TorchBackend(self.model_dir, "cpu")
        return self._torch_fallback._decode(z)


# -- choosing ------------------------------------------------------------------------------------------------
def _onnxruntime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


@dataclass(frozen=True)
class Candidate:
    """One runtime backend 'auto' may take, in its order of preference."""

    label: str  # as the log line names it: "TensorRT", "ONNX Runtime (CUDA execution provider)", "eager torch"
    open: Callable[[], InferenceBackend] | None = None
    missing: str = ""  # why it cannot run here, known without trying it; "" = try open()
    defect: bool = False  # `missing` is something to fix (an export that cannot be used), not an absent runtime


@dataclass(frozen=True)
class AutoChoice:
    """What backend 'auto' chose on a device, and why each runtime before it was passed over."""

    device: str
    chosen: str
    passed_over: tuple[tuple[str, str], ...] = ()  # (runtime, why)
    defect: bool = False  # a runtime was passed over for something to fix, not merely for being absent

    def line(self) -> str:
        """'backend auto on cuda: eager torch; passed over TensorRT (torch_tensorrt not importable), ...'"""
        passed = ", ".join(f"{label} ({why})" for label, why in self.passed_over)
        return f"backend auto on {self.device}: {self.chosen}" + (f"; passed over {passed}" if passed else "")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def auto_candidates(model_dir: str | Path, device: str = "cpu", precision: str = "fp32", threads: int | None = None,
                    engine_cache: str | Path | None = None) -> list[Candidate]:
    """The runtimes backend 'auto' tries, fastest first, with what is known about each without opening it.

    cuda: torch_tensorrt (TensorRT FP16 engines), ONNX Runtime's TensorRT then CUDA execution provider,
    eager torch on the GPU. cpu: ONNX Runtime on the CPU, eager torch. precision int8 takes encoder.int8.onnx
    on ONNX Runtime (CUDA provider on cuda) instead of TensorRT and fp32 ONNX, and on the CPU nothing else.
    """
    from vae_ros.core import accel  # lazy: accel builds on this module

    path = Path(model_dir)
    int8 = precision == "int8"
    onnx_file = ENCODER_INT8_ONNX if int8 else ENCODER_ONNX
    candidates: list[Candidate] = []
    if device == "cuda" and not int8:
        trt_cache, _ = accel.engine_caches(path, engine_cache)
        candidates.append(Candidate("TensorRT", lambda: accel.TensorRTBackend(path, "cuda", "fp16", trt_cache),
                                    missing=accel.tensorrt_missing("cuda")))

    ort_missing, ort_defect = "", False
    if not os.path.lexists(path / onnx_file):
        ort_missing = (f"no {onnx_file}: `vae-ros export --model {path}"
                       + (" --format int8" if int8 else "") + "` writes it")
    elif not _onnxruntime_installed():
        ort_missing, ort_defect = "onnxruntime is not installed: pip install -r requirements-robot.txt", True
    if device == "cpu":
        candidates.append(Candidate("ONNX Runtime" + (" int8" if int8 else ""),
                                    lambda: OnnxRuntimeBackend(path, "cpu", precision, threads),
                                    missing=ort_missing, defect=ort_defect))
        if not int8:
            candidates.append(Candidate("eager torch", lambda: TorchBackend(path, "cpu")))
        return candidates

    _, ort_cache = accel.engine_caches(path, engine_cache)
    providers = [] if ort_missing else accel.available_providers()
    steps = [] if int8 else [(accel.TENSORRT_PROVIDER, "TensorRT",
                              accel.onnxruntime_tensorrt_providers(ort_cache, fp16=True))]
    steps.append((accel.CUDA_PROVIDER, "CUDA", [(accel.CUDA_PROVIDER, {"device_id": 0}), "CPUExecutionProvider"]))
    if ort_missing or not any(provider in providers for provider, _, _ in steps):
        wanted = " or ".join(name for _, name, _ in steps)
        candidates.append(Candidate("ONNX Runtime", defect=ort_defect, missing=ort_missing or (
            f"no {wanted} execution provider in this build, which has {', '.join(providers)}")))
    else:
        for provider, name, options in steps:
            def open_on(provider: str = provider, options: list[Any] = options) -> InferenceBackend:
                if ort_cache is not None and provider == accel.TENSORRT_PROVIDER:
                    ort_cache.mkdir(parents=True, exist_ok=True)
                return accel.open_onnxruntime_on(path, provider, options, threads, precision)

            candidates.append(Candidate(f"ONNX Runtime ({name} execution provider)", open_on,
                                        missing="" if provider in providers else "not in this build"))
    candidates.append(Candidate("eager torch", lambda: TorchBackend(path, "cuda")))
    return candidates


def choose_auto(device: str, candidates: Sequence[Candidate]) -> tuple[InferenceBackend, AutoChoice]:
    """Open the first candidate that runs here. A missing runtime or an export that cannot be used passes to the
    next one; when none runs, the last one's error (BackendUnavailableError: every reason in one line)."""
    passed: list[tuple[str, str]] = []
    defect = False
    for index, candidate in enumerate(candidates):
        last = index == len(candidates) - 1
        why = candidate.missing
        if not why and candidate.open is not None:
            try:
                backend = candidate.open()
            except ModelFileError as err:  # stale, swapped, unverifiable or corrupt export: the next one may run
                if last:
                    raise
                why, defect = _first_line(err), True
            except BackendUnavailableError as err:
                why = _first_line(err)
            else:
                return backend, AutoChoice(device, candidate.label, tuple(passed), defect)
        else:
            defect = defect or candidate.defect
        passed.append((candidate.label, why))
    reasons = ", ".join(f"{label} ({why})" for label, why in passed)
    raise BackendUnavailableError(f"backend auto found no runtime that runs on {device} here: {reasons}"
                                  + (". See docs/ROBOT.md, or run with device 'cpu'" if device == "cuda" else ""))


def create_backend(model_dir: str | Path, backend: str = "auto", device: str = "cpu", precision: str = "fp32",
                   threads: int | None = None, engine_cache: str | Path | None = None) -> InferenceBackend:
    """Open a model directory with the named runtime; `auto` takes the fastest one available here.

    precision: "fp32" everywhere; "int8" selects encoder.int8.onnx (ONNX Runtime); "fp16" is what
    TensorRT builds (the default there). `threads` sets ONNX Runtime's intra-op threads (default: all
    cores up to 4). `tensorrt` falls back to ONNX Runtime's
    TensorRT, then CUDA execution provider where torch_tensorrt cannot run (vae_ros.core.accel; the
    backend's `fallback` says so); engine_cache: a folder for TensorRT engines (default model_dir/trt).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    path = Path(model_dir)
    load_config(path)  # a missing or broken model.json fails here, the same way for every backend
    if os.path.lexists(path / WEIGHTS_FILE):  # a FIFO or /dev/zero too, before auto weighs its options
        check_regular_file(path / WEIGHTS_FILE, MAX_WEIGHTS_BYTES)

    if backend == "torch":
        if precision != "fp32":
            raise ConfigError(f"backend 'torch' runs fp32 only; precision {precision!r} needs 'onnxruntime' "
                              "(int8) or 'tensorrt' (fp16)")
        return TorchBackend(path, device)
    if backend == "onnxruntime":
        if precision == "fp16":
            raise ConfigError("backend 'onnxruntime' runs fp32 or int8; fp16 is built by 'tensorrt'")
        return OnnxRuntimeBackend(path, device, precision, threads)
    if backend == "tensorrt":
        if precision == "int8":
            raise ConfigError("backend 'tensorrt' builds fp16 or fp32 engines; int8 runs on 'onnxruntime'")
        from vae_ros.core.accel import open_tensorrt

        return open_tensorrt(path, "fp16" if precision == "fp32" else precision, engine_cache, threads)

    # auto: fastest first, one line saying what runs and why each faster runtime was passed over.
    runtime, choice = choose_auto(device, auto_candidates(path, device, precision, threads, engine_cache))
    _log.log(logging.WARNING if choice.defect else logging.INFO, choice.line())
    runtime.auto_choice = choice.line()
    if choice.passed_over and not runtime.fallback:
        runtime.fallback = choice.line()
    return runtime
