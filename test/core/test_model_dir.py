"""Model directories: round trips for every modality, atomic saves, and safe, clear refusals."""

from __future__ import annotations

import builtins
import json
import math
import pickle
from pathlib import Path

import pytest
import torch

from vae_ros.core.config import ArchSpec, ImageSpec, ModelConfig, PointCloudSpec, ScanSpec
from vae_ros.core.errors import BackendUnavailableError, ConfigError, ModelFileError
from vae_ros.core.model_dir import load_model_dir, resolve_model_dir, save_model_dir, store_weights_float16
from vae_ros.core.models import build_model

SMALL = [8, 16, 16, 32]


def _configs() -> dict[str, ModelConfig]:
    def image(size: int, channels: int, likelihood: str) -> ModelConfig:
        return ModelConfig("image", arch=ArchSpec(latent_dim=4, channels=SMALL, likelihood=likelihood),
                           image=ImageSpec(height=size, width=size, channels=channels))

    def scan(wraps: bool) -> ModelConfig:
        half = math.pi if wraps else 2.0
        return ModelConfig("scan", arch=ArchSpec(latent_dim=4, channels=SMALL),
                           scan=ScanSpec(beams=360, angle_min=-half, angle_max=half))

    return {
        "image64rgb_gaussian": image(64, 3, "gaussian"),
        "image128grey_bernoulli": image(128, 1, "bernoulli"),
        "image64grey_gaussian": image(64, 1, "gaussian"),
        "image128rgb_bernoulli": image(128, 3, "bernoulli"),
        "scan_wraps": scan(True),
        "scan_partial": scan(False),
        "cloud16x256": ModelConfig("pointcloud", arch=ArchSpec(latent_dim=4, channels=SMALL),
                                   pointcloud=PointCloudSpec(rows=16, cols=256)),
    }


def _trained_model(config: ModelConfig) -> torch.nn.Module:
    """A model whose BatchNorm statistics moved, so buffers matter in the round trip."""
    model = build_model(config)
    model.train()
    with torch.no_grad():
        model(torch.rand(4, *config.input_shape))
    return model.eval()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    config = _configs()["scan_wraps"]
    return save_model_dir(tmp_path / "model", config, _trained_model(config))


@pytest.mark.parametrize("name", list(_configs()))
def test_round_trip_gives_identical_outputs(tmp_path: Path, name: str) -> None:
    config = _configs()[name]
    model = _trained_model(config)
    path = save_model_dir(tmp_path / "nested" / name, config, model)
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "weights.safetensors"]
    loaded_config, loaded = load_model_dir(path)
    assert loaded_config == config
    assert not loaded.training
    x = torch.rand(3, *config.input_shape)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x), strict=True):
            assert torch.equal(a, b)


def test_overwriting_an_existing_directory_replaces_the_weights(saved: Path) -> None:
    config, first = load_model_dir(saved)
    other = build_model(config).eval()
    save_model_dir(saved, config, other)
    _, reloaded = load_model_dir(saved)
    x = torch.rand(1, *config.input_shape)
    with torch.no_grad():
        assert torch.equal(reloaded.encode(x)[0], other.encode(x)[0])
        assert not torch.equal(reloaded.encode(x)[0], first.encode(x)[0])
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "weights.safetensors"]


def test_a_failed_save_leaves_the_previous_model_intact(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (saved / "weights.safetensors").read_bytes()
    config, _ = load_model_dir(saved)

    def crash(*args: object, **kwargs: object) -> None:
        Path(str(args[1])).write_bytes(b"half a file")  # what a crash mid-write would leave
        raise OSError("disk full")

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", crash)  # model_dir imports it when it saves
    with pytest.raises(ModelFileError, match="disk full"):
        save_model_dir(saved, config, build_model(config))
    with pytest.raises(ModelFileError):
        save_model_dir(saved.parent / "fresh", config, build_model(config))
    assert (saved / "weights.safetensors").read_bytes() == before
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "weights.safetensors"]
    assert not (saved.parent / "fresh").exists()
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model"]  # no staging left behind
    load_model_dir(saved)


