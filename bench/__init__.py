"""Runnable benchmark wrappers; the code lives in vae_ros.apps.benchmarks so an installed `vae-ros bench` has it."""
