#!/bin/bash
# How results/minatar-5m-actor was made (issue 15: A2C at MinAtar's usual 5M steps, CoordConv in the actor
# placement): five games, conv and CoordConv, 3 seeds, one thread per run. Finished runs are reused and an
# unfinished one resumes from its last checkpoint, so running this again completes the set. Until then the
# report (rl/report.md) is an interim one, written from the finished runs by scripts/regenerate_reports.py (its
# seeds column counts them); this command rewrites it when every run is done. Made with `nice -n 19` beside other jobs on a 2-core machine.
set -eu
cd "$(dirname "$0")/../.."
coordconv reproduce rl --preset long --seeds 3 --coord-in actor --yes --jobs 1 --out results/minatar-5m-actor
