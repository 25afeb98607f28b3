"""Derive summary.md from the *.jsonl records in this folder: solved runs per variant and split."""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "V1": ("classification", "unit inputs, lr 0.01, batch 16, l2 0, 6 epochs, constant lr", "A"),
    "V2": ("classification", "unit, lr 0.01, batch 16, l2 0.001, 6 epochs, constant", "A"),
    "V3": ("classification", "unit, lr 0.01, batch 16, l2 0.001, 6 epochs, lr x0.1 after epoch 3", "A"),
    "V4": ("classification", "unit, lr 0.02, batch 32, l2 0.001, 8 epochs, lr x0.1 after epoch 4", "A"),
    "V5": ("classification", "unit, lr 0.01, batch 16, l2 0.001, 10 epochs, constant (stopped after 2 seeds)", "A"),
    "V6": ("classification", "unit, lr 0.01, batch 32, l2 0.001, 10 epochs, constant (stopped after 2 seeds)", "A"),
    "V7": ("classification", "unit, lr 0.01, batch 16, l2 0.001, 12 epochs, lr x0.1 after epoch 8", "A"),
    "V8": ("classification", "unit, lr 0.01, batch 16, l2 0.003, 10 epochs, constant", "A"),
    "V9": ("classification", "unit, lr 0.01, batch 16, l2 0.001, 20 epochs, lr x0.1 after epoch 16 (stopped after 4 seeds)", "A"),
    "V12": ("classification", "unit, lr 0.01, batch 16, l2 0.001, up to 30 epochs, constant, stop when solved (the quick preset)", "B"),
    "R1": ("regression", "batch 32, lr 0.01, l2 1e-5, up to 60 epochs, stop when solved", "B"),
    "R2": ("regression", "as R1 with one-hot scale 64 (stopped early)", "B"),
    "R3": ("regression", "batch 32, lr 0.003, l2 1e-5, up to 60 epochs, stop when solved", "B"),
}


def main() -> None:
    rows = [json.loads(line) for path in sorted(HERE.glob("*.jsonl")) for line in path.read_text().splitlines()]
    out = [
        "| variant | task | settings | split | seeds | ever solved | solved at the end | median steps to solved |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (task, text, era) in VARIANTS.items():
        for split in ("uniform", "quadrant"):
            group = list({r["seed"]: r for r in rows if r["name"] == name and r["split"] == split}.values())
            if not group:
                continue
            solved = [r for r in group if r["t"] is not None]
            if task == "classification":
                final = [r for r in group if r["test"] >= 1.0 and r["train"] >= 1.0]
            else:
                final = [r for r in group if r["test"] < 0.5 and r["train"] < 0.5]
            steps = statistics.median(r["steps"] for r in solved) if solved else "-"
            out.append(
                f"| {name} ({era}) | {task} | {text} | {split} | {len(group)} | {len(solved)} | {len(final)} | {steps} |"
            )
    (HERE / "summary.md").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
