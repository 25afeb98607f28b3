import sys, json, os, torch
from coordconv.repro.experiments import toy
name, task, model = sys.argv[1], sys.argv[2], sys.argv[3]
overrides = json.loads(sys.argv[4]); seeds = range(int(sys.argv[5]), int(sys.argv[6]))
split = overrides.pop("split", "quadrant")
threads = int(os.environ.get("THREADS", "1"))
torch.set_num_threads(threads)
for seed in seeds:
    cfg = toy.preset("quick", task, model, split, seed=seed, eval_batch_size=128, threads=threads, **overrides)
    s = toy.main(cfg, f"/tmp/sweep/{name}/{split}-{seed}", overwrite=True, log=lambda l: None)
    m = s["metric"]
    print(json.dumps({"name": name, "split": split, "seed": seed, "test": s["test"][m], "train": s["train"][m], "t": s["seconds_to_target"], "steps": s["steps_to_target"], "best": s["best_test"], "epochs": s["epochs"]}), flush=True)
