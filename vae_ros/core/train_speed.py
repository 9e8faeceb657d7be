"""What keeps a GPU busy in training without changing what a step computes (issue 20, section 2).

- The decoded data set as one tensor, indexed per batch: on the GPU when it fits under DEVICE_CACHE_FRACTION of
  the free GPU memory, else in pinned host memory, copied without blocking (place_cached, cached_batches).
- Batches that still stream from disk reach a GPU through pinned memory (pin_memory in the DataLoader).
- Precision: 'fp32', or 'bf16' (bfloat16 autocast of the forward pass; losses and optimiser stay float32).
- channels_last for models with 2-D convolutions, and torch.compile (off by default).

Shared by vae_ros.core.train, vae_ros.control.training.dynamics and `vae-ros bench train`, so the three name and
do these the same way. Nothing here reads a device tensor back to the host. Importing this module does not import
torch (the CLI's parsers read PRECISIONS from it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vae_ros.core.errors import BackendUnavailableError, ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI takes PRECISIONS from here at start-up
    import torch

LOG = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
PRECISION_HELP = "fp32, or bf16: bfloat16 autocast of the forward pass (losses and optimiser stay float32) (fp32)"
# Share of the GPU's free memory (when the cache is placed) that the cached data set may take; the rest is
# left to the model, its activations and the optimiser.
DEVICE_CACHE_FRACTION = 0.5


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's context: bf16 autocast on the device's type, or nothing for fp32."""
    import torch

    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def has_conv2d(model: torch.nn.Module) -> bool:
    import torch

    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def channels_last_applies(model: torch.nn.Module, channels_last: bool) -> bool:
    """Whether channels_last is asked for and means something for this model (2-D convolutions); one log line
    when it is asked for and does not (a scan model's 1-D convolutions have no channels_last layout)."""
    if not channels_last:
        return False
    if not has_conv2d(model):
        LOG.warning("--channels-last has no effect on a model without 2-D convolutions; ignored")
        return False
    return True


def as_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch in the layout the model was put in: (B, C, H, W) channels_last when asked for."""
    import torch

    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def compile_module(module: torch.nn.Module) -> torch.nn.Module:
    """torch.compile(module); BackendUnavailableError with one line when this torch cannot compile at all."""
    import torch

    if not hasattr(torch, "compile"):
        raise BackendUnavailableError(f"--compile needs torch.compile (torch >= 2.0), this is {torch.__version__}")
    try:
        return torch.compile(module)  # type: ignore[return-value]
    except RuntimeError as err:  # e.g. an unsupported Python version
        raise BackendUnavailableError(f"torch.compile is not available here: {_first_line(err)}; drop --compile") \
            from err


def is_compile_failure(err: BaseException) -> bool:
    """An error raised by torch.compile's compiler (dynamo, inductor, a missing C++ toolchain or Triton)."""
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:  # pragma: no cover - torch without dynamo
        return False
    return isinstance(err, TorchDynamoException)


def compile_error(err: BaseException) -> BackendUnavailableError:
    return BackendUnavailableError(f"torch.compile failed here ({type(err).__name__}: {_first_line(err)}); "
                                   "train without --compile (the C++ compiler or Triton it needs may be missing)")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


# -- data -----------------------------------------------------------------------------------------------------
def stack_samples(samples: Sequence[np.ndarray]) -> torch.Tensor:
    """Decoded samples (each config.input_shape) as one float32 tensor (N, *input_shape), in their order."""
    import torch

    return torch.from_numpy(np.stack(samples))


def place_cached(cache: torch.Tensor, device: torch.device, fraction: float = DEVICE_CACHE_FRACTION) -> torch.Tensor:
    """Where a cached data set lives while training on device: the device itself when it is a GPU and the
    tensor takes at most `fraction` of its free memory, else pinned host memory (a GPU) or as it is (a CPU)."""
    import torch

    if device.type != "cuda":
        return cache
    free, _total = torch.cuda.mem_get_info(device)
    size = cache.numel() * cache.element_size()
    if size <= fraction * free:
        return cache.to(device)
    LOG.info("the cached data (%.0f MB) exceeds %.0f%% of the GPU's free memory (%.0f MB): kept in pinned host "
             "memory", size / 2**20, fraction * 100, free / 2**20)
    return cache.pin_memory()


def cached_batches(cache: torch.Tensor, order: np.ndarray | Sequence[int], batch_size: int,
                   device: torch.device) -> Iterator[torch.Tensor]:
    """Batches (B, *input_shape) on device, taken from `cache` in `order` in consecutive groups of batch_size
    (the last may be smaller), as a DataLoader over the same samples in the same order batches them.

    The order goes to the cache's device once; a batch is one index_select there. From pinned host memory each
    batch is gathered into a fresh pinned buffer (the caching host allocator keeps it alive until its copy is
    done) and copied without blocking.
    """
    import torch

    index = torch.as_tensor(np.asarray(order, dtype=np.int64))
    if cache.device.type != "cpu":
        index = index.to(cache.device, non_blocking=False)
    host_to_gpu = cache.device.type == "cpu" and device.type == "cuda"
    for start in range(0, index.shape[0], batch_size):
        rows = index[start:start + batch_size]
        if host_to_gpu:
            staging = torch.empty((rows.shape[0], *cache.shape[1:]), dtype=cache.dtype, pin_memory=True)
            torch.index_select(cache, 0, rows, out=staging)
            yield staging.to(device, non_blocking=True)
        else:
            yield cache.index_select(0, rows)  # (B, *input_shape), where cache lives (device, or the CPU)
