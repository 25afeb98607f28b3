"""Where is the lit pixel? A 1x1 conv cannot say, a 1x1 CoordConv can: a whole experiment in one module."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from coordconv import CoordConv2d
from coordconv.repro.report.runs import load_finished, mean_sd
from coordconv.repro.runtime.config import to_dict
from coordconv.repro.runtime.files import write_atomic
from coordconv.repro.runtime.session import Session


@dataclass(frozen=True)
class Config:
    model: Literal["conv", "coordconv"] = "coordconv"
    """A plain 1x1 convolution or a 1x1 CoordConv."""
    seed: int = 0
    """Seed of the weights and the data."""
    steps: int = 300
    """Training steps."""
    threads: int = 1
    """torch CPU threads."""


PRESETS = ("smoke", "quick")


def preset(name: str, **fields: Any) -> Config:
    return Config(**{"steps": 30 if name == "smoke" else 300, **fields})


def main(cfg: Config, out: Path, *, resume: bool = False, overwrite: bool = False, log: Any = None) -> dict:
    session = Session.open(
        cfg, out, desc=f"pixel {cfg.model}", total=cfg.steps, resume=resume, overwrite=overwrite, log=log
    )
    if session.result is not None:
        return session.result
    layer = (CoordConv2d if cfg.model == "coordconv" else torch.nn.Conv2d)(1, 2, 1)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    with session:
        for _ in range(cfg.steps):
            where = torch.randint(64, (32,))
            image = torch.nn.functional.one_hot(where, 64).float().view(32, 1, 8, 8)
            target = torch.stack([where // 8, where % 8], 1) / 3.5 - 1  # (row, column) in [-1, 1]
            loss = ((layer(image) * image).sum((2, 3)) - target).square().mean()  # the output at the lit pixel
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            session.advance(1, loss=loss.item())
        session.finish({"model": cfg.model, "seed": cfg.seed, "loss": loss.item(), "config": to_dict(cfg)}, layer)
    return session.outcome()


def describe(s: dict) -> str:
    return f"pixel {s['model']} seed {s['seed']}: final loss {s['loss']:.4f}"


def plan(preset_name: str, seeds: range, *, task: str) -> list[tuple[str, Config]]:
    return [(f"{task}/{m}-seed{s}", preset(preset_name, model=m, seed=s)) for m in ("conv", "coordconv") for s in seeds]


def report(out: Path, task: str) -> Path:
    runs = load_finished(out / task, "*/summary.json")
    rows = [
        f"| {m} | {mean_sd([r.summary['loss'] for r in runs if r.summary['model'] == m], 4)} |"
        for m in ("conv", "coordconv")
    ]
    write_atomic(out / task / "report.md", "\n".join(["| model | final loss |", "|---|---|", *rows]) + "\n")
    return out / task / "report.md"
