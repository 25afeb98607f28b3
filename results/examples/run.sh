#!/usr/bin/env bash
# Run the examples whose output the documentation shows and write it to results/examples/*.md.
# Usage: bash results/examples/run.sh   (from any folder; uses `python` from PATH)
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-python}"
record() {  # record NAME ARGS...: run examples/NAME.py with ARGS, write results/examples/NAME.md
  local name="$1"; shift
  local out
  out="$(OMP_NUM_THREADS=1 "$python" "examples/$name.py" "$@")"
  printf 'Command: `python examples/%s.py%s` (one thread)\n\n```text\n%s\n```\n' "$name" "${*:+ $*}" "$out" \
    > "results/examples/$name.md.tmp"
  mv "results/examples/$name.md.tmp" "results/examples/$name.md"
}
record unet_keypoints
record retrofit_resnet --steps 150
record solo_masks
