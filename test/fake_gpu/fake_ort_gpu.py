"""onnxruntime-gpu on a machine without a GPU: the backend boundary faked, everything above it real.

apply(onnxruntime, "tensorrt,cuda") makes get_available_providers() offer the TensorRT and CUDA execution
providers; an InferenceSession asked for them runs on the CPU (the real session) but reports them as the
providers in use, as onnxruntime-gpu does. The TensorRT provider "builds" an engine file into
trt_engine_cache_path on its first session for a graph and "reuses" it afterwards, so that what vae_ros
asks for (FP16, which cache folder) can be checked. `started` lists providers that start; offered ones that
do not (a CUDA library missing) fall back to the CPU, as the real one does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider"}
SESSIONS: list[Any] = []  # every fake session made in this process, for in-process tests


def fakes(ort: Any, offered: str = "tensorrt,cuda", started: str | None = None) -> dict[str, Any]:
    """{"get_available_providers": ..., "InferenceSession": ...} to set on the onnxruntime module."""
    offered_names = [NAMES[name] for name in offered.split(",") if name]
    started_names = offered_names if started is None else [NAMES[name] for name in started.split(",") if name]
    real_available, real_session = ort.get_available_providers, ort.InferenceSession

    def get_available_providers() -> list[str]:
        return [*offered_names, *real_available()]

    class InferenceSession(real_session):  # type: ignore[misc, valid-type]
        def __init__(self, path: Any, sess_options: Any = None, providers: Any = None, **kwargs: Any) -> None:
            super().__init__(path, sess_options=sess_options, providers=["CPUExecutionProvider"], **kwargs)
            requested = list(providers or [])
            self.requested = requested
            names = [p[0] if isinstance(p, tuple) else p for p in requested]
            self.options = {p[0]: dict(p[1]) for p in requested if isinstance(p, tuple)}
            self._active = [n for n in names if n in started_names] + ["CPUExecutionProvider"]
            self.engine_built = None
            trt = self.options.get(NAMES["tensorrt"], {})
            if self._active[0] == NAMES["tensorrt"] and trt.get("trt_engine_cache_enable"):
                graph = path if isinstance(path, bytes) else Path(str(path)).read_bytes()
                # Named by the graph's hash, as ONNX Runtime names its cached engines.
                engine = Path(trt["trt_engine_cache_path"]) / f"fake_{hashlib.sha256(graph).hexdigest()[:16]}.engine"
                self.engine_built = not engine.exists()
                if self.engine_built:
                    engine.write_bytes(b"fake TensorRT engine")
            SESSIONS.append(self)

        def get_providers(self) -> list[str]:
            return list(self._active)

    return {"get_available_providers": get_available_providers, "InferenceSession": InferenceSession}


def apply(ort: Any, offered: str = "tensorrt,cuda") -> None:
    for name, value in fakes(ort, offered).items():
        setattr(ort, name, value)
