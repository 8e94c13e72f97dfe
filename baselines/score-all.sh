#!/usr/bin/env bash
# Score every committed baseline and the references on their benchmarks, and submit them to
# the committed leaderboards: the commands behind every number in leaderboards/.
# Run from a checkout whose code is committed (a submission refuses uncommitted code):
#   baselines/score-all.sh [HUB]     # HUB: where the models are published (a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
hub=${1:-$(mktemp -d)}
for model in baselines/models/*/; do
  name=$(basename "$model")
  adbench push "$model" --repo "ad-bench/$name" --hub "$hub"
done
for benchmark in bandit darkroom darkroom-hard key-to-door watermaze; do
  for reference in random optimal source; do
    adbench evaluate --model "$reference" --benchmark "$benchmark" --hub "$hub" --submit
  done
done
for model in baselines/models/*/; do
  # The benchmark is the model's environment's (its config's env_name).
  adbench evaluate --model "ad-bench/$(basename "$model")" --hub "$hub" --submit
done
adbench leaderboard readme
adbench leaderboard verify --hub "$hub"
