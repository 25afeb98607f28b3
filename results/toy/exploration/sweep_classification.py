import sys, json, torch
from coordconv.repro.experiments import toy
name = sys.argv[1]; overrides = json.loads(sys.argv[2]); seeds = range(int(sys.argv[3]), int(sys.argv[4]))
split = overrides.pop("split", "quadrant")
torch.set_num_threads(1)
for seed in seeds:
    cfg = toy.preset("quick", "classification", "coordconv", split, seed=seed, eval_every=25, eval_batch_size=128, threads=int(__import__("os").environ.get("THREADS", "1")), **overrides)
    s = toy.main(cfg, f"/tmp/sweep/{name}/{split}-{seed}", overwrite=True, log=lambda l: None)
    print(json.dumps({"name": name, "split": split, "seed": seed, "test": s["test"]["accuracy"], "train": s["train"]["accuracy"], "t": s["seconds_to_target"], "steps": s["steps_to_target"], "best": s["best_test"]}), flush=True)
