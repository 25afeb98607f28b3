#!/bin/bash
# How results/minatar-5m-shared was made (issue 15: A2C at MinAtar's usual 5M steps, CoordConv in the shared
# placement): five games, conv and CoordConv, 3 seeds, one thread per run. Finished runs are reused and an
# unfinished one resumes from its last checkpoint. All 30 runs are finished and committed. Made with `nice -n 19`
# beside other jobs on a 2-core machine, so the steps per second in the report carry that load.
set -eu
cd "$(dirname "$0")/../.."
coordconv reproduce rl --preset long --seeds 3 --coord-in shared --yes --jobs 1 --out results/minatar-5m-shared
