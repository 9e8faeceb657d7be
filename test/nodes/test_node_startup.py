"""Node start-up failures: one clear error line and exit status 2, never a traceback.

All cases start together (each is a short-lived process) to keep the module quick.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from node_helpers import make_model_dir, param_args, start_node, stop_processes

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("startup")
    broken = root / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{ not json")
    model = make_model_dir(root / "image", "image")
    missing = root / "nowhere"
    # Hostile model files (issue 10): the packaged model with its exports (auto hashes the weights to check
    # them), weights a FIFO; a model whose weights link to /dev/zero.
    fifo_model = _hostile_copy(root / "fifo", os.mkfifo)
    zero_model = _hostile_copy(root / "zero", lambda weights: weights.symlink_to("/dev/zero"))
    params = _params_files(root)
    cases = {
        "encoder missing": ("encoder_node", param_args(model=missing)),
        "decoder missing": ("decoder_node", param_args(model=missing)),
        "encoder broken": ("encoder_node", param_args(model=broken)),
        "encoder backend": ("encoder_node", param_args(model=model, backend="magic")),
        "encoder modality": ("encoder_node", param_args(model=model, modality="scan")),
        "encoder threads": ("encoder_node", param_args(model=model, threads="many")),
        "encoder compressed scan": ("encoder_node", param_args(model=model, modality="scan", compressed=True)),
        "decoder rate": ("decoder_node", param_args(model=model, generate_rate=-1.0)),
        "encoder fifo weights": ("encoder_node", param_args(model=fifo_model)),
        "encoder fifo weights onnxruntime": ("encoder_node", param_args(model=fifo_model, backend="onnxruntime")),
        "decoder zero weights torch": ("decoder_node", param_args(model=zero_model, backend="torch")),
        "encoder params missing": ("encoder_node", ["--params-file", str(params["missing"])]),
        "encoder params yaml": ("encoder_node", ["--params-file", str(params["yaml"])]),
        "encoder params structure": ("encoder_node", ["--params-file", str(params["structure"])]),
    }
    procs = {name: _start(module, args) for name, (module, args) in cases.items()}
    results: dict[str, Any] = {"missing": missing, "fifo": fifo_model, "zero": zero_model, "params": params}
    for name, proc in procs.items():
        code, lines = _finish(proc)
        if code is None:
            # Hung (once in a full run under load, before printing anything). Once more, alone: a node that
            # really blocks (a FIFO opened, issue 10) hangs again, and its stacks are then in the lines.
            code, lines = _finish(_start(*cases[name]))
        results[name] = (code, lines)
    return results


def _start(module: str, args: list[str]) -> subprocess.Popen[str]:
    return start_node(module, *args, PYTHONFAULTHANDLER="1")  # SIGABRT prints every thread's stack


def _finish(proc: subprocess.Popen[str], timeout: float = 90.0) -> tuple[int | None, list[str]]:
    """(exit status, non-empty output lines); status None when the node had not exited within `timeout`."""
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        code = None
    return code, [line for line in out.splitlines() if line.strip()]


def _hostile_copy(path: Path, make_weights: Any) -> Path:
    from vae_ros.resources import default_model_dir

    shutil.copytree(default_model_dir("image"), path, ignore=shutil.ignore_patterns("eval", "*.png"))
    (path / "weights.safetensors").unlink()
    make_weights(path / "weights.safetensors")
    return path


def _params_files(root: Path) -> dict[str, Path]:
    files = {"missing": root / "no_such_params.yaml", "yaml": root / "broken.yaml",
             "structure": root / "flat.yaml", "misspelt": root / "misspelt.yaml"}
    files["yaml"].write_text("encoder_node:\n  ros__parameters: [unclosed\n")
    files["structure"].write_text("encoder_node:\n  backend: torch\n")
    files["misspelt"].write_text("encoder_node:\n  ros__parameters:\n    modell: /somewhere\n    backend: torch\n")
    return files


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
    ("decoder rate", "Parameter generate_rate out of range Min: 0.01, Max: 1000.0, value: -1.0"),
])
def test_invalid_parameters_are_refused_with_a_reason(outcomes: dict[str, Any], case: str, words: str) -> None:
    code, lines = outcomes[case]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"{case.split()[0]}_node: error:") and words in lines[0]


@pytest.mark.parametrize("case, kind", [
    ("encoder fifo weights", "is a FIFO (named pipe), not a regular file"),
    ("encoder fifo weights onnxruntime", "is a FIFO (named pipe), not a regular file"),
    ("decoder zero weights torch", "is a link to /dev/zero, which is a character device, not a regular file"),
])
def test_weights_that_are_not_regular_files_are_one_line_naming_them(outcomes: dict[str, Any], case: str,
                                                                   kind: str) -> None:
    """Issue 10: these hashed (or blocked) forever, deaf to SIGTERM; backend torch said 'has no
    weights.safetensors'."""
    code, lines = outcomes[case]
    model = outcomes["zero" if "zero" in case else "fifo"]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == f"{case.split()[0]}_node: error: {model / 'weights.safetensors'} {kind}; refused"


@pytest.mark.parametrize("case, words", [
    ("encoder params missing", "no_such_params.yaml does not exist or is not a file"),
    ("encoder params yaml", "broken.yaml is not valid YAML: expected ',' or ']', but got '<stream end>' at line 3"),
    ("encoder params structure", "flat.yaml: encoder_node/backend has a value before any ros__parameters"),
])
def test_bad_params_files_are_one_clear_line(outcomes: dict[str, Any], case: str, words: str) -> None:
    code, lines = outcomes[case]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("encoder_node: error: --params-file ") and words in lines[0]


