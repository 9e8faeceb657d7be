"""Benchmarks behind `vae-ros bench`, inside the package so an installed `vae-ros` can run them.

models.py times the encoder in every inference backend available here; the repository's bench/ folder
holds thin runnable wrappers (python bench/models.py).
"""
