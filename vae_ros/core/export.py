"""Export a model directory for deployment: ONNX (FP32), INT8 ONNX, TorchScript and TensorRT artifacts.

Over 500 lines: one function per format, each checking its artifact against PyTorch before it counts.

Every export is checked before it counts: ONNX graphs pass onnx.checker and must reproduce the PyTorch
latent means within 1e-4 in ONNX Runtime; the INT8 encoder must keep its latent means at cosine
similarity >= 0.99 to FP32 on held-out samples. Files are written under temporary names and renamed into
place only after the checks, and each export is recorded in model.json's "exports" section (file, format,
date, weights digest, parity figures), which the backends use to refuse artifacts of older weights.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae_ros.core.accel import TensorRTEngineCache, import_torch_tensorrt
from vae_ros.core.backends import (
    EXPORT_SHA256_KEY,
    EXPORTS_KEY,
    load_config,
    open_onnx_session,
    read_export_records,
    weights_digest,
)
from vae_ros.core.config import ModelConfig
from vae_ros.core.errors import BackendUnavailableError, ConfigError, DataError, ModelFileError
from vae_ros.core.files import MAX_ONNX_BYTES, sha256_file
from vae_ros.core.model_dir import (
    CONFIG_FILE,
    DECODER_ONNX,
    DECODER_TORCHSCRIPT,
    ENCODER_INT8_ONNX,
    ENCODER_ONNX,
    ENCODER_TORCHSCRIPT,
    TRT_DIR,
    WEIGHTS_FILE,
    load_model_dir,
)
from vae_ros.core.models import VAE

FORMATS = ("onnx", "int8", "torchscript", "tensorrt")
OPSET = 17
# What the ONNX Runtime of JetPack 6 reads: NVIDIA's Jetson Zoo wheels for JetPack 6.0/6.1 are 1.17-1.18, which
# load ONNX IR <= 9 and opsets <= 20. Exports are written at the lowest IR version their opsets allow (8 for
# opset 17), whatever a newer torch or onnx would write by default (IR 10-14), and refused above these.
MAX_OPSET = 20
MAX_IR_VERSION = 9
ONNX_ATOL = 1e-4
MIN_INT8_COSINE = 0.99


@dataclass
class ExportResult:
    """What one export wrote and how well it matches eager PyTorch."""

    format: str
    model_dir: Path
    files: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable lines for the CLI."""
        lines = [f"{self.format}: wrote {', '.join(self.files) or 'nothing'} in {self.model_dir}"]
        lines += [f"  {name}: {value:.6g}" for name, value in self.figures.items()]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


# -- helpers ---------------------------------------------------------------------------------------------------
def example_inputs(config: ModelConfig, batch: int, seed: int = 0) -> np.ndarray:
    """Plausible preprocessed inputs (B, *input_shape) for tracing and parity checks.

    Images: uniform in [0, 1]. LiDAR: a random validity mask, ranges in [0, 1] where valid and 1.0 where
    not, as preprocess_scan / preprocess_pointcloud produce them.
    """
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *config.input_shape), dtype=np.float32)
    if config.modality != "image":
        mask = (rng.random(x[:, 1].shape) < 0.8).astype(np.float32)
        x[:, 0] = np.where(mask > 0, x[:, 0], 1.0)
        x[:, 1] = mask
    return x


