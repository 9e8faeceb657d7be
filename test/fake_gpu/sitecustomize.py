"""Imported at start-up by every Python process with this folder on PYTHONPATH (test_real_launch.py puts it
there for the Jetson case only). With VAE_ROS_FAKE_GPU set (e.g. "tensorrt,cuda"), onnxruntime is given the
fake GPU providers of fake_ort_gpu.py as soon as a process imports it; nothing else changes."""

import os
import sys

if os.environ.get("VAE_ROS_FAKE_GPU"):
    import importlib.abc
    import importlib.util

    class _FakeGpuOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != "onnxruntime":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                return spec
            real_exec = spec.loader.exec_module

            def exec_module(module):
                real_exec(module)
                from fake_ort_gpu import apply

                apply(module, os.environ["VAE_ROS_FAKE_GPU"])

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _FakeGpuOnImport())
