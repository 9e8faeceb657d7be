#!/usr/bin/env bash
# Rebuilds the packaged default models (models/*_default) from simulator data, with fixed seeds.
#   make models            (or: bash scripts/make_models.sh [OUT_DIR] [SECONDS])
# Data: `vae-ros collect` drives the MuJoCo robot in sim_node's default world (seed 0): policy seed 1 for training, policy seed 2 from another start held out.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models}
SECONDS_SIM=${2:-600}
VAE="${VAE_ROS:-.venv/bin/vae-ros}"
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
  $VAE export --model "$OUT/$name" --format onnx
  $VAE export --model "$OUT/$name" --format int8 --bag "$WORK/train" --topic "$topic"
  $VAE eval --model "$OUT/$name" --bag "$WORK/heldout" --topic "$topic" --out "$OUT/$name/eval"
  rm -rf "$OUT/$name/checkpoint"   # optimiser state: only needed to resume, not to ship
  # The held-out figures go into model.json beside the training summary.
  .venv/bin/python - "$OUT/$name" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
cfg = json.loads((d / "model.json").read_text())
metrics = json.loads((d / "eval" / "metrics.json").read_text())
cfg["training"]["heldout_eval"] = {"source": "vae-ros collect --seed 0 --policy-seed 2 (120 s, other start)",
                                   "metrics": {k: v for k, v in metrics["metrics"].items() if not isinstance(v, list)}}
(d / "model.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
PY
}
train image_default camera/image_raw --epochs 30 --image-size 64
train scan_default scan --epochs 40 --obs-std 0.03
train pointcloud_default lidar/points --epochs 30
du -sh "$OUT"/*_default
