"""The training step loop against a bare loop of the same model: `python bench/train.py [--device cuda] [--batch B]`.

A thin wrapper: the implementation is vae_ros.apps.benchmarks.train_loop, which `vae-ros bench train` runs too.
"""

import sys

from vae_ros.apps.benchmarks.train_loop import main

if __name__ == "__main__":
    sys.exit(main())
