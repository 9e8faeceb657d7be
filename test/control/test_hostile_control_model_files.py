"""Issue 21 §3: the servo head and the dynamics files are checked before they are read, as the VAE weights are.

A servo head that is a link to /dev/zero was taken for 'no head' by the world model; a 10 GB sparse head with
a valid header, a 1-10 GB dynamics.json, dynamics weights with an extra 10 GB tensor each took a node past
2 GB within seconds; dynamics.json nested 100000 levels deep was a RecursionError traceback; NaN dynamics
weights were driven on. Each is now one ModelFileError naming the file, in bounded time and memory.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import nested_json, safetensors_claiming, sparse_file

from vae_ros.control.runtime.dynamics import load_dynamics_dir
from vae_ros.control.runtime.pose_head import PoseHeadNumpy
from vae_ros.core.errors import ModelFileError
from vae_ros.resources import default_model_dir

TEN_GB = 10 << 30
HEAD = "servo_head.safetensors"


@pytest.fixture
def control_copy(tmp_path: Path) -> Path:
    """The packaged control model (servo head and dynamics), without its ONNX exports."""
    copy = tmp_path / "control"
    shutil.copytree(default_model_dir("control"), copy, ignore=shutil.ignore_patterns("*.onnx", "eval", "*.png"))
    return copy


def _refused(load: Callable[[], object], *words: str) -> str:
    """The ModelFileError `load` raises, checked to come fast and without reading gigabytes."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ModelFileError) as caught:
        load()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert time.monotonic() - started < 5.0 and grown_mb < 100, (time.monotonic() - started, grown_mb)
    return message


def test_the_packaged_head_and_dynamics_still_load(control_copy: Path) -> None:
    head = PoseHeadNumpy.load(control_copy, 16)
    dynamics = load_dynamics_dir(control_copy / "dynamics")
    assert head.latent_dim == 16 and dynamics.latent_dim == 16 and dynamics.members == 5


@pytest.mark.parametrize("kind, words", [
    ("dev zero", ("is a link to /dev/zero, which is a character device, not a regular file; refused",)),
    ("fifo", ("is a FIFO (named pipe), not a regular file; refused",)),
    ("10 GB sparse", (f"is {TEN_GB} bytes, more than the", "allowed for it; refused")),
    ("claims more than it holds", ("tensor 'net.0.weight' claims bytes 0..40000000", "refused")),
])
def test_a_servo_head_that_is_not_a_small_regular_file_is_refused(control_copy: Path, kind: str,
                                                                  words: tuple[str, ...]) -> None:
    head = control_copy / HEAD
    head.unlink()
    if kind == "dev zero":
        head.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(head)
    elif kind == "10 GB sparse":
        safetensors_claiming(head, {"net.0.weight": ("F32", [TEN_GB // 4 - 64])})
        head.open("r+b").truncate(TEN_GB)
    else:  # a valid header over a data section shorter than it declares
        safetensors_claiming(head, {"net.0.weight": ("F32", [10_000_000])})
        with open(head, "r+b") as handle:
            handle.truncate(handle.seek(0, os.SEEK_END) - 1000)
    assert str(head) in _refused(lambda: PoseHeadNumpy.load(control_copy, 16), *words)


@pytest.mark.parametrize("size", [1 << 30, TEN_GB])
def test_a_huge_dynamics_json_is_refused_unread(control_copy: Path, size: int) -> None:
    config = control_copy / "dynamics" / "dynamics.json"
    text = config.read_bytes()
    sparse_file(config, size, head=text[:-2])  # the real file's start, then a hole of gigabytes
    _refused(lambda: load_dynamics_dir(control_copy / "dynamics"), str(config), f"is {size} bytes, more than")


def test_a_deeply_nested_dynamics_json_is_one_line(control_copy: Path) -> None:
    config = control_copy / "dynamics" / "dynamics.json"
    config.write_text(nested_json(100_000))
    _refused(lambda: load_dynamics_dir(control_copy / "dynamics"), str(config), "nested too deeply")


def test_dynamics_weights_with_an_extra_10_gb_tensor_are_refused_unread(control_copy: Path) -> None:
    from safetensors import safe_open

    weights = control_copy / "dynamics" / "weights.safetensors"
    with safe_open(str(weights), "numpy") as handle:
        tensors = {name: ("F32", list(handle.get_slice(name).get_shape())) for name in handle.keys()}  # noqa: SIM118
    safetensors_claiming(weights, {**tensors, "extra": ("F32", [TEN_GB // 4])})
    _refused(lambda: load_dynamics_dir(control_copy / "dynamics"), str(weights), "more than the")


def test_nan_dynamics_weights_are_refused(control_copy: Path) -> None:
    from safetensors.numpy import load_file, save_file

    weights = control_copy / "dynamics" / "weights.safetensors"
    state = {name: np.full_like(array, np.nan) for name, array in load_file(str(weights)).items()}
    save_file(state, str(weights))
    message = _refused(lambda: load_dynamics_dir(control_copy / "dynamics"), "holds NaN or infinite values")
    assert message.startswith("dynamics weights: tensor ")


def test_a_model_json_nested_too_deeply_is_one_line(control_copy: Path) -> None:
    from vae_ros.core.config import read_json_object

    (control_copy / "model.json").write_text(nested_json(100_000))
    _refused(lambda: read_json_object(control_copy / "model.json"), "nested too deeply")
    assert json.loads(nested_json(10)) == {"a": json.loads(nested_json(9))}
