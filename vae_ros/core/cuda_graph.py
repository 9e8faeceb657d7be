"""The torch encoder at batch 1 on CUDA, replayed from a CUDA graph (encoder_node `cuda_graph`).

Eager PyTorch launches each layer's kernels from Python, one after the other; for these small encoders at
batch 1 the GPU waits on those launches more than it computes. A CUDA graph records the launches once, on a
fixed input buffer, and replays all of them with one call: the input is copied into that buffer, the graph
replayed, the outputs read from the graph's own output buffers. Same kernels, same results.

Only for backend torch on a CUDA device, at batch 1 (a camera frame); everything else runs eagerly as before,
and nothing here runs on a CPU. Whether it pays is measured, not assumed: `measure` times both on the device
(encoder_node's `cuda_graph:=auto` keeps the graph only where it was faster at start), and
bench/preprocess_device.py and scripts/gpu_check.sh report both. test/core/test_cuda_graph.py (marked gpu)
checks the replayed latents against eager ones for inputs after the first.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from vae_ros.core.errors import BackendUnavailableError, ConfigError

if TYPE_CHECKING:  # torch loads where a graph is made: cuda_graph_target runs in ONNX Runtime nodes too
    import torch

CUDA_GRAPH_CHOICES = ("auto", "on", "off")
WARMUP_RUNS = 3  # eager runs on a side stream before the capture (cuDNN picks its algorithms there)


class GraphedEncoder:
    """model.encode on one (1, *input_shape) float32 buffer on `device`, captured once and replayed per call."""

    def __init__(self, model: Any, input_shape: Sequence[int], device: torch.device) -> None:
        import torch

        if device.type != "cuda" or not torch.cuda.is_available():
            raise BackendUnavailableError(f"CUDA graphs need a CUDA device; the model runs on {device}")
        self.device = device
        self.static_input = torch.zeros((1, *input_shape), dtype=torch.float32, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                model.encode(self.static_input)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.static_mean, self.static_logvar = model.encode(self.static_input)  # (1, D) each

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, *input_shape) on any device -> (mean, logvar) (1, D): the graph's own buffers, overwritten by the
        next call (copy them out, as .cpu() does, before calling again)."""
        import torch

        with torch.no_grad():
            self.static_input.copy_(x)
            self.graph.replay()
        return self.static_mean, self.static_logvar


def measure(eager: Callable[[], Any], graphed: Callable[[], Any], runs: int = 50) -> tuple[float, float]:
    """(eager median ms, graphed median ms) of `runs` interleaved calls, each ending in a host copy (a sync)."""
    eager_ms: list[float] = []
    graph_ms: list[float] = []
    for _ in range(runs):
        for fn, times in ((eager, eager_ms), (graphed, graph_ms)):
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(eager_ms), statistics.median(graph_ms)


def cuda_graph_target(choice: str, backend: Any) -> bool:
    """Whether `choice` (encoder_node's cuda_graph) asks for a graph on this backend: on and auto where the
    backend is torch on CUDA (auto then measures), never elsewhere; ConfigError, one line, for `on` elsewhere."""
    if choice not in CUDA_GRAPH_CHOICES:
        raise ConfigError(f"cuda_graph must be one of {', '.join(CUDA_GRAPH_CHOICES)}, got {choice!r}")
    from vae_ros.core.backends import TorchBackend

    on_cuda = isinstance(backend, TorchBackend) and backend.device.type == "cuda"
    if choice == "on" and not on_cuda:
        raise ConfigError(f"cuda_graph 'on' needs backend torch on device cuda, got "
                          f"{getattr(backend, 'name', type(backend).__name__)}: set cuda_graph to auto or off")
    return choice != "off" and on_cuda


def apply_cuda_graph(choice: str, backend: Any, runs: int = 50) -> str:
    """Give a TorchBackend on CUDA its batch-1 CUDA graph as `choice` asks: `on` keeps it, `auto` keeps it where
    `runs` interleaved calls of each (on a blank input, each ending in the host copy a node makes) were faster
    replayed than eager; -> the one line that says what was measured and kept ('' where no graph was asked for:
    off, or not torch on CUDA)."""
    if not cuda_graph_target(choice, backend):
        return ""
    import torch

    shape = (1, *backend.config.input_shape)
    graphed = GraphedEncoder(backend.model, backend.config.input_shape, backend.device)
    x = torch.rand(shape, device=backend.device)

    def eager() -> None:
        with torch.inference_mode():
            mean, logvar = backend.model.encode(x)
        mean.cpu(), logvar.cpu()

    def replayed() -> None:
        mean, logvar = graphed(x)
        mean.cpu(), logvar.cpu()

    eager_ms, graph_ms = measure(eager, replayed, runs)
    keep = choice == "on" or graph_ms < eager_ms
    backend.graphed = graphed if keep else None
    verdict = "replaying the graph" if keep else "eager (the graph was not faster)"
    return (f"cuda_graph {choice}: batch-1 encoder {eager_ms:.3f} ms eager, {graph_ms:.3f} ms replayed from a CUDA "
            f"graph ({runs} runs each): {verdict}")
