"""The world model's plan() with its candidates scored in NumPy, in torch on the CPU and on CUDA, medians and ratios
to NumPy in one run: `python bench/plan_device.py [--devices numpy,torch-rollouts,torch-cpu,cuda] [--json PATH]`.

A thin wrapper: the implementation is vae_ros.apps.benchmarks.plan_device (scripts/gpu_check.py runs it too).
"""

import sys

from vae_ros.apps.benchmarks.plan_device import main

if __name__ == "__main__":
    sys.exit(main())
