"""Node start-up failures: one clear error line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from node_helpers import make_model_dir, param_args, start_node

pytestmark = pytest.mark.ros


def _run(module: str, *args: str, timeout: float = 60.0) -> tuple[int, list[str]]:
    proc = start_node(module, *args)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{module} did not exit:\n{out}")
    return proc.returncode, [line for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("module", ["encoder_node", "decoder_node"])
def test_missing_model_is_one_clear_line(tmp_path: Path, module: str) -> None:
    code, lines = _run(module, *param_args(model=tmp_path / "nowhere"))
    assert code == 2
    assert lines == [f"{module}: error: model directory {tmp_path / 'nowhere'} does not exist or is not a directory"]


def test_broken_model_and_bad_parameters(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{ not json")
    code, lines = _run("encoder_node", *param_args(model=broken))
    assert code == 2 and len(lines) == 1 and lines[0].startswith("encoder_node: error:") and "model.json" in lines[0]

    model = make_model_dir(tmp_path / "image", "image")
    code, lines = _run("encoder_node", *param_args(model=model, backend="magic"))
    assert code == 2 and lines == ["encoder_node: error: backend must be one of auto, torch, onnxruntime, tensorrt, "
                                   "got 'magic'"]
    code, lines = _run("encoder_node", *param_args(model=model, modality="scan"))
    assert code == 2 and len(lines) == 1 and "does not match the model's 'image'" in lines[0]
    code, lines = _run("decoder_node", *param_args(model=model, generate_rate=-1.0))
    assert code == 2 and len(lines) == 1 and "generate_rate" in lines[0]
    code, lines = _run("encoder_node", *param_args(model=model, threads="many"))
    assert code == 2 and len(lines) == 1 and "'threads'" in lines[0]