def prepare_out_dir(model_dir: str | Path, out_dir: str | Path | None) -> Path:
    """The directory to export into: model_dir itself, or a copy of its model.json and weights.

    An out_dir that already holds the same weights keeps its exports; one holding another model is
    overwritten, its old exports removed.
    """
    src = Path(model_dir)
    load_config(src)
    weights_digest(src)  # a clear error when the weights are missing
    if out_dir is None or Path(out_dir).resolve() == src.resolve():
        if not os.access(src, os.W_OK):
            raise ModelFileError(f"cannot write exports into {src}: the model directory is read-only (an installed "
                                 "package?); pass --out DIR to write a complete copy with its exports there")
        return src
    dst = Path(out_dir)
    if dst.exists() and not dst.is_dir():
        raise ConfigError(f"--out {dst} exists and is not a directory")
    if (dst / WEIGHTS_FILE).is_file() and (dst / CONFIG_FILE).is_file() \
            and weights_digest(dst) == weights_digest(src):
        return dst  # the same model exported there before: add to its exports
    try:
        dst.mkdir(parents=True, exist_ok=True)
        # Exports left in dst by another model must not be served as this one.
        for name in (ENCODER_ONNX, DECODER_ONNX, ENCODER_INT8_ONNX, ENCODER_TORCHSCRIPT, DECODER_TORCHSCRIPT):
            (dst / name).unlink(missing_ok=True)
        if (dst / TRT_DIR).is_dir():
            shutil.rmtree(dst / TRT_DIR)
        shutil.copy2(src / WEIGHTS_FILE, dst / WEIGHTS_FILE)
        # model.json without the source's export records: those files are not copied.
        data = json.loads((src / CONFIG_FILE).read_text())
        data.pop(EXPORTS_KEY, None)
        (dst / CONFIG_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    except (OSError, json.JSONDecodeError) as err:
        raise ModelFileError(f"cannot copy the model into {dst}: {err}") from err
    return dst


def record_export(result: ExportResult, extra: dict[str, Any] | None = None) -> None:
    """Add result's files to model.json's "exports" section (rewritten atomically; other keys kept)."""
    path = result.model_dir / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"cannot update {path}: {err}") from err
    records = data.get(EXPORTS_KEY)
    if not isinstance(records, dict):
        records = {}
    stamp = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    digest = weights_digest(result.model_dir)
    for name in result.files:
        # The file's own SHA-256: backends refuse a file that no longer matches (swapped or edited).
        own = sha256_file(result.model_dir / name, MAX_ONNX_BYTES)
        records[name] = {"format": result.format, "date": stamp, "weights_sha256": digest, EXPORT_SHA256_KEY: own,
                         "torch": torch.__version__, **{k: round(float(v), 8) for k, v in result.figures.items()},
                         **(extra or {})}
    data[EXPORTS_KEY] = records
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"cannot update {path}: {err}") from err


