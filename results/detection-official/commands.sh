#!/bin/bash
# Detection in the official target mode (issue 26, section 3): the whole box of every digit with ink in the crop
# (70% of the boxes reach past the border), proposals and detections not clipped to the image, anchors centred as
# the official code centres them (8 to 56 px; the clipped variant's are torchvision's 0 to 48). Conv and CoordConv,
# 3 seeds each, the paper preset's 20 epochs (as results/detection-20ep, the clipped variant, so the two folders
# compare directly), one thread per run; the report gives the proposal IoU (the paper's metric), mAP@0.5 and mAP
# with the Welch interval and verdict. All six runs are done: made with this command over several sessions (runs stopped by
# a session's end resumed from their checkpoints), one thread each, beside other jobs on the 2 cores (their training
# seconds, 4,150 to 11,200 s, carry that load); each config.json records the command as run.
#
# Finished runs are reused and an unfinished one resumes from its last checkpoint, so the same command continues.
set -eu
cd "$(dirname "$0")/../.."
coordconv reproduce detection --preset paper --seeds 3 --yes --jobs 1 --out results/detection-official
