"""encoder_node's in-process work per 640x480 frame on backend torch, with the image preprocessed on the CPU
(NumPy/OpenCV) or on the model's device (vae_ros.core.preprocess_torch, `preprocess:=device`), against the
model's own latency on an input already on the device: `python bench/preprocess_device.py [--device cuda]`.

Rows, each from a bgr8 sensor_msgs/Image's fields (no ROS needed: the GPU machine has none) to the latent mean on
the host, timed in interleaved rounds (one call of each per round, so load drifts hit all alike), medians:

  model alone           backend.encode_tensor on an input tensor already on the device: the model's own latency
  preprocess cpu        message -> array -> preprocess_image (cv2 INTER_AREA) -> backend.encode (NumPy in)
  preprocess device     message -> its own bgr8 pixels (image_msg_pixels: no host copy) -> DevicePreprocessor
                        (upload uint8, swap to RGB, resize, normalise there) -> backend.encode_tensor: encoder_node's
                        path with preprocess:=device
  resize only, cpu / device   preprocess_image / DevicePreprocessor alone (the device one synchronised)
  ... cuda graph        on CUDA also "model alone" and "preprocess device" with the encoder replayed from a CUDA
                        graph (encoder_node cuda_graph:=on; vae_ros.core.cuda_graph), ratios still to eager's
                        model alone

Issue 20's target for a node on a GPU: its latency within 1.5x of the model's own; the ratio column gives each
row against "model alone" in the same run (DDS and the executor come on top: `vae-ros bench nodes`). It also
reports how far the device path's input is from the CPU path's (max and mean |difference|) and how far torch's
own F.interpolate modes would be from cv2's INTER_AREA on the same frame (why preprocess_torch does not use them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

TARGET_RATIO = 1.5


def bgr8_message(frame: np.ndarray) -> Any:
    """A sensor_msgs/Image's fields for an (H, W, 3) RGB frame sent as bgr8 (what a USB camera driver sends)."""
    height, width = frame.shape[:2]
    return SimpleNamespace(encoding="bgr8", height=height, width=width, step=3 * width, is_bigendian=0,
                           data=np.ascontiguousarray(frame[:, :, ::-1]).reshape(-1))


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1e3


