"""Everything in vae_ros that needs a GPU, in one run (issue 20, section 7); `scripts/gpu_check.sh`, `make gpu-check`.

Runs from the working tree (PYTHONPATH = the repository) with no network, in under five minutes on one GPU, and
prints one table:

  backends on cuda   `vae-ros bench models` with torch on CUDA, TensorRT (when torch_tensorrt imports) and ONNX
                     Runtime (its CPU build where there is no GPU one)
  bench train fp32   `vae-ros bench train --device cuda --batch 512`: the project's loop / a bare loop (target 0.8x)
  bench train bf16   the same with --precision bf16 --channels-last (and its samples/s against half the ~80k
                     samples/s ceiling of an H200)
  torchrun (NCCL)    `torchrun --nproc-per-node=1` of a tiny training on CUDA (scripts/gpu_check_torchrun.py)
  preprocess cuda    bench/preprocess_device.py --device cuda: a 640x480 bgr8 frame -> latent on backend torch with
                     the image preprocessed on the GPU (encoder_node preprocess:=device, auto there) and on the CPU,
                     against the model's own latency on a ready input (target: within 1.5x of it)
                     (and the same with the encoder replayed from a CUDA graph: encoder_node cuda_graph)
  plan cuda          bench/plan_device.py: the world model's plan() with its candidates scored on the GPU
                     (world_model_node plan_device:=cuda) against NumPy and torch rollouts on the CPU, same plans
  encoder_node cuda  test/nodes/test_encoder_node_cuda.py, when rclpy imports
  pytest -m gpu      every test marked gpu (test/core/test_train_gpu.py ...)
  compiled           `vae-ros bench train --device cuda --batch 512 --compile` (both loops compiled), when the
                     rows before it left the time for it

Packages beyond torch (CUDA build): numpy, safetensors, tqdm, matplotlib (training), onnx and onnxruntime (the
backends row), pytest (the test rows); optional: torch_tensorrt (TensorRT), rclpy (the node row). A missing one
turns its rows into "skipped", naming it. Without a CUDA device the script prints one line and exits 77 (the
"skipped" code of automake and meson) before anything else.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_GPU_EXIT = 77
BF16_CEILING = 80_000.0  # samples/s of the bare loop's ceiling on an H200 (issue 20); the target is half of it
ROW_TIMEOUT_S = 150
COMPILE_AFTER_S = 170  # the compiled row (about two minutes) runs only when the others took less than this


@dataclass
class Row:
    check: str
    status: str  # ok, below, FAIL, skipped
    result: str
    seconds: float = 0.0


def no_gpu_reason() -> str:
    """'' when torch sees a CUDA device, else the one line saying why not."""
    try:
        import torch
    except ImportError as err:
        return f"gpu_check: torch does not import ({err}); nothing to check"
    if torch.cuda.is_available():
        return ""
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    return (f"gpu_check: no CUDA GPU here (torch {torch.__version__}, {build}, sees none); nothing to check: "
            "run this on a GPU machine")


def missing(*modules: str) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def run(cmd: list[str], timeout: float = ROW_TIMEOUT_S) -> tuple[int, str, float]:
    """(exit code, the output's last lines, seconds); exit code 124 on a timeout."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        code = 124
        output = f"timed out after {timeout:.0f} s\n" + ((err.stdout or b"").decode() if isinstance(err.stdout, bytes)
                                                         else (err.stdout or ""))
    return code, output, time.monotonic() - started


def tail(output: str, lines: int = 1) -> str:
    kept = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return " / ".join(kept[-lines:])[:200] if kept else "(no output)"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vae_ros.apps.cli", *args]


def check_backends(work: Path, device: str) -> list[Row]:
    if missing("onnx", "onnxruntime"):
        names = "torch-cuda,tensorrt"
        note = f"; onnxruntime row left out ({', '.join(missing('onnx', 'onnxruntime'))} missing)"
    else:
        names, note = "torch-cuda,tensorrt,onnxruntime", ""
    out = work / "models.json"
    code, output, seconds = run(cli("bench", "models", "--backends", names, "--batch", "32", "--repeats", "50",
                                    "--json", str(out)))
    if code != 0 or not out.is_file():
        return [Row("backends on cuda", "FAIL", f"exit {code}: {tail(output)}", seconds)]
    report = json.loads(out.read_text())
    rows = [Row(f"backend {r['backend']}", "ok", f"{r['latency_ms']:.3f} ms at batch 1, {r['throughput']:.0f} "
                f"samples/s at batch 32{note if r['backend'] == 'torch-cuda' else ''}", seconds)
            for r in report["results"]]
    trt = "torch_tensorrt does not import" if missing("torch_tensorrt") else report["skipped"].get("tensorrt", "")
    if "tensorrt" in report["skipped"] or missing("torch_tensorrt"):
        rows.append(Row("backend tensorrt", "skipped", trt or "unavailable"))
    for name, why in report["skipped"].items():
        if name != "tensorrt":
            rows.append(Row(f"backend {name}", "FAIL" if device == "cuda" else "skipped", why))
    return rows


def check_bench_train(work: Path, precision: str, device: str, compiled: bool = False) -> Row:
    out = work / f"train_{precision}{'_compiled' if compiled else ''}.json"
    extra = ["--precision", "bf16", "--channels-last"] if precision == "bf16" else []
    extra += ["--compile", "--windows", "3"] if compiled else ["--windows", "5"]
    batch = "512" if device == "cuda" else "32"  # the CPU run checks the plumbing only
    code, output, seconds = run(cli("bench", "train", "--device", device, "--batch", batch, "--json", str(out), *extra))
    name = (f"bench train {precision}" + (" channels_last" if precision == "bf16" else "")
            + (" compiled" if compiled else "") + f" b{batch}")
    if code != 0 or not out.is_file():
        return Row(name, "FAIL", f"exit {code}: {tail(output)}", seconds)
    r = json.loads(out.read_text())
    status = "ok" if r["ratio"] >= r["target"] else "below"
    text = (f"{r['ratio']:.2f}x of the bare loop (target {r['target']:.1f}x): {r['project_samples_per_s']:.0f} vs "
            f"{r['bare_samples_per_s']:.0f} samples/s")
    if precision == "bf16" and device == "cuda":
        share = r["project_samples_per_s"] / BF16_CEILING
        text += f"; {share:.2f}x of the ~{BF16_CEILING / 1000:.0f}k ceiling (target 0.5x)"
        if share < 0.5:
            status = "below"
    return Row(name, status, text, seconds)


def check_torchrun(work: Path, device: str) -> Row:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, output, seconds = run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=1",
                                 "--master-addr", "127.0.0.1", "--master-port", str(port),
                                 str(REPO / "scripts" / "gpu_check_torchrun.py"), str(work / "torchrun"), device])
    group = "nccl" if device == "cuda" else "gloo"
    ok = code == 0 and f"backend {group}" in output
    return Row(f"torchrun nproc 1 ({group.upper()})", "ok" if ok else "FAIL", tail(output) if ok else f"exit {code}: {tail(output)}",
               seconds)