def copy_export(src_dir: str | Path, dst_dir: str | Path, name: str) -> None:
    """Copy one exported file and its model.json record (hashes included) into a copy of the same model."""
    src, dst = Path(src_dir), Path(dst_dir)
    record = read_export_records(src).get(name)
    if not isinstance(record, dict):
        raise ModelFileError(f"{src / name} has no export record in {CONFIG_FILE}; re-run `vae-ros export`")
    try:
        shutil.copyfile(src / name, dst / name)
        data = json.loads((dst / CONFIG_FILE).read_text())
        records = data.get(EXPORTS_KEY) if isinstance(data.get(EXPORTS_KEY), dict) else {}
        records[name] = record
        data[EXPORTS_KEY] = records
        (dst / CONFIG_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    except (OSError, json.JSONDecodeError) as err:
        raise ModelFileError(f"cannot copy {name} into {dst}: {err}") from err


@contextlib.contextmanager
def _quiet_export_warnings() -> Iterator[None]:
    """The legacy exporter warns about its own deprecation and about tracing; users can do nothing about it."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.filterwarnings("ignore", category=category)
        yield


def _onnx_export(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str,
                 output_names: Sequence[str], opset: int) -> None:
    """torch.onnx.export with a dynamic batch axis, through the TorchScript-based exporter.

    dynamo=False: the torch.export-based exporter needs onnxscript, which robots rarely have, and it gives
    the same graph for these plain conv nets.
    """
    axes = {input_name: {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
    with _quiet_export_warnings():
        torch.onnx.export(module, (example,), str(path), input_names=[input_name], output_names=list(output_names),
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)


_DEFAULT_DOMAIN = "ai.onnx"


def min_ir_version(model: Any) -> int:
    """The lowest ONNX IR version that can carry model's opset imports (onnx.helper.VERSION_TABLE); domains
    the onnx package does not know (com.microsoft) do not raise it."""
    from onnx import helper

    return int(helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True))


def pin_onnx_versions(path: str | Path) -> tuple[int, int]:
    """Rewrite an exported graph for JetPack 6's ONNX Runtime: drop opset imports of domains no node uses
    (ONNX Runtime's quantiser declares a dozen), set the IR version to the lowest its opsets allow, and refuse
    (ModelFileError) an opset or IR version above MAX_OPSET / MAX_IR_VERSION. Returns (IR version, opset)."""
    _require_onnx()
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    used = {node.domain for node in model.graph.node} | {node.domain for f in model.functions for node in f.node}
    used |= {f.domain for f in model.functions}
    kept = [o for o in model.opset_import if o.domain in ("", _DEFAULT_DOMAIN) or o.domain in used]
    opset = max((o.version for o in kept if o.domain in ("", _DEFAULT_DOMAIN)), default=0)
    if not 0 < opset <= MAX_OPSET:
        raise ModelFileError(f"{path.name} uses ONNX opset {opset}; JetPack 6's ONNX Runtime (1.17-1.18) loads "
                             f"opsets up to {MAX_OPSET}: export with an opset from 17 to {MAX_OPSET}")
    del model.opset_import[:]
    model.opset_import.extend(kept)
    ir_version = min_ir_version(model)
    if ir_version > MAX_IR_VERSION:
        raise ModelFileError(f"{path.name} needs ONNX IR version {ir_version} for its opsets "
                             f"({', '.join(f'{o.domain or _DEFAULT_DOMAIN} {o.version}' for o in kept)}); "
                             "JetPack 6's "
                             f"ONNX Runtime reads IR up to {MAX_IR_VERSION}")
    model.ir_version = ir_version
    onnx.save(model, str(path))
    return ir_version, opset


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ModelFileError(f"exported {path.name} fails onnx.checker: {str(err).splitlines()[0]}") from err


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def _tmp_path(directory: Path, name: str) -> Path:
    return directory / f".{name}.tmp"


# -- ONNX -----------------------------------------------------------------------------------------------------
def _require_onnx() -> None:
    """onnx is an export-only dependency (it pulls NumPy 2 through ml_dtypes): say how to get it."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise BackendUnavailableError("exporting ONNX needs the onnx package, which is not installed: "
                                      "pip install -r requirements-export.txt (or pip install \"vae_ros[export]\"); "
                                      "robots that only run exports do not need it")


def export_onnx(model_dir: str | Path, out_dir: str | Path | None = None, opset: int = OPSET,
                atol: float = ONNX_ATOL) -> ExportResult:
    """encoder.onnx (x -> mean, logvar) and decoder.onnx (z -> reconstruction in [0, 1]), dynamic batch.

    Fails with ModelFileError, writing nothing, unless both graphs pass onnx.checker and ONNX Runtime
    reproduces PyTorch's means, log-variances and reconstructions within atol at batch 1 and 5.
    """
    if not 17 <= opset <= MAX_OPSET:
        raise ConfigError(f"opset must be from 17 to {MAX_OPSET} (what JetPack 6's ONNX Runtime loads), got {opset}")
    _require_onnx()
    target = prepare_out_dir(model_dir, out_dir)
    config, model = load_model_dir(target)
    encoder, decoder = model.encoder.eval(), model.export_decoder().eval()
    x = torch.from_numpy(example_inputs(config, 2))  # (2, *input_shape)
    z = torch.zeros(2, config.latent_dim)  # (2, D)
    tmp_enc, tmp_dec = _tmp_path(target, ENCODER_ONNX), _tmp_path(target, DECODER_ONNX)
    try:
        _onnx_export(encoder, x, tmp_enc, "input", ("mean", "logvar"), opset)
        _onnx_export(decoder, z, tmp_dec, "latent", ("reconstruction",), opset)
        ir_version, _ = pin_onnx_versions(tmp_enc)
        pin_onnx_versions(tmp_dec)
        _check_onnx(tmp_enc)
        _check_onnx(tmp_dec)
        figures = _onnx_parity(model, tmp_enc, tmp_dec, atol)
        os.replace(tmp_enc, target / ENCODER_ONNX)
        os.replace(tmp_dec, target / DECODER_ONNX)
    finally:
        tmp_enc.unlink(missing_ok=True)
        tmp_dec.unlink(missing_ok=True)
    result = ExportResult("onnx", target, [ENCODER_ONNX, DECODER_ONNX], figures)
    record_export(result, {"opset": opset, "ir_version": ir_version})
    return result


def _onnx_parity(model: VAE, encoder_path: Path, decoder_path: Path, atol: float) -> dict[str, float]:
    """Largest |ORT - torch| of means, log-variances and reconstructions; raise when above atol."""
    config = model.config
    enc = open_onnx_session(encoder_path)
    dec = open_onnx_session(decoder_path)
    worst = {"max_abs_mean": 0.0, "max_abs_logvar": 0.0, "max_abs_reconstruction": 0.0}
    for batch in (1, 5):
        x = example_inputs(config, batch, seed=batch)  # (B, *input_shape)
        with torch.inference_mode():
            mean_t, logvar_t = model.encode(torch.from_numpy(x))
            recon_t = model.decode(mean_t)
        mean_o, logvar_o = enc.run(None, {"input": x})
        (recon_o,) = dec.run(None, {"latent": mean_t.numpy()})
        worst["max_abs_mean"] = max(worst["max_abs_mean"], _max_abs(mean_o, mean_t.numpy()))
        worst["max_abs_logvar"] = max(worst["max_abs_logvar"], _max_abs(logvar_o, logvar_t.numpy()))
        worst["max_abs_reconstruction"] = max(worst["max_abs_reconstruction"], _max_abs(recon_o, recon_t.numpy()))
    bad = {k: v for k, v in worst.items() if not v <= atol}
    if bad:
        raise ModelFileError("ONNX export does not match PyTorch: " + ", ".join(f"{k} {v:.3g}" for k, v in bad.items())
                             + f" (tolerance {atol:g}); nothing was written")
    return worst


# -- INT8 -----------------------------------------------------------------------------------------------------
class _CalibrationReader:
    """onnxruntime.quantization CalibrationDataReader over an in-memory (N, *input_shape) array."""

    def __init__(self, input_name: str, samples: np.ndarray, batch: int = 16) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            [np.ascontiguousarray(samples[i:i + batch]) for i in range(0, len(samples), batch)]
        )
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}


