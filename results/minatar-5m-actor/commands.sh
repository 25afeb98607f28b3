#!/bin/bash
# How results/minatar-5m-actor was made (issue 15: A2C at MinAtar's usual 5M steps, CoordConv in the actor
# placement): five games, conv and CoordConv, 3 seeds, one thread per run. Finished runs are reused and an
# unfinished one resumes from its last checkpoint. All 30 runs are finished and committed, so running this again
# reuses them and rewrites the report. Made with `nice -n 19` beside other jobs on a 2-core machine; to use both
# cores at the end, the last SpaceInvaders runs were trained by two processes split by seed (`--games
# MinAtar/SpaceInvaders --seeds 2` and `--first-seed 2 --seeds 1`, listed in rl/command.txt), then this command
# reused all 30 runs and wrote the report.
set -eu
cd "$(dirname "$0")/../.."
coordconv reproduce rl --preset long --seeds 3 --coord-in actor --yes --jobs 1 --out results/minatar-5m-actor
