"""vae_ros.core.blas.limit_blas_threads: one BLAS thread for world_model_node's planner, unless the user chose.
Each case runs in its own Python process: the limit is process-wide, and OpenBLAS reads the variables at load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vae_ros.core.blas import BLAS_THREAD_VARIABLES

_CHILD = """
import json
import numpy  # its BLAS loaded, as in a node
import threadpoolctl
from vae_ros.core.blas import limit_blas_threads
said = limit_blas_threads(1)
print(json.dumps({"said": said, "threads": [i["num_threads"] for i in threadpoolctl.threadpool_info()
                                            if i["user_api"] == "blas"]}))
"""


def _run(**variables: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    env.update(variables)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_numpys_blas_runs_one_thread() -> None:
    result = _run()
    assert result["said"] == "1 BLAS thread"
    assert result["threads"] and all(n == 1 for n in result["threads"]), result


@pytest.mark.parametrize("variable", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"])
def test_a_thread_count_the_user_chose_is_left_as_set(variable: str) -> None:
    result = _run(**{variable: "2"})
    assert result["said"] == f"BLAS threads as {variable} sets them"
    assert result["threads"] == [2], result