def run(model: str = "", device: str = "cpu", rounds: int = 200, warmup: int = 20, width: int = 640,
        height: int = 480, threads: int = 1) -> dict[str, Any]:
    """The figures as a dict (rows: name -> median / p90 ms and the ratio to the model alone)."""
    import torch
    import torch.nn.functional as F

    from vae_ros.core.backends import TorchBackend
    from vae_ros.core.conversions.image import image_msg_pixels, image_msg_to_array
    from vae_ros.core.model_dir import resolve_model_dir
    from vae_ros.core.preprocess import preprocess_image
    from vae_ros.core.preprocess_torch import DevicePreprocessor

    if device == "cpu":
        torch.set_num_threads(threads)
    backend = TorchBackend(resolve_model_dir(model, "image"), device)
    spec = backend.config.image_spec
    on_device = DevicePreprocessor(spec, backend.device)
    rng = np.random.default_rng(0)
    # A camera-like frame (smooth shapes, some texture), not noise: what a resize meets in practice.
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack([(128 + 100 * np.sin(xx / 37.0 + c) * np.cos(yy / 23.0 - c)) for c in range(3)], axis=2)
    frame = np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8)
    msg = bgr8_message(frame)
    ready = on_device(image_msg_to_array(msg))  # (1, C, h, w) on the device

    def sync() -> None:
        if backend.device.type == "cuda":
            torch.cuda.synchronize()

    def model_alone() -> None:
        backend.encode_tensor(ready)

    def preprocess_cpu() -> None:
        backend.encode(preprocess_image(image_msg_to_array(msg), spec)[None])

    def preprocess_device() -> None:
        backend.encode_tensor(on_device(*image_msg_pixels(msg)))

    def resize_cpu() -> None:
        preprocess_image(image_msg_to_array(msg), spec)

    def resize_device() -> None:
        on_device(*image_msg_pixels(msg))
        sync()

    rows: dict[str, Callable[[], Any]] = {"model alone": model_alone, "preprocess cpu": preprocess_cpu,
                                          "preprocess device": preprocess_device, "resize only, cpu": resize_cpu,
                                          "resize only, device": resize_device}
    if backend.device.type == "cuda":
        from vae_ros.core.cuda_graph import apply_cuda_graph

        graphed = TorchBackend(backend.model_dir, device)
        apply_cuda_graph("on", graphed, runs=5)
        rows["model alone, cuda graph"] = lambda: graphed.encode_tensor(ready)
        rows["preprocess device, cuda graph"] = lambda: graphed.encode_tensor(on_device(*image_msg_pixels(msg)))
    times: dict[str, list[float]] = {name: [] for name in rows}
    for index in range(warmup + rounds):
        for name, fn in rows.items():
            elapsed = _timed(fn)
            if index >= warmup:
                times[name].append(elapsed)
    base = statistics.median(times["model alone"])
    results = {name: {"median_ms": statistics.median(t), "p90_ms": float(np.percentile(t, 90)),
                      "vs_model": statistics.median(t) / base} for name, t in times.items()}

    expected = preprocess_image(image_msg_to_array(msg), spec)
    got = on_device(*image_msg_pixels(msg))[0].cpu().numpy()
    source = torch.from_numpy(image_msg_to_array(msg).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    interpolate = {}
    for label, kwargs in (("area", {"mode": "area"}),
                          ("bilinear antialias", {"mode": "bilinear", "antialias": True, "align_corners": False}),
                          ("bicubic antialias", {"mode": "bicubic", "antialias": True, "align_corners": False})):
        out = F.interpolate(source, size=(spec.height, spec.width), **kwargs)[0].numpy()
        if spec.channels == 1:
            out = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), out, axes=1)[None]
        diff = np.abs(out - expected)
        interpolate[label] = {"max": float(diff.max()), "mean": float(diff.mean())}
    diff = np.abs(got - expected)
    return {"model": str(backend.model_dir), "backend": backend.name, "device": str(backend.device),
            "frame": [height, width], "input_shape": list(backend.config.input_shape), "rounds": rounds,
            "rows": results, "input_difference": {"max": float(diff.max()), "mean": float(diff.mean())},
            "interpolate_vs_cv2": interpolate, "target_ratio": TARGET_RATIO}


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{report['frame'][1]}x{report['frame'][0]} bgr8 -> {report['input_shape']} -> latent, "
             f"{report['backend']} on {report['device']}, medians of {report['rounds']} interleaved rounds",
             f"{'row':<32}{'median ms':>11}{'p90 ms':>9}{'x model':>9}"]
    for name, row in report["rows"].items():
        lines.append(f"{name:<32}{row['median_ms']:>11.3f}{row['p90_ms']:>9.3f}{row['vs_model']:>8.2f}x")
    diff = report["input_difference"]
    lines.append(f"device input vs cpu input: max {diff['max']:.2g}, mean {diff['mean']:.2g} "
                 f"(one grey level = {1 / 255:.4f})")
    lines.append("F.interpolate vs cv2 INTER_AREA on this frame: " + ", ".join(
        f"{name} max {d['max']:.3f} mean {d['mean']:.4f}" for name, d in report["interpolate_vs_cv2"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="image model directory (default: the packaged image_default)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="the torch device (cpu)")
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds (200)")
    parser.add_argument("--warmup", type=int, default=20, help="rounds before timing (20)")
    parser.add_argument("--width", type=int, default=640, help="frame width (640)")
    parser.add_argument("--height", type=int, default=480, help="frame height (480)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (1)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or args.width < 1 or args.height < 1 or args.threads < 1:
        parser.error("--rounds, --width, --height and --threads must be >= 1 and --warmup >= 0")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(f"preprocess_device: --device cuda, but torch {torch.__version__} sees no CUDA device",
                  file=sys.stderr)
            return 2
    report = run(args.model, args.device, args.rounds, args.warmup, args.width, args.height, args.threads)
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
