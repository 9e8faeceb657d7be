"""Encoder latency and throughput of every inference backend: `python bench/models.py [--model DIR]`.

A thin wrapper: the implementation is vae_ros.apps.benchmarks.models, which `vae-ros bench models` runs too.
"""

import sys

from vae_ros.apps.benchmarks.models import main

if __name__ == "__main__":
    sys.exit(main())