def check_preprocess(work: Path, device: str) -> list[Row]:
    """The encoder's in-process work per 640x480 frame, preprocessed on the device and on the CPU, against the
    model alone (bench/preprocess_device.py)."""
    out = work / "preprocess.json"
    code, output, seconds = run([sys.executable, "bench/preprocess_device.py", "--device", device, "--rounds", "200",
                                 "--json", str(out)])
    if code != 0 or not out.is_file():
        return [Row("preprocess 640x480", "FAIL", f"exit {code}: {tail(output)}", seconds)]
    r = json.loads(out.read_text())
    rows, model = r["rows"], r["rows"]["model alone"]["median_ms"]
    ratio = rows["preprocess device"]["vs_model"]
    where = "on the device" if device == "cuda" else "on CPU torch (plumbing)"
    text = (f"frame -> latent {rows['preprocess device']['median_ms']:.3f} ms preprocessed {where}, "
            f"{ratio:.2f}x the model alone ({model:.3f} ms; target {r['target_ratio']:.1f}x); preprocessed on the "
            f"CPU {rows['preprocess cpu']['median_ms']:.3f} ms ({rows['preprocess cpu']['vs_model']:.2f}x); input "
            f"differs by <= {r['input_difference']['max']:.2g}")
    result = [Row(f"preprocess 640x480 {device}", "ok" if ratio <= r["target_ratio"] else "below", text, seconds)]
    if "preprocess device, cuda graph" in rows:
        graph, alone = rows["preprocess device, cuda graph"], rows["model alone, cuda graph"]
        graph_ratio = graph["median_ms"] / alone["median_ms"]
        result.append(Row("preprocess 640x480 cuda graph", "ok" if graph_ratio <= r["target_ratio"] else "below",
                          f"frame -> latent {graph['median_ms']:.3f} ms with the encoder replayed from a CUDA graph, "
                          f"{graph_ratio:.2f}x the graphed model alone ({alone['median_ms']:.3f} ms; eager "
                          f"{model:.3f} ms)"))
    return result


