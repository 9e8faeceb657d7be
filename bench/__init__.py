"""Runnable benchmark wrappers; the code lives in vae_ros.benchmarks so an installed `vae-ros bench` has it."""
