#!/bin/bash
# A2C on Ms. Pac-Man, the paper's named Atari game (issue 26, section 4): a CPU-budget pilot of the paper's 10M-step
# setting. ALE/MsPacman-v5 through SB3's Atari wrappers (frame skip 4, 84x84 grey frames, 4 stacked), the Nature
# CNN with CoordConv as the first layer (shared actor-critic body), conv and CoordConv, 3 seeds, the quick preset's
# 1M agent steps each, one thread per run. Seed 0 of each model ran first (--seeds 1, on a free core beside one other
# job: 6,314 s for the two; rl/command.txt records that command), then this command trained seeds 1 and 2 of each,
# stopped by session ends and resumed.
#
# Duration: 300-395 agent steps/s on one core beside one other job (each run's summary.json), so ~45-55 min a run and
# ~5 h for the six one after the other; pin it to one core (taskset -c 1: the environment subprocesses inherit the
# pinning).
# Finished runs are reused and an unfinished one resumes from its last checkpoint (every 50,000 steps, with fresh
# environments), so the same command continues after an interruption.
set -eu
cd "$(dirname "$0")/../.."
coordconv reproduce rl --preset quick --games MsPacman --seeds 3 --yes --jobs 1 --out results/atari-pilot
