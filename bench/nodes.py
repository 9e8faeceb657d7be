"""Node benchmark: `python bench/nodes.py [--model DIR] [--duration S]` (also `vae-ros bench nodes`).

A thin wrapper: the implementation is vae_ros.apps.benchmarks.nodes, so an installed `vae-ros` has it too.
"""

import sys

from vae_ros.apps.benchmarks.nodes import main

if __name__ == "__main__":
    sys.exit(main())
