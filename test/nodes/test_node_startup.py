"""Node start-up failures: one clear error line and exit status 2, never a traceback.

All cases start together (each is a short-lived process) to keep the module quick.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from node_helpers import make_model_dir, param_args, start_node

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("startup")
    broken = root / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{ not json")
    model = make_model_dir(root / "image", "image")
    missing = root / "nowhere"
    cases = {
        "encoder missing": ("encoder_node", param_args(model=missing)),
        "decoder missing": ("decoder_node", param_args(model=missing)),
        "encoder broken": ("encoder_node", param_args(model=broken)),
        "encoder backend": ("encoder_node", param_args(model=model, backend="magic")),
        "encoder modality": ("encoder_node", param_args(model=model, modality="scan")),
        "encoder threads": ("encoder_node", param_args(model=model, threads="many")),
        "encoder compressed scan": ("encoder_node", param_args(model=model, modality="scan", compressed=True)),
        "decoder rate": ("decoder_node", param_args(model=model, generate_rate=-1.0)),
    }
    procs = {name: start_node(module, *args) for name, (module, args) in cases.items()}
    results: dict[str, Any] = {"missing": missing}
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        results[name] = (proc.returncode, [line for line in out.splitlines() if line.strip()])
    return results


@pytest.mark.parametrize("module", ["encoder", "decoder"])
def test_missing_model_is_one_clear_line(outcomes: dict[str, Any], module: str) -> None:
    code, lines = outcomes[f"{module} missing"]
    assert code == 2
    assert lines == [f"{module}_node: error: model directory {outcomes['missing']} does not exist or is not a directory"]


def test_broken_model_is_one_clear_line(outcomes: dict[str, Any]) -> None:
    code, lines = outcomes["encoder broken"]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("encoder_node: error:") and "model.json" in lines[0]


@pytest.mark.parametrize("case, words", [
    ("encoder backend", "backend must be one of auto, torch, onnxruntime, tensorrt, got 'magic'"),
    ("encoder modality", "modality 'scan' does not match the model's 'image'"),
    ("encoder threads", "parameter 'threads' must be of type int"),
    ("encoder compressed scan", "compressed:=true needs the image modality"),
    ("decoder rate", "generate_rate must be in (0, 1000] Hz, got -1.0"),
])
def test_invalid_parameters_are_refused_with_a_reason(outcomes: dict[str, Any], case: str, words: str) -> None:
    code, lines = outcomes[case]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"{case.split()[0]}_node: error:") and words in lines[0]
