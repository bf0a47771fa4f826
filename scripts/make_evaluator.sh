#!/usr/bin/env bash
# Rebuilds mnistlab/assets/evaluator-v1.safetensors: the fixed CNN whose features and predictions score
# generated digits (FCD, Inception Score, mode coverage). Preset `best` without label smoothing (so its
# probabilities stay sharp for the confident share), all 4,000 mnist-sample training
# digits (no validation split), seed 0, deterministic kernels, fp32. Bump the file's version when changing it.
set -euo pipefail
out=$(mktemp -d)/evaluator
mnistlab train cnn --preset best --dataset mnist-sample --seed 0 --deterministic --precision fp32 \
  --set val_size=0 --set label_smoothing=0 --out "$out" --no-progress
cp "$out/checkpoint.safetensors" mnistlab/assets/evaluator-v1.safetensors
mnistlab evaluate cnn mnistlab/assets/evaluator-v1.safetensors --dataset mnist-sample
