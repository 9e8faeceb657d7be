"""What people run: the demo, the in-process servo session it drives, the `vae-ros` CLI and the benchmarks.
"""
