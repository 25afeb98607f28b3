#!/usr/bin/env bash
# Train the toy tasks' CoordConv models (quick preset, seed 0) and report how much their CoordConv layer uses
# the coordinates (`coordconv inspect`). Writes results/inspect/toy.md; run directories go to $1 (default
# runs/inspect). Usage: bash results/inspect/toy.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-runs/inspect}"
coordconv="${COORDCONV:-coordconv}"
{
  echo "Command: \`bash results/inspect/toy.sh\` (quick preset, seed 0, the model's first 256 test examples)"
  for run in classification:uniform classification:quadrant rendering:uniform regression:uniform regression:quadrant; do
    task="${run%%:*}" split="${run##*:}"
    "$coordconv" train "$task" --model coordconv --split "$split" --preset quick --out "$runs/$task-$split" \
      --overwrite >&2
    echo
    echo "**$task, $split split** ($(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"test {s['metric']} {s['test'][s['metric']]:.3f}\")" "$runs/$task-$split/summary.json")):"
    echo
    "$coordconv" inspect "$runs/$task-$split" --samples 256
  done
} > results/inspect/toy.md.tmp
mv results/inspect/toy.md.tmp results/inspect/toy.md