class _Output:
    """A node process's output lines, collected on a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.05)
        return False


def test_a_misspelt_parameter_is_named_and_sigterm_stops_the_running_node(tmp_path: Path) -> None:
    params = _params_files(tmp_path)
    proc = start_node("encoder_node", "--params-file", str(params["misspelt"]))
    output = _Output(proc)
    try:
        assert output.wait_for("did you mean 'model'?", timeout=60), output.lines
        assert output.wait_for("on torch", timeout=10), output.lines  # the rest of the file was applied
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - start < 15
    finally:
        stop_processes([proc], signal.SIGKILL)
    warning = next(line for line in output.lines if "modell" in line)
    assert "parameter 'modell' is not a parameter of encoder_node and is ignored" in warning
    assert not any("Traceback" in line for line in output.lines)


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_sigterm_at_any_point_of_start_up_stops_the_node_promptly(tmp_path: Path, delay: float) -> None:
    """A node starting on a model whose weights are a FIFO (it once blocked there forever, deaf to
    SIGTERM), and one starting normally: SIGTERM during start-up ends both within a bounded wait."""
    fifo_model = _hostile_copy(tmp_path / "fifo", os.mkfifo)
    procs = [start_node("encoder_node", *param_args(model=fifo_model)), start_node("encoder_node")]
    time.sleep(delay)  # the point of start-up the signal lands on is what this test varies
    start = time.monotonic()
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        for proc in procs:
            code = proc.wait(timeout=20)
            out = proc.stdout.read() if proc.stdout else ""
            # 0: stopped cleanly; -15: the signal came before Python code ran; 2: the FIFO was refused first.
            assert code in (0, 2, -signal.SIGTERM), (code, out)
            assert "Traceback" not in out, out
    finally:
        stop_processes(procs, signal.SIGKILL)
    assert time.monotonic() - start < 20


def test_nodes_that_publish_cmd_vel_refuse_a_misspelt_parameter(tmp_path: Path) -> None:
    """Issue 21 section 4: `max_lineer:=0.1` only warned and the robot ran at the default 0.3 m/s. A node that
    publishes cmd_vel now refuses to start (one line with the did-you-mean, exit 2), from -p and from a params
    file alike; beside them the same nodes on the shipped config files, spelt right, start (and are stopped)."""
    from vae_ros.resources import config_dir

    servo_yaml, world_yaml = str(config_dir() / "servo.yaml"), str(config_dir() / "world_model.yaml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("/**/world_model_node:\n  ros__parameters:\n    max_angluar: 0.2\n    horizn: 8\n")
    refused = {
        "latent_servo_node": (["--params-file", servo_yaml, "-p", "max_lineer:=0.1"],
                              "latent_servo_node: error: parameter 'max_lineer' is not a parameter of "
                              "latent_servo_node; did you mean 'max_linear'? Not starting: this node publishes "
                              "cmd_vel, and a misspelt limit would leave its default in force"),
        "world_model_node": (["--params-file", world_yaml, "--params-file", str(typo)],
                             "world_model_node: error: parameters 'horizn' (did you mean 'horizon'?), 'max_angluar' "
                             "(did you mean 'max_angular'?) are not parameters of world_model_node. Not starting: "
                             "this node publishes cmd_vel, and a misspelt limit would leave its default in force"),
    }
    accepted = {"latent_servo_node": ["--params-file", servo_yaml, "-p", "max_linear:=0.1"],
                "world_model_node": ["--params-file", world_yaml, "-p", "max_angular:=0.2", "-p", "horizon:=8"]}
    procs = {("refused", name): _start(name, args) for name, (args, _) in refused.items()}
    procs.update({("accepted", name): _start(name, args) for name, args in accepted.items()})
    outputs = {key: _Output(proc) for key, proc in procs.items() if key[0] == "accepted"}
    try:
        for name, (_, line) in refused.items():
            code, lines = _finish(procs[("refused", name)])
            assert code == 2 and lines == [line], (code, lines)
        for (_, name), output in outputs.items():
            # Its start-up line comes once cmd_vel is set up: the shipped config holds no unknown names.
            assert output.wait_for("waiting for a goal", timeout=120), output.lines
            assert procs[("accepted", name)].poll() is None, output.lines
        # The world model plans with NumPy (backend auto) on one BLAS thread (vae_ros.core.blas), and says so;
        # where this environment chose BLAS threads, it keeps them.
        from vae_ros.core.blas import BLAS_THREAD_VARIABLES

        chosen = [name for name in BLAS_THREAD_VARIABLES if os.environ.get(name)]
        blas = f"BLAS threads as {chosen[0]} sets them" if chosen else "1 BLAS thread"
        started = [line for line in outputs[("accepted", "world_model_node")].lines if "waiting for a goal" in line]
        assert f"(NumPy rollouts, {blas})" in started[0], started
    finally:
        stop_processes(procs.values(), signal.SIGINT, timeout=20)
    for (_, name), output in outputs.items():
        assert procs[("accepted", name)].returncode == 0, output.lines
        assert not any("is not a parameter" in line or "Traceback" in line for line in output.lines), output.lines
