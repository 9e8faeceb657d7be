"""Pruning fraction against speed and quality (`vae-ros bench prune`); see vae_ros/apps/benchmarks/prune.py."""

import sys

from vae_ros.apps.benchmarks.prune import main

if __name__ == "__main__":
    sys.exit(main())
