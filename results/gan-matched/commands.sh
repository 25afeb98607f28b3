#!/bin/bash
# How results/gan-matched was made (issue 26, section 2): the paper's pairing at CPU scale, the `matched` preset.
# The conv GAN is trained at the CoordConv GAN's width (1/8) and latent size (16), so both have the same
# discriminator and a 14x generator ratio (the paper's ~14x); otherwise it is the cpu preset (6,000 iterations,
# learning rates decaying over the second half, R1, the official initialisation). The CoordConv GAN's matched
# config is the cpu preset's, so its five committed runs (results/generative-cpu/gan/coordconv-seed*) were copied
# here unchanged. The conv runs were trained by the last line below with `--jobs 1 --threads 1`, beside other jobs
# on a 2-core machine (409 +- 7 s of training each). Finished runs are reused, so this script can be run again.
set -eu
cd "$(dirname "$0")/../.."
OUT=results/gan-matched
for s in 0 1 2 3 4; do
  [ -f "$OUT/gan/coordconv-seed$s/summary.json" ] || cp -r "results/generative-cpu/gan/coordconv-seed$s" "$OUT/gan/"
done
coordconv reproduce gan --preset matched --seeds 5 --out "$OUT"
