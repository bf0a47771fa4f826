#!/usr/bin/env bash
# Builds mnistlab/assets/evaluator-<version>.safetensors (argument, default v2) with v1's recipe: the fixed CNN whose features and predictions score
# generated digits (FCD, Inception Score, mode coverage). Preset `best` as it was when v1 was made (global
# pooling, dense 128, dropout 0.1, ±10° rotation, 12 epochs: pinned below, as the preset has moved on),
# without label smoothing (so its probabilities stay sharp for the confident share), all training digits
# (no validation split), seed 0, deterministic kernels, fp32. v1 was trained on mnist-sample's 4,000 digits;
# v2 on full MNIST's 60,000 (DATASET=mnist, the default now). The recipe
# is v1's, but the training code has changed since v1 was made (fused AdamW among others), so a rebuild
# is an equivalent evaluator, not v1 bit for bit: ship it as a new version (evaluator-v2) and its FCDs
# are not comparable with v1's.
set -euo pipefail
target=mnistlab/assets/evaluator-${1:-v2}.safetensors
[[ -e $target ]] && { echo "$target exists: evaluators are never overwritten, pick a new version" >&2; exit 2; }
out=$(mktemp -d)/evaluator
dataset=${DATASET:-mnist}
mnistlab train cnn --preset best --dataset "$dataset" --seed 0 --deterministic --precision fp32 \
  --set global_pool=true --set fc=128 --set dropout=0.1 --set augment_rotate=10 --epochs 12 \
  --set val_size=0 --set label_smoothing=0 --out "$out" --no-progress
cp "$out/checkpoint.safetensors" "$target"
mnistlab evaluate cnn "$target" --dataset "$dataset"
