# The ablation runs of README "Differences from the paper"; run from the repository root.
set -e
cd "$(dirname "$0")/../../.."
C=coordconv
A=results/toy/ablations
for split in uniform quadrant; do for seed in 0 1; do
$C train regression --model coordconv --split $split --seed $seed --preset quick --batch-size 256 --out $A/regression-bs256-$split-seed$seed
done; done
$C train rendering --model coordconv --split quadrant --seed 0 --preset quick --no-interm-loss --epochs 10 --out $A/rendering-no-interm-loss-quadrant-seed0
python scripts/summarize_runs.py $A --out $A/table.md
