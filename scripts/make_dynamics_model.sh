#!/usr/bin/env bash
# Rebuilds the packaged world model of the control model (models/control_default/dynamics): a PETS ensemble
# trained on the control model's latents of `collect --policy drive` data (turns in place, straight runs and
# arcs, forwards and backwards: the moves the planner makes), 8 training worlds x 600 s, held-out worlds 0/1.
#   bash scripts/make_dynamics_model.sh [OUT_DIR] [STEPS]     (part of `make models`)
# The control model is OUT_DIR's parent. Its evaluation (evaluation.md/.json, error_vs_horizon.png) goes to
# DOCS/<model name>/dynamics (docs/models/control_default/dynamics by default), not into models/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/control_default/dynamics}
STEPS=${2:-6000}
MODEL=$(dirname "$OUT")
REPORT=${DOCS:-docs/models}/$(basename "$MODEL")/dynamics
VAE="${VAE_ROS:-.venv/bin/vae-ros}"
WORK=$(mktemp -d /tmp/vae_ros_dynamics.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export MUJOCO_GL=${MUJOCO_GL:-egl}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

bags=()
for seed in 2 3 4 5 6 7 8 9; do
  $VAE collect --policy drive --lidar scan --no-camera --seed "$seed" --duration 600 --out "$WORK/train$seed" --quiet
  bags+=(--bag "$WORK/train$seed")
done
for seed in 0 1; do
  $VAE collect --policy drive --lidar scan --no-camera --seed "$seed" --duration 300 --out "$WORK/test$seed" --quiet
done
$VAE train-dynamics --model "$MODEL" "${bags[@]}" --test-bag "$WORK/test0" --test-bag "$WORK/test1" \
  --out "$WORK/dynamics" --steps "$STEPS" --quiet
mkdir -p "$OUT" "$REPORT"
# Only what the planner loads: the package stays small. The evaluation summary goes to the docs.
cp "$WORK"/dynamics/{dynamics.json,weights.safetensors,dynamics.onnx} "$OUT"/
cp "$WORK"/dynamics/{evaluation.md,evaluation.json,error_vs_horizon.png} "$REPORT"/
du -sh "$OUT"
