"""One BLAS thread for a process whose matrix products are small and many: world_model_node's NumPy rollouts.

NumPy's OpenBLAS starts one thread per core. For the planner's small batched products (150 candidates x 16-D
latents, 5 members, 30 steps) the extra threads only spin, and on a robot's few cores they spin against the
simulator, the encoders and the controller itself. Measured with `python bench/plan_time.py --episodes 2
--busy 0` on a 2-core machine busy with a test run: plan p50 190 ms with OpenBLAS's default threads, 102 ms
with one (p90 252 vs 176 ms).
"""

from __future__ import annotations

import os

# Variables by which the user already chose BLAS threads for the process (then they are left as set).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def limit_blas_threads(threads: int = 1) -> str:
    """Limit the BLAS library NumPy loaded (OpenBLAS, MKL, BLIS) to `threads` for this whole process, with
    threadpoolctl, unless the environment already sets a BLAS thread variable. Returns what was done, for a
    node's start-up line: "1 BLAS thread", "BLAS threads as OPENBLAS_NUM_THREADS sets them", or why not."""
    chosen = [name for name in BLAS_THREAD_VARIABLES if os.environ.get(name)]
    if chosen:
        return f"BLAS threads as {chosen[0]} sets them"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "BLAS threads unlimited (threadpoolctl is not installed; or set OPENBLAS_NUM_THREADS=1)"
    import numpy  # noqa: F401 - its BLAS must be loaded for threadpoolctl to find it

    threadpool_limits(limits=threads, user_api="blas")
    return f"{threads} BLAS thread{'s' if threads != 1 else ''}"
