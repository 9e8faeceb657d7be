"""Model directories: model.json (ModelConfig) + weights.safetensors, saved atomically, loaded safely.

Loading never unpickles: weights are read only with safetensors, which parses a JSON header and raw
tensor bytes. Weights may be stored as float32 or float16 (the packaged defaults: half the bytes, see
store_weights_float16); they are loaded as float32 either way. A pickle (torch.save) file, even one renamed to weights.safetensors, is refused with a clear
error; there is deliberately no torch.load fallback, because unpickling runs arbitrary code.

torch is imported by the functions that need it (save_model_dir, load_model_dir), never at import time:
nodes on ONNX Runtime import this module for resolve_model_dir and the file names, and must not load torch
(docs/ARCHITECTURE.md, "Imports").
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vae_ros.core.config import FORMAT_VERSION, MODALITIES, ModelConfig
from vae_ros.core.errors import BackendUnavailableError, ConfigError, ModelFileError
from vae_ros.core.files import MAX_WEIGHTS_BYTES, check_regular_file

if TYPE_CHECKING:  # torch loads only where a model is built or saved
    import numpy as np
    import torch

    from vae_ros.core.models import VAE

# The file names of a model directory, written once: every module that reads or writes one imports it here.
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
# Files derived from the weights by `vae-ros export` (vae_ros.core.export).
ENCODER_ONNX = "encoder.onnx"
DECODER_ONNX = "decoder.onnx"
ENCODER_INT8_ONNX = "encoder.int8.onnx"
DECODER_INT8_ONNX = "decoder.int8.onnx"
ENCODER_TORCHSCRIPT = "encoder.torchscript.pt"
DECODER_TORCHSCRIPT = "decoder.torchscript.pt"
TRT_DIR = "trt"  # TensorRT engines built for this machine (vae_ros.core.accel)
EXPORT_FILES = (ENCODER_ONNX, DECODER_ONNX, ENCODER_INT8_ONNX, DECODER_INT8_ONNX, ENCODER_TORCHSCRIPT,
                DECODER_TORCHSCRIPT)
EXPORT_DIRS = (TRT_DIR,)
# Control models (vae_ros.control): the servo head, trained with these weights, so stale with new ones.
SERVO_HEAD_FILE = "servo_head.safetensors"
# The world model's latent dynamics (vae_ros.control.runtime.dynamics), trained on this model's latents.
DYNAMICS_DIR = "dynamics"
# How weights.safetensors may store floating-point tensors; models always run in float32.
WEIGHTS_DTYPES = ("float32", "float16")
# The largest finite float16: a weight beyond it cannot be stored in half precision.
_FLOAT16_MAX = 65504.0
# Files that look like pickled weights; named in the refusal message so users know why they were ignored.
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar")
# torch.save writes a zip archive ("PK\x03\x04"), older versions and pickle.dump a raw pickle (b"\x80").
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")
# A safetensors header larger than this is not a weights file of ours (guards against a huge allocation).
_MAX_HEADER_BYTES = 100 * 1024 * 1024

_CONVERT_HINT = (
    "convert a checkpoint you trust with: python -c \"import torch; from safetensors.torch import save_file; "
    "save_file({k: v.contiguous() for k, v in torch.load('weights.pt', weights_only=True).items()}, "
    "'weights.safetensors')\""
)


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_files(directory: Path, config_json: str, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write weights then model.json into `directory`, each to a temp name first and renamed into place."""
    tmp_weights = directory / f".{WEIGHTS_FILE}.tmp"
    tmp_config = directory / f".{CONFIG_FILE}.tmp"
    from safetensors.torch import save_file

    try:
        save_file(state, str(tmp_weights), metadata=metadata)
        with open(tmp_weights, "rb") as handle:
            os.fsync(handle.fileno())
        _fsync_write(tmp_config, (config_json + "\n").encode())
        for tmp in (tmp_weights, tmp_config):  # readable by every user, like any installed data file
            tmp.chmod(0o644)
        os.replace(tmp_weights, directory / WEIGHTS_FILE)
        os.replace(tmp_config, directory / CONFIG_FILE)
    finally:
        for tmp in (tmp_weights, tmp_config):
            tmp.unlink(missing_ok=True)