# -- float16 storage ------------------------------------------------------------------------------------------
def test_float16_weights_take_half_the_bytes_and_load_as_float32(saved: Path) -> None:
    from safetensors.torch import load_file

    config, full = load_model_dir(saved)
    before = (saved / "weights.safetensors").stat().st_size
    (saved / "encoder.onnx").write_bytes(b"an export of the float32 weights")
    (saved / "servo_head.safetensors").write_bytes(b"a head fitted to the float32 latents")
    store_weights_float16(saved)
    stored = load_file(str(saved / "weights.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    assert (saved / "weights.safetensors").stat().st_size < 0.55 * before
    # Exports and the servo head belong to the old weights: removed, as on any save.
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "weights.safetensors"]
    loaded_config, half = load_model_dir(saved)
    assert loaded_config.training["weights_dtype"] == "float16"
    assert {p.dtype for p in half.state_dict().values() if p.is_floating_point()} == {torch.float32}
    for name, tensor in full.state_dict().items():  # exactly the float16 rounding of each weight
        assert torch.equal(half.state_dict()[name], tensor.half().float() if tensor.is_floating_point() else tensor)
    x = torch.rand(4, *config.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = full.encode(x)[0], half.encode(x)[0]
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=1e-2)


def test_float16_refuses_weights_beyond_its_range(saved: Path) -> None:
    config, model = load_model_dir(saved)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 1e5
    save_model_dir(saved, config, model)
    before = (saved / "weights.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="exceeds float16's range"):
        store_weights_float16(saved)
    assert (saved / "weights.safetensors").read_bytes() == before
    with pytest.raises(ConfigError, match="weights_dtype must be one of"):
        save_model_dir(saved, config, model, weights_dtype="bfloat16")


def test_a_safetensors_header_length_starting_with_the_pickle_byte_loads(saved: Path) -> None:
    # The header length is little-endian: 128 + 256k bytes begins with 0x80, a pickle's first byte. Such a
    # file is still safetensors (its header starts with "{") and must load (it once was refused as a pickle).
    from safetensors.torch import load_file, save_file

    state = load_file(str(saved / "weights.safetensors"))
    for pad in range(300):
        save_file(state, str(saved / "weights.safetensors"), metadata={"format": "pt", "pad": "x" * pad})
        if (saved / "weights.safetensors").read_bytes()[:1] == b"\x80":
            break
    assert (saved / "weights.safetensors").read_bytes()[:1] == b"\x80"
    load_model_dir(saved)


def test_a_config_that_is_not_json_is_a_config_error(tmp_path: Path) -> None:
    config = _configs()["scan_wraps"]
    config.training["best_epoch"] = object()
    with pytest.raises(ConfigError, match="cannot be written as JSON"):
        save_model_dir(tmp_path / "m", config, build_model(config))
    assert not (tmp_path / "m").exists()


# -- refusing pickles ---------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates `marker`: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (builtins.open, (str(self.marker), "w"))


def _crafted_pickles(marker: Path) -> dict[str, bytes]:
    raw = pickle.dumps({"encoder.fc_mu.weight": _Payload(marker)}, protocol=4)
    legacy = pickle.dumps(_Payload(marker), protocol=0)  # text protocol: no b"\x80" magic
    zipped = Path(str(marker) + ".zip")
    torch.save({"encoder.fc_mu.weight": _Payload(marker)}, zipped)
    return {"raw": raw, "protocol0": legacy, "torch_save": zipped.read_bytes()}


def test_the_crafted_pickles_do_run_code_when_unpickled(tmp_path: Path) -> None:
    # Control: the payload really executes when unpickled, so the refusal tests below can fail.
    marker = tmp_path / "control_marker"
    pickle.loads(_crafted_pickles(marker)["raw"])  # noqa: S301 - deliberate, our own payload
    assert marker.exists()


@pytest.mark.parametrize("kind", ["raw", "protocol0", "torch_save"])
def test_pickle_renamed_to_safetensors_is_refused_and_never_executed(saved: Path, tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    (saved / "weights.safetensors").write_bytes(_crafted_pickles(marker)[kind])
    with pytest.raises(ModelFileError, match="weights.safetensors") as info:
        load_model_dir(saved)
    message = str(info.value)
    assert "\n" not in message
    if kind != "protocol0":
        assert "pickle" in message and "refused" in message
    else:
        assert "not a valid safetensors file" in message
    assert not marker.exists()


@pytest.mark.parametrize("name", ["weights.pt", "weights.pth", "model.ckpt", "weights.pkl"])
def test_pickle_weights_file_is_refused_with_a_conversion_hint(saved: Path, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    (saved / "weights.safetensors").unlink()
    (saved / name).write_bytes(_crafted_pickles(marker)["torch_save"])
    with pytest.raises(ModelFileError) as info:
        load_model_dir(saved)
    message = str(info.value)
    assert f"found {name}" in message and "refused for safety" in message and "save_file" in message
    assert not marker.exists()


# -- missing, corrupt, mismatched -----------------------------------------------------------------------------
def test_missing_path_and_plain_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model_dir(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match="not a directory"):
        load_model_dir(tmp_path / "file")


def test_missing_weights_and_missing_config(saved: Path) -> None:
    (saved / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match="has no weights.safetensors"):
        load_model_dir(saved)
    (saved / "model.json").unlink()
    with pytest.raises(ModelFileError, match="has no model.json"):
        load_model_dir(saved)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "not readable JSON"), ("[1, 2]", "JSON object"), ('{"format_version": 1}', "misses the key"),
     ('{"format_version": 99, "modality": "image"}', "format_version 99")],
)
def test_corrupt_model_json(saved: Path, content: str, expected: str) -> None:
    (saved / "model.json").write_text(content)
    with pytest.raises(ModelFileError, match=expected):
        load_model_dir(saved)


def test_truncated_and_garbage_weights(saved: Path) -> None:
    weights = saved / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        load_model_dir(saved)
    weights.write_bytes(b"\x05\x00")
    with pytest.raises(ModelFileError, match="truncated or empty"):
        load_model_dir(saved)


def test_shape_mismatch_names_the_tensor_and_both_shapes(saved: Path) -> None:
    data = json.loads((saved / "model.json").read_text())
    data["arch"]["latent_dim"] = 6
    (saved / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelFileError) as info:
        load_model_dir(saved)
    message = str(info.value)
    assert "'encoder.fc_mu.weight' has shape (4, 704)" in message and "expects (6, 704)" in message


def test_missing_and_unexpected_tensors_are_named(saved: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(saved / "weights.safetensors"))
    state["extra.weight"] = state.pop("decoder.fc.bias")
    save_file(state, str(saved / "weights.safetensors"))
    with pytest.raises(ModelFileError, match=r"missing tensors \['decoder.fc.bias'\].*unexpected tensors \['extra.weight'\]"):
        load_model_dir(saved)


def test_cuda_device_without_cuda_is_a_clear_error(saved: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is present on this machine")
    with pytest.raises(BackendUnavailableError, match="CUDA is not available"):
        load_model_dir(saved, device="cuda")
    with pytest.raises(ConfigError, match="device must be"):
        load_model_dir(saved, device="gpu0")


# -- resolve_model_dir -----------------------------------------------------------------------------------------
def test_resolve_model_dir(tmp_path: Path, saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vae_ros.resources

    assert resolve_model_dir(str(saved), "scan") == saved
    assert resolve_model_dir("~/m", "image") == Path.home() / "m"
    monkeypatch.setattr(vae_ros.resources, "default_model_dir", lambda modality: tmp_path / f"{modality}_default")
    with pytest.raises(ModelFileError, match="no packaged default model for modality 'scan'"):
        resolve_model_dir("", "scan")
    save_model_dir(tmp_path / "scan_default", *load_model_dir(saved))
    assert resolve_model_dir("", "scan") == tmp_path / "scan_default"
    assert resolve_model_dir("  ", "scan") == tmp_path / "scan_default"
    with pytest.raises(ConfigError, match="modality must be one of"):
        resolve_model_dir("", "sonar")
