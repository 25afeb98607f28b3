#!/bin/bash
# How results/generative-cpu/gan was made: the cpu preset, 5 seeds per model, two one-thread runs at a time
# (nice -n 5, beside other jobs on a 2-core machine), then the report. The preset changed at commit 468ed26: the
# CoordConv GAN's z has 16 dimensions (the conv GAN's stays 256), see DIAGNOSIS.md, "The latent's size". The conv
# seeds 0-2 were made before that change with the same config as the preset gives now; CoordConv seeds 0 and 1 were
# first run as diagnosis runs (`--preset cpu --z-dim 16`, the config the preset now gives; their config.json keeps
# that command) and moved here. The CoordConv runs of the earlier preset (z of 256) are diagnosis/z256-cpu-*.
# Finished runs are skipped, unfinished ones resumed, so this script can be run again.
set -u
cd "$(dirname "$0")/../.."
OUT=results/generative-cpu
train() {  # model seed
  local dir=$OUT/gan/$1-seed$2
  [ -f "$dir/summary.json" ] && return
  OMP_NUM_THREADS=1 nice -n 5 coordconv train gan --preset cpu --model "$1" --seed "$2" --out "$dir" \
    $([ -f "$dir/config.json" ] && echo --resume)
}
{ train conv 0; train conv 1; train conv 2; train coordconv 3; train conv 3; } &
{ train coordconv 0; train coordconv 1; train coordconv 2; train coordconv 4; train conv 4; } &
wait
coordconv reproduce gan --preset cpu --seeds 5 --out "$OUT"