def _remove_stale_exports(directory: Path) -> None:
    for name in (*EXPORT_FILES, SERVO_HEAD_FILE):
        (directory / name).unlink(missing_ok=True)
    for name in EXPORT_DIRS:
        if (directory / name).is_dir():
            shutil.rmtree(directory / name)


def save_model_dir(path: str | Path, config: ModelConfig, model: torch.nn.Module,
                   weights_dtype: str = "float32") -> Path:
    """Write model.json + weights.safetensors into `path` (created if needed) and return it.

    weights_dtype "float16" stores the floating-point tensors rounded to half precision (half the bytes);
    load_model_dir reads them back as float32.

    Atomic per file: everything is written under temporary names and renamed into place, so a crash
    never leaves a truncated file. A new directory is assembled beside its final name and renamed as a
    whole. Exports in an existing directory (encoder.onnx, TensorRT engines, ...) were made from the old
    weights, so they are removed: a stale export must never be served as this model.
    """
    import torch

    path = Path(path)
    config.validate()
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ConfigError(f"weights_dtype must be one of {WEIGHTS_DTYPES}, got {weights_dtype!r}")
    store = getattr(torch, weights_dtype)
    # Contiguous CPU copies: safetensors refuses views and shared storage.
    state = {name: tensor.detach().to("cpu", dtype=store if tensor.is_floating_point() else tensor.dtype)
             .contiguous().clone() for name, tensor in model.state_dict().items()}
    metadata = {
        "format": "pt",
        "vae_ros_format_version": str(FORMAT_VERSION),
        "modality": config.modality,
        "latent_dim": str(config.latent_dim),
        "weights_dtype": weights_dtype,
    }
    try:
        config_json = config.to_json()
    except (TypeError, ValueError) as err:  # e.g. a NumPy scalar in the training summary
        raise ConfigError(f"model config cannot be written as JSON (use plain Python numbers and strings): {err}") from err
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"cannot save a model to {path}: it exists and is not a directory")
    try:
        if path.is_dir():
            _write_files(path, config_json, state, metadata)
            _remove_stale_exports(path)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            _write_files(staging, config_json, state, metadata)
            staging.chmod(0o755)
            os.rename(staging, path)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    except OSError as err:
        raise ModelFileError(f"cannot write the model directory {path}: {err}") from err
    return path


def _refuse_pickles(directory: Path) -> None:
    """Raise the 'weights missing' error, naming pickle files that are present instead."""
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ModelFileError(
            f"{directory} has no {WEIGHTS_FILE}; found {', '.join(pickles)}, but pickle files are refused for "
            f"safety (loading them can run arbitrary code). Only safetensors weights are loaded; {_CONVERT_HINT}"
        )
    raise ModelFileError(f"{directory} has no {WEIGHTS_FILE} (expected {CONFIG_FILE} and {WEIGHTS_FILE})")