def check_plan(work: Path, device: str) -> Row:
    """plan() with its candidates scored on the GPU against the CPU's two node paths (bench/plan_device.py)."""
    out = work / "plan.json"
    variants = "numpy,torch-rollouts," + ("cuda" if device == "cuda" else "torch-cpu")
    code, output, seconds = run([sys.executable, "bench/plan_device.py", "--devices", variants, "--rounds", "40",
                                 "--json", str(out)])
    name = f"plan {device}"
    if code != 0 or not out.is_file():
        return Row(name, "FAIL", f"exit {code}: {tail(output)}", seconds)
    r = json.loads(out.read_text())
    rows = r["rows"]
    target = "cuda" if device == "cuda" else "torch-cpu"
    if target not in rows:
        return Row(name, "FAIL", f"{target} did not run: {r['skipped'].get(target, '?')}", seconds)
    best_cpu = min(rows["numpy"]["median_ms"], rows["torch-rollouts"]["median_ms"])
    got = rows[target]["median_ms"]
    text = (f"plan() {got:.1f} ms scored on {target}, numpy {rows['numpy']['median_ms']:.1f} ms (speed-up {rows[target]['speedup_vs_first']:.2f}x"
            f"), torch rollouts {rows['torch-rollouts']['median_ms']:.1f} ms; plans differ by <= "
            f"{rows[target]['max_plan_difference']:.2g}")
    return Row(name, "ok" if got < best_cpu else "below", text, seconds)


def check_pytest(name: str, files: list[str]) -> Row:
    if missing("pytest"):
        return Row(name, "skipped", "pytest does not import")
    code, output, seconds = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                                 *files], timeout=240)
    status = {0: "ok", 5: "skipped"}.get(code, "FAIL")  # 5: pytest collected nothing
    if status == "ok" and " passed" not in tail(output):
        status = "skipped"  # every test skipped: say so, with pytest's reason in the log
    return Row(name, status, tail(output), seconds)


def gpu_test_files() -> list[str]:
    files = []
    for path in sorted((REPO / "test").rglob("test_*.py")):
        if "mark.gpu" in path.read_text(errors="replace"):
            files.append(str(path.relative_to(REPO)))
    return files


def format_table(rows: list[Row], header: str) -> str:
    width = max(len(r.check) for r in rows)
    lines = [header, f"{'check':<{width}}  {'status':<7}  {'s':>5}  result", "-" * (width + 80)]
    lines += [f"{r.check:<{width}}  {r.status:<7}  {r.seconds:>5.0f}  {r.result}" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", metavar="A,B",
                        help="rows to run: backends,train,torchrun,preprocess,plan,node,pytest,compile (default all)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: run the training, torchrun, preprocess and plan rows on the CPU, to check this "
                             "script's plumbing on a machine without a GPU (default cuda)")
    args = parser.parse_args(argv)
    reason = no_gpu_reason() if args.device == "cuda" else ""
    if reason:
        print(reason, file=sys.stderr)
        return NO_GPU_EXIT
    import torch

    wanted = set(filter(None, args.only.split(","))) or {"backends", "train", "torchrun", "preprocess", "plan", "node",
                                                         "pytest", "compile"}
    started = time.monotonic()
    rows: list[Row] = []
    lacking = missing("numpy", "safetensors", "tqdm", "matplotlib")
    with tempfile.TemporaryDirectory(prefix="vae_ros_gpu_check_") as tmp:
        work = Path(tmp)
        if lacking:
            rows.append(Row("packages", "FAIL", f"missing {', '.join(lacking)}: training rows cannot run"))
        if "backends" in wanted:
            rows += check_backends(work, args.device)
        if "train" in wanted and not lacking:
            rows += [check_bench_train(work, "fp32", args.device), check_bench_train(work, "bf16", args.device)]
        if "torchrun" in wanted and not lacking:
            rows.append(check_torchrun(work, args.device))
        if "preprocess" in wanted:
            rows += check_preprocess(work, args.device)
        if "plan" in wanted:
            rows.append(check_plan(work, args.device))
        node_test = "test/nodes/test_encoder_node_cuda.py"
        if "node" in wanted:
            if missing("rclpy"):
                rows.append(Row("encoder_node device:=cuda", "skipped", "rclpy does not import"))
            else:
                rows.append(check_pytest("encoder_node device:=cuda", [node_test]))
        if "pytest" in wanted:
            files = [f for f in gpu_test_files() if f != node_test]
            rows.append(check_pytest("pytest -m gpu", files))
        if "compile" in wanted and not lacking:  # last: compiling takes a minute or more
            if time.monotonic() - started > COMPILE_AFTER_S:
                rows.append(Row("bench train fp32 compiled", "skipped", f"over {COMPILE_AFTER_S:.0f} s already: "
                                "left out to stay under five minutes (--only compile runs it alone)"))
            else:
                rows.append(check_bench_train(work, "fp32", args.device, compiled=True))
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else "the CPU (--device cpu: plumbing only)"
    header = f"gpu_check: {where}, torch {torch.__version__} (CUDA {torch.version.cuda}), {time.monotonic() - started:.0f} s"
    print(format_table(rows, header))
    return 1 if any(r.status == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
