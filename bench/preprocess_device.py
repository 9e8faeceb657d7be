"""encoder_node's work per 640x480 frame with preprocessing on the CPU or on the model's torch device, against the
model alone: `python bench/preprocess_device.py [--device cuda] [--rounds N] [--json PATH]`.

A thin wrapper: the implementation is vae_ros.apps.benchmarks.preprocess_device (scripts/gpu_check.py runs it too).
"""

import sys

from vae_ros.apps.benchmarks.preprocess_device import main

if __name__ == "__main__":
    sys.exit(main())
