"""LiDAR rate–distortion, VAE latents against classic codecs: `python bench/compression.py [--messages N]`.

A thin wrapper: the implementation is vae_ros.apps.benchmarks.compression, which `vae-ros bench compression` runs too.
"""

import sys

from vae_ros.apps.benchmarks.compression import main

if __name__ == "__main__":
    sys.exit(main())
