#!/bin/bash
# How results/detection-20ep was made (issue 15: detection trained until the proposal IoU plateaus): the paper
# preset's 20 epochs on the CPU, 5 seeds per model, seed by seed, one thread per run. Finished runs are reused and
# an unfinished one resumes from its last checkpoint, so running this again completes the set. Made with
# `nice -n 19` beside other jobs on a 2-core machine (training seconds are wall time, so they carry that load).
set -eu
cd "$(dirname "$0")/../.."
coordconv reproduce detection --preset paper --seeds 5 --yes --out results/detection-20ep
