#!/usr/bin/env bash
# Rebuilds every packaged model (models/*_default, the control model and its world model) from simulator
# data, with fixed seeds.
#   make models            (or: bash scripts/make_models.sh [OUT_DIR] [SECONDS])
# Data: `vae-ros collect` drives the MuJoCo robot in sim_node's default world (seed 0): policy seed 1 for training, policy seed 2 from another start held out.
# models/ holds only what the nodes load (test/test_packaged_models.py keeps it under about 10 MB): the
# perception defaults store float16 weights (exported after rounding, so torch and ONNX agree), and the plots
# and evaluation reports go to DOCS (docs/models/<name>/ for OUT=models, else OUT/docs/<name>/).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models}
SECONDS_SIM=${2:-600}
if [ -z "${DOCS:-}" ]; then
  if [ "$OUT" = models ]; then DOCS=docs/models; else DOCS="$OUT/docs"; fi
fi
export DOCS
VAE="${VAE_ROS:-.venv/bin/vae-ros}"
PY="${PYTHON:-.venv/bin/python}"
WORK=$(mktemp -d /tmp/vae_ros_models.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export MUJOCO_GL=${MUJOCO_GL:-egl}

$VAE collect --out "$WORK/train" --duration "$SECONDS_SIM" --seed 0 --policy-seed 1 --lidar both --quiet
$VAE collect --out "$WORK/heldout" --duration 120 --seed 0 --policy-seed 2 --lidar both --initial-pose 1.0 -1.0 1.57 --quiet

# Small architectures keep models/ to a few MB (weights + ONNX exports).
train() {  # name topic extra-args...
  local name=$1 topic=$2; shift 2
  $VAE train --bag "$WORK/train" --topic "$topic" --out "$OUT/$name" --force --seed 0 \
    --arch-channels 16,32,64,128 --latent-dim 16 "$@"
  rm -rf "$OUT/$name/checkpoint"   # optimiser state: only needed to resume, not to ship
  # float16 weights: half the bytes; the latent means move by about 0.2 % of their spread (README).
  $PY -c 'import sys; from vae_ros.core.model_dir import store_weights_float16 as f; f(sys.argv[1])' "$OUT/$name"
  $VAE export --model "$OUT/$name" --format onnx
  $VAE export --model "$OUT/$name" --format int8 --bag "$WORK/train" --topic "$topic"
  mkdir -p "$DOCS/$name"
  mv "$OUT/$name/training_curves.png" "$DOCS/$name/"
  $VAE eval --model "$OUT/$name" --bag "$WORK/heldout" --topic "$topic" --out "$DOCS/$name/eval"
  # The held-out figures go into model.json beside the training summary.
  $PY - "$OUT/$name" "$DOCS/$name/eval" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
cfg = json.loads((d / "model.json").read_text())
metrics = json.loads((Path(sys.argv[2]) / "metrics.json").read_text())
cfg["training"]["heldout_eval"] = {"source": "vae-ros collect --seed 0 --policy-seed 2 (120 s, other start)",
                                   "metrics": {k: v for k, v in metrics["metrics"].items() if not isinstance(v, list)}}
(d / "model.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
PY
}
train image_default camera/image_raw --epochs 30 --image-size 64
train scan_default scan --epochs 40 --obs-std 0.03
train pointcloud_default lidar/points --epochs 30

# The control-fit defaults: the control model (float32: its servo head, calibrated tolerance and world model
# were fitted to its exact latents) and its world model.
bash scripts/make_control_model.sh "$OUT/control_default"
bash scripts/make_dynamics_model.sh "$OUT/control_default/dynamics"
du -sh "$OUT"/*_default
du -sb "$OUT"
