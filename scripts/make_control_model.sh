#!/usr/bin/env bash
# Rebuilds the packaged control model (models/control_default): a LaserScan VAE whose latent distance
# follows SE(2) pose distance, with the servo's relative-pose head, from `collect --policy cover` data.
#   bash scripts/make_control_model.sh [OUT_DIR] [STEPS]     (part of `make models`)
# training_curves.png goes to DOCS/<name> (docs/models/control_default by default): models/ keeps only what
# the nodes load. The weights stay float32: the servo head and calibrated tolerance fit their exact latents.
# Training worlds: seeds 2-21 (20 object layouts; LAST_SEED=N for more). Seeds 0 and 1 are held out: never used for training,
# they are where `vae-ros eval-control` and the demo (seed 0, sim_node's default world) run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/control_default}
STEPS=${2:-8000}
DOCS=${DOCS:-docs/models}
VAE="${VAE_ROS:-.venv/bin/vae-ros}"
WORK=$(mktemp -d /tmp/vae_ros_control.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export MUJOCO_GL=${MUJOCO_GL:-egl}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # a small model: one thread is fastest on a busy 2-core machine

bags=()
for seed in $(seq 2 "${LAST_SEED:-21}"); do
  # 250 s at 10 Hz = 2500 placements: 50 anchors x 50 poses within 1.3 m and +/-70 deg.
  $VAE collect --out "$WORK/world$seed" --duration 250 --seed "$seed" --policy cover --no-camera --quiet
  bags+=(--bag "$WORK/world$seed")
done
$VAE train "${bags[@]}" --topic scan --pose-topic odom --out "$OUT" --force --seed 0 \
  --arch-channels 16,32,64,128 --latent-dim 16 --obs-std 0.03 --steps "$STEPS" --lr 2e-3 --quiet
$VAE export --model "$OUT" --format onnx
mkdir -p "$DOCS/$(basename "$OUT")"
mv "$OUT/training_curves.png" "$DOCS/$(basename "$OUT")/"
du -sh "$OUT"
