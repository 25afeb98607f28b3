#!/bin/bash
# How results/generative-cpu/gan was made: the cpu preset, 5 seeds per model, two one-thread runs at a time
# (nice -n 5, beside other jobs on a 2-core machine), then the report. Finished runs are skipped, unfinished
# ones resumed, so this script can be run again to complete the set.
set -u
cd "$(dirname "$0")/../.."
OUT=results/generative-cpu
train() {  # model seed
  local dir=$OUT/gan/$1-seed$2
  [ -f "$dir/summary.json" ] && return
  OMP_NUM_THREADS=1 nice -n 5 coordconv train gan --preset cpu --model "$1" --seed "$2" --out "$dir" \
    $([ -f "$dir/config.json" ] && echo --resume)
}
{ train conv 0; train conv 1; train conv 2; train coordconv 4; } &
{ train coordconv 0; train coordconv 1; train coordconv 2; train coordconv 3; train conv 3; train conv 4; } &
wait
coordconv reproduce gan --preset cpu --seeds 5 --out "$OUT"