# Bytes per element of each safetensors dtype, to check a header's tensors against their byte ranges.
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _check_safetensors_header(weights: Path) -> dict[str, Any]:
    """The parsed JSON header of a safetensors file, checked against the file's size before any tensor is
    read: every tensor's shape must fill exactly its byte range, and the ranges the file's data. Pickles
    get a message that says so."""
    try:
        with open(weights, "rb") as handle:
            head = handle.read(9)
            # A safetensors file is an 8-byte little-endian header length, then the JSON header ("{"). Its first
            # byte can be 0x80 like a pickle's (a header of 128 + 256k bytes), so the "{" decides, not the magic.
            if head.startswith(_PICKLE_MAGIC) and head[8:9] != b"{":
                raise ModelFileError(
                    f"{weights} is a pickle / torch.save file, not safetensors; it is refused for safety and was "
                    f"not loaded (loading pickles can run arbitrary code). {_CONVERT_HINT}"
                )
            if len(head) < 8:
                raise ModelFileError(f"{weights} is truncated or empty ({len(head)} bytes); expected a safetensors "
                                     "file")
            (header_len,) = struct.unpack("<Q", head[:8])
            size = os.fstat(handle.fileno()).st_size
            if header_len > _MAX_HEADER_BYTES or header_len > size - 8:
                raise ModelFileError(f"{weights} is not a valid safetensors file (corrupt or truncated header)")
            handle.seek(8)
            text = handle.read(header_len)
    except OSError as err:
        raise ModelFileError(f"cannot read {weights}: {err}") from err
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ModelFileError(f"{weights} is not a valid safetensors file (its header is not JSON: {err})") from err
    if not isinstance(header, dict):
        raise ModelFileError(f"{weights} is not a valid safetensors file (its header is not a JSON object)")
    data_bytes, end = size - 8 - header_len, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(v) for v in info["data_offsets"])
            elements = math.prod(int(n) for n in info["shape"])
            width = _DTYPE_BYTES[info["dtype"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{weights} is not a valid safetensors file (tensor {name!r}: {err!r})") from err
        if not 0 <= begin <= stop <= data_bytes or elements * width != stop - begin:
            raise ModelFileError(f"{weights} is not a valid safetensors file: tensor {name!r} claims bytes {begin}..{stop} for {elements} "
                                 f"{info['dtype']} values, but the file holds {data_bytes} bytes of tensor data; "
                                 "refused (corrupt or truncated)")
        end = max(end, stop)
    if end != data_bytes:
        raise ModelFileError(f"{weights} is not a valid safetensors file: its header accounts for {end} bytes of tensor data, the file holds "
                             f"{data_bytes}; refused (corrupt, or data hidden after the tensors)")
    return header


def read_safetensors_header(path: str | Path, max_bytes: int) -> dict[str, Any]:
    """The header of a safetensors file, before any tensor is read: ModelFileError (one line, naming the file)
    when it is not a regular file (a FIFO, a link to /dev/zero), is larger than max_bytes, is a pickle, or its
    header does not account for its bytes. Every weights file vae_ros loads goes through this check."""
    path = Path(path)
    check_regular_file(path, max_bytes)  # stat only: a FIFO or a link to /dev/zero is refused, not read
    return _check_safetensors_header(path)


def load_safetensors_numpy(path: str | Path, max_bytes: int) -> dict[str, np.ndarray]:
    """A small safetensors file (servo head, dynamics) as NumPy arrays, after read_safetensors_header's checks;
    ModelFileError for anything that is not such a file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    read_safetensors_header(path, max_bytes)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{path} is not a readable safetensors file: {err}") from err


def _check_state(weights: Path, state: dict[str, torch.Tensor], model: VAE) -> None:
    """Compare loaded tensors with what the config's architecture expects; name the first mismatches."""
    import torch

    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems: list[str] = []
    if missing:
        problems.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    for name in sorted(set(expected) & set(state)):
        if tuple(state[name].shape) != tuple(expected[name].shape):
            problems.append(
                f"tensor {name!r} has shape {tuple(state[name].shape)}, model.json's architecture expects "
                f"{tuple(expected[name].shape)}"
            )
            if len(problems) >= 5:
                break
        elif not (state[name].is_floating_point() == expected[name].is_floating_point()):
            problems.append(f"tensor {name!r} has dtype {state[name].dtype}, expected {expected[name].dtype}")
    if problems:
        raise ModelFileError(f"{weights} does not match model.json: " + "; ".join(problems))
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelFileError(f"{weights}: tensor {name!r} holds NaN or infinite values")


def torch_device(device: str) -> torch.device:
    """'cpu' / 'cuda[:N]' -> torch.device; ConfigError for other names, BackendUnavailableError without CUDA."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} requested but CUDA is not available here")
    return dev


def load_model_dir(path: str | Path, device: str = "cpu") -> tuple[ModelConfig, VAE]:
    """Read a model directory -> (config, model in eval mode on `device`). Never unpickles anything.

    Raises ModelFileError with one clear line for a missing or non-directory path, a missing or corrupt
    model.json, missing weights (pickles present instead are refused), a weights file that is not
    safetensors, and tensors whose names or shapes do not match the architecture in model.json.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from vae_ros.core.models import build_model

    directory = Path(path).expanduser()
    if not directory.exists():
        raise ModelFileError(f"model directory {directory} does not exist")
    if not directory.is_dir():
        raise ModelFileError(
            f"model path {directory} is not a directory (expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    dev = torch_device(device)
    config_path = directory / CONFIG_FILE
    if not os.path.lexists(config_path):
        raise ModelFileError(f"{directory} has no {CONFIG_FILE} (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = ModelConfig.load(config_path)
    except ModelFileError as err:
        raise ModelFileError(f"{config_path}: {err}") from err

    weights = directory / WEIGHTS_FILE
    if not os.path.lexists(weights):
        _refuse_pickles(directory)
    read_safetensors_header(weights, MAX_WEIGHTS_BYTES)  # a FIFO or a link to /dev/zero is refused, not read
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{weights} is not a valid safetensors file: {err}") from err

    # Shapes first, on the meta device (no memory): model.json's latent_dim: 100000000 must be refused by
    # comparing with the weights, not discovered by allocating gigabytes of parameters.
    try:
        with torch.device("meta"):
            skeleton = build_model(config)
    except ConfigError as err:
        raise ModelFileError(f"{config_path}: {err}") from err
    _check_state(weights, state, skeleton)
    # float16 weights (WEIGHTS_DTYPES) are widened here: the model always computes in float32.
    state = {name: t.float() if t.is_floating_point() else t for name, t in state.items()}
    model = build_model(config)
    model.load_state_dict(state, strict=True)
    return config, model.to(dev).eval()


def store_weights_float16(path: str | Path) -> Path:
    """Rewrite a model directory's weights.safetensors in float16: half the bytes, loaded as float32.

    What `make models` does to the packaged defaults before exporting them. The rounding changes the
    weights by up to 2^-11 (0.05 %) of their magnitude, so exports and the servo head made from the float32 weights
    no longer belong to them: they are removed as on any save (re-run `vae-ros export`). model.json's
    training summary records weights_dtype "float16". A weight beyond float16's range is refused.
    """
    config, model = load_model_dir(path)
    largest = max((float(t.abs().max()) for t in model.state_dict().values() if t.is_floating_point() and t.numel()),
                  default=0.0)
    if largest > _FLOAT16_MAX:
        raise ConfigError(f"{path}: a weight of magnitude {largest:.3g} exceeds float16's range ({_FLOAT16_MAX:g}); "
                          "keep float32 weights")
    config.training["weights_dtype"] = "float16"
    return save_model_dir(path, config, model, weights_dtype="float16")


def resolve_model_dir(path: str, modality: str) -> Path:
    """The `model` parameter -> a directory: empty means the packaged default for `modality`.

    A given path is returned expanded but unchecked (load_model_dir reports problems); a missing packaged
    default is reported here, because the user never named it.
    """
    from vae_ros.core.fused import FUSED_MODALITY

    if modality not in (*MODALITIES, FUSED_MODALITY):
        raise ConfigError(f"modality must be one of {(*MODALITIES, FUSED_MODALITY)}, got {modality!r}")
    if path and path.strip():
        return Path(path.strip()).expanduser()
    from vae_ros.resources import default_model_dir

    default = default_model_dir(modality)
    if not (default / CONFIG_FILE).is_file():
        raise ModelFileError(
            f"no packaged default model for modality {modality!r} at {default}; pass a model directory "
            "(parameter 'model' or --model)"
        )
    return default
