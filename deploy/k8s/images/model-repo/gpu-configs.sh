#!/bin/sh
# Writes <model>/configs/gpu.pbtxt for every model of the repository whose config.pbtxt has
# CPU instances: the same configuration with the instances on the GPU. Triton started with
# --model-config-name=gpu loads it (and config.pbtxt for models without one, the ensemble).
# model.py picks its precision by instance kind, so nothing else changes. POSIX sh: it runs
# in the busybox image build and in the tests.
set -eu
repository="${1:?usage: gpu-configs.sh MODEL_REPOSITORY}"
for config in "$repository"/*/config.pbtxt; do
  [ -f "$config" ] || continue
  if grep -q 'kind: KIND_CPU' "$config"; then
    model_dir="$(dirname "$config")"
    mkdir -p "$model_dir/configs"
    sed 's/kind: KIND_CPU/kind: KIND_GPU/' "$config" >"$model_dir/configs/gpu.pbtxt"
  fi
done