def _collect(samples: Iterable[np.ndarray], shape: tuple[int, ...], limit: int) -> np.ndarray:
    out: list[np.ndarray] = []
    for sample in samples:
        arr = np.asarray(sample, dtype=np.float32)
        if arr.shape != shape:
            raise DataError(f"calibration sample has shape {arr.shape}, the model takes {shape}")
        out.append(arr)
        if len(out) >= limit:
            break
    return np.stack(out) if out else np.zeros((0, *shape), dtype=np.float32)


def calibration_data(config: ModelConfig, limit: int, bag: str | None = None, topic: str | None = None,
                     images: str | None = None, held_out_limit: int | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held_out) preprocessed samples of a bag topic or an image folder.

    Calibration takes up to `limit` samples of the training split, the held-out set up to held_out_limit
    (default limit / 4) of the validation split (vae_ros.core.data's deterministic split), so the INT8
    figure is measured on data the quantiser never saw. Without a source, the one recorded in model.json's
    training summary is used; without that either, DataError asks for --bag/--topic or --images.
    """
    from vae_ros.core import data

    source = open_training_source(config, bag, topic, images,
                                  "INT8 calibration needs samples of the training data")
    shape = tuple(config.input_shape)
    held_limit = held_out_limit if held_out_limit is not None else max(8, limit // 4)
    calibration = _collect(data.iter_samples(source, config, limit=limit, split="train"), shape, limit)
    held_out = _collect(data.iter_samples(source, config, limit=held_limit, split="val"), shape, held_limit)
    if len(held_out) == 0:  # tiny sources: hold out the last quarter of the training split instead
        calibration, held_out = split_calibration(calibration)
    if len(calibration) == 0:
        raise DataError(f"{source.label()} gave no usable sample for INT8 calibration")
    return calibration, held_out


def open_training_source(config: ModelConfig, bag: str | None, topic: str | None, images: str | None,
                         need: str) -> Any:
    """The data source given (--bag/--topic or --images), else the one named in model.json's training summary;
    DataError (starting with `need`) when neither exists here."""
    from vae_ros.core import data

    if not (bag or images):
        bag, topic, images = _training_source(config)
        if not (bag or images):
            raise DataError(f"{need}, and model.json records no data source that exists here; pass --bag PATH "
                            "--topic NAME or --images DIR")
    return data.open_source(bag=bag, topic=topic, images=images)


def _training_source(config: ModelConfig) -> tuple[str | None, str | None, str | None]:
    """(bag, topic, images) of the data model.json's training summary names, if it still exists here.

    Training records its source as training["source"] (vae_ros.core.data DataSource.describe(): kind, path
    and, for bags, topic).
    """
    source = config.training.get("source")
    if not isinstance(source, dict):
        return None, None, None
    kind, path, topic = source.get("kind"), source.get("path"), source.get("topic")
    if kind == "images" and isinstance(path, str) and Path(path).is_dir():
        return None, None, path
    if kind == "bag" and isinstance(path, str) and isinstance(topic, str) and Path(path).exists():
        return path, topic, None
    return None, None, None


def quantize_int8(model_dir: str | Path, calibration: np.ndarray, held_out: np.ndarray,
                  min_cosine: float = MIN_INT8_COSINE) -> ExportResult:
    """encoder.int8.onnx by static QDQ quantisation (per-channel INT8 weights, UINT8 activations).

    calibration: (N, *input_shape) samples for the activation ranges (MinMax). held_out: (M, *input_shape)
    other samples on which the INT8 latent means must reach mean cosine similarity >= min_cosine to FP32.
    Needs an up-to-date encoder.onnx (exported first when missing or stale).
    """
    _require_onnx()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = Path(model_dir)
    config = load_config(target)
    shape = tuple(config.input_shape)
    for name, arr in (("calibration", calibration), ("held-out", held_out)):
        if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape or len(arr) == 0:
            raise DataError(f"INT8 {name} samples must be (N >= 1, {', '.join(map(str, shape))}), got {arr.shape}")
    fp32_path = target / ENCODER_ONNX
    record = read_export_records(target).get(ENCODER_ONNX, {})
    if not fp32_path.is_file() or record.get("weights_sha256") not in (None, weights_digest(target)):
        export_onnx(target)
    pre = _tmp_path(target, "encoder.pre.onnx")
    out = _tmp_path(target, ENCODER_INT8_ONNX)
    try:
        with _quiet_export_warnings():
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
            quantize_static(str(pre), str(out), _CalibrationReader("input", calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        ir_version, opset = pin_onnx_versions(out)
        _check_onnx(out)
        figures = int8_agreement(open_onnx_session(fp32_path), open_onnx_session(out), held_out)
        figures["calibration_samples"] = float(len(calibration))
        if not figures["cosine_mean"] >= min_cosine:
            raise ModelFileError(
                f"INT8 encoder keeps latent means at cosine similarity {figures['cosine_mean']:.4f} to FP32 on "
                f"{len(held_out)} held-out samples, below the required {min_cosine}; nothing was written "
                "(calibrate on more representative data, or use the FP32 export)")
        os.replace(out, target / ENCODER_INT8_ONNX)
    finally:
        pre.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    result = ExportResult("int8", target, [ENCODER_INT8_ONNX], figures)
    result.notes.append(f"INT8 vs FP32 latent means on {len(held_out)} held-out samples: cosine similarity "
                        f"mean {figures['cosine_mean']:.5f}, min {figures['cosine_min']:.5f}")
    record_export(result, {"quantization": "static QDQ, per-channel int8 weights, uint8 activations, MinMax",
                           "opset": opset, "ir_version": ir_version})
    return result


def int8_agreement(fp32: Any, int8: Any, samples: np.ndarray, batch: int = 32) -> dict[str, float]:
    """Cosine similarity (mean, min) and max |difference| of latent means, INT8 vs FP32 sessions."""
    cosines, worst = [], 0.0
    for i in range(0, len(samples), batch):
        x = np.ascontiguousarray(samples[i:i + batch], dtype=np.float32)
        ref = fp32.run(None, {"input": x})[0].astype(np.float64)  # (B, D)
        got = int8.run(None, {"input": x})[0].astype(np.float64)  # (B, D)
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
        cosines.append(np.sum(ref * got, axis=1) / np.maximum(norms, 1e-12))
        worst = max(worst, _max_abs(ref, got))
    cos = np.concatenate(cosines)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "max_abs_mean": worst}


def split_calibration(samples: np.ndarray, held_out_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held_out): the last fraction of the samples is held out (later frames of a bag)."""
    n = len(samples)
    if n < 2:
        raise DataError(f"INT8 calibration needs at least 2 samples (some held out to check it), got {n}")
    held = max(1, int(round(n * held_out_fraction)))
    return samples[: n - held], samples[n - held:]


def export_int8(model_dir: str | Path, out_dir: str | Path | None = None, samples: np.ndarray | None = None,
                bag: str | None = None, topic: str | None = None, images: str | None = None,
                calib_samples: int = 256, min_cosine: float = MIN_INT8_COSINE) -> ExportResult:
    """INT8 encoder calibrated on up to calib_samples samples of the training data.

    With `samples` (N, *input_shape) given, the last quarter is held out to measure the agreement;
    otherwise calibration_data splits the source by vae_ros.core.data's train/validation split.
    """
    if calib_samples < 2:
        raise ConfigError(f"--calib-samples must be >= 2, got {calib_samples}")
    target = prepare_out_dir(model_dir, out_dir)
    config = load_config(target)
    if samples is None:
        calibration, held_out = calibration_data(config, calib_samples, bag=bag, topic=topic, images=images)
    else:
        calibration, held_out = split_calibration(np.asarray(samples, dtype=np.float32))
    return quantize_int8(target, calibration, held_out, min_cosine)


# -- TorchScript ------------------------------------------------------------------------------------------------
def export_torchscript(model_dir: str | Path, out_dir: str | Path | None = None,
                       atol: float = ONNX_ATOL) -> ExportResult:
    """encoder.torchscript.pt / decoder.torchscript.pt by torch.jit.trace, for users who deploy TorchScript.

    vae_ros's own backends never load these (torch.jit.load unpickles the archive's constants).
    """
    target = prepare_out_dir(model_dir, out_dir)
    config, model = load_model_dir(target)
    x = torch.from_numpy(example_inputs(config, 2))  # (2, *input_shape)
    z = torch.zeros(2, config.latent_dim)  # (2, D)
    with _quiet_export_warnings():
        encoder = torch.jit.trace(model.encoder.eval(), (x,))
        decoder = torch.jit.trace(model.export_decoder().eval(), (z,))
    check = torch.from_numpy(example_inputs(config, 5, seed=5))
    with torch.inference_mode():
        mean_ref, _ = model.encode(check)
        mean_ts, _ = encoder(check)
        recon_ref, recon_ts = model.decode(mean_ref), decoder(mean_ref)
    figures = {"max_abs_mean": _max_abs(mean_ts.numpy(), mean_ref.numpy()),
               "max_abs_reconstruction": _max_abs(recon_ts.numpy(), recon_ref.numpy())}
    if not max(figures.values()) <= atol:
        raise ModelFileError(f"TorchScript trace does not match eager PyTorch: {figures}; nothing was written")
    files = []
    for module, name in ((encoder, ENCODER_TORCHSCRIPT), (decoder, DECODER_TORCHSCRIPT)):
        tmp = _tmp_path(target, name)
        try:
            with _quiet_export_warnings():  # torch 2.13 marks torch.jit.save deprecated; it still works
                torch.jit.save(module, str(tmp))
            os.replace(tmp, target / name)
        finally:
            tmp.unlink(missing_ok=True)
        files.append(name)
    result = ExportResult("torchscript", target, files, figures)
    result.notes.append("vae_ros backends do not load TorchScript (it unpickles); these files are for your own "
                        "C++/LibTorch or Python deployments")
    record_export(result)
    return result


# -- TensorRT -------------------------------------------------------------------------------------------------
def export_tensorrt(model_dir: str | Path, out_dir: str | Path | None = None,
                    batch_sizes: Sequence[int] = (1,), device: str = "cuda") -> ExportResult:
    """Build (or reuse) FP16 TensorRT engines for the encoder and decoder at the given batch sizes.

    Engines land in model_dir/trt/, keyed by GPU, TensorRT version and input shape; TensorRTBackend finds
    them there. Needs torch_tensorrt and a CUDA GPU (BackendUnavailableError otherwise).
    """
    import_torch_tensorrt()
    target = prepare_out_dir(model_dir, out_dir)
    config, model = load_model_dir(target)
    encoder = TensorRTEngineCache(target, "encoder", model.encoder, device)
    decoder = TensorRTEngineCache(target, "decoder", model.export_decoder(), device)
    files = []
    for batch in batch_sizes:
        if batch < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {batch}")
        for cache, shape in ((encoder, (batch, *config.input_shape)), (decoder, (batch, config.latent_dim))):
            cache.get(shape)
            files.append(str(cache.engine_path(shape).relative_to(target)))
    x = example_inputs(config, batch_sizes[0], seed=3)
    with torch.inference_mode():
        mean_ref, _ = model.encode(torch.from_numpy(x))
    mean_trt, _ = encoder.run(x)
    figures = {"max_abs_mean_fp16": _max_abs(mean_trt.float().cpu().numpy(), mean_ref.numpy())}
    result = ExportResult("tensorrt", target, files, figures)
    built = len(encoder.built) + len(decoder.built)
    result.notes.append(f"{built} engine(s) built, {len(files) - built} reused from the cache "
                        f"(GPU {encoder.gpu_name}, TensorRT {encoder.trt_version}, FP16)")
    record_export(result)
    return result


def export_model(model_dir: str | Path, fmt: str, out_dir: str | Path | None = None, **options: Any) -> ExportResult:
    """Dispatch on fmt (onnx, int8, torchscript, tensorrt); options go to the format's function."""
    functions = {"onnx": export_onnx, "int8": export_int8, "torchscript": export_torchscript,
                 "tensorrt": export_tensorrt}
    if fmt not in functions:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    try:
        return functions[fmt](model_dir, out_dir, **options)  # type: ignore[operator]
    except OSError as err:  # a read-only or full file system, found while writing
        where = out_dir if out_dir is not None else model_dir
        reason = f"{err.strerror}: {err.filename}" if err.strerror and err.filename else str(err)
        raise ModelFileError(f"cannot write the {fmt} export into {where} ({reason}); pass --out DIR to export "
                             "into a writable copy") from err
