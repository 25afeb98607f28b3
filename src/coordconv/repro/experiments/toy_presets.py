"""The coordinate tasks' settings as data: each preset's fields per (task, model), and the sweep grids.

:func:`coordconv.repro.experiments.toy.preset` reads ``PAPER``, ``QUICK`` and ``SMOKE`` (a preset's fields depend on
the task and the model: the official conv and CoordConv commands differ in every hyperparameter);
:mod:`coordconv.repro.sweep` expands ``GRIDS`` (grid name -> blocks of configurations crossed over their axes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GRIDS", "PAPER", "QUICK", "SMOKE", "Group"]

SPLITS: tuple[str, ...] = ("uniform", "quadrant")  #: the Not-so-Clevr splits

# Official settings (experiment_logs.sh and the README's example commands; PAPER.md sections 3-5): raw pixel
# inputs, the official budgets. The logged CoordConv rendering command cannot run as written (it names no loss
# and 1x1 painting filters); we use the README's filter size 3 and the official --interm_loss option, without
# which the softmax-sharpened painter does not train (measured: IOU 0 after 10 epochs).
PAPER: dict[tuple[str, str], dict[str, Any]] = {
    ("classification", "coordconv"): {"epochs": 100, "batch_size": 16, "lr": 0.005, "l2": 0.001},
    ("classification", "conv"): {
        "epochs": 1000, "batch_size": 16, "lr": 0.01, "l2": 0.001, "multiplier": 2, "filter_size": 3,
        "lr_step_every": 200,
    },
    ("rendering", "coordconv"): {"epochs": 50, "batch_size": 16, "lr": 0.005, "l2": 0.001, "interm_loss": True},
    ("rendering", "conv"): {
        "epochs": 1000, "batch_size": 16, "lr": 0.01, "l2": 0.001, "multiplier": 2, "filter_size": 3,
        "lr_step_every": 200,
    },
    ("regression", "coordconv"): {"epochs": 100, "batch_size": 256, "lr": 0.01, "l2": 1e-5},
    ("regression", "conv"): {"epochs": 100, "batch_size": 256, "lr": 0.001, "l2": 1e-4},
}  # fmt: skip
# Chosen by measurement on the project's 2-core CPU (README, "What made the quadrant split robust"): inputs scaled
# like the coordinate channels, the official L2 for classification, the official intermediate loss for
# rendering, batch 32 for the CoordConv regressor. Every run stops when solved (train and test at the target),
# as time-to-target benchmarks do; the conv baselines get budgets larger than the slowest CoordConv run needs
# and, as they are not expected to solve the task, are evaluated once per epoch rather than every few steps.
QUICK: dict[tuple[str, str], dict[str, Any]] = {
    ("classification", "coordconv"): {
        "input_scale": "unit", "epochs": 30, "batch_size": 16, "lr": 0.01, "l2": 0.001, "eval_every": 25,
        "stop_at_target": True,
    },
    ("classification", "conv"): {
        "input_scale": "unit", "epochs": 60, "batch_size": 32, "lr": 0.01, "l2": 0.001, "multiplier": 2,
        "stop_at_target": True,
    },
    ("rendering", "coordconv"): {
        "input_scale": "unit", "epochs": 20, "batch_size": 16, "lr": 0.005, "interm_loss": True, "eval_every": 50,
        "stop_at_target": True,
    },
    ("rendering", "conv"): {
        "input_scale": "unit", "epochs": 60, "batch_size": 32, "lr": 0.01, "l2": 0.001, "multiplier": 2,
        "stop_at_target": True,
    },
    ("regression", "coordconv"): {
        "epochs": 60, "batch_size": 32, "lr": 0.01, "l2": 1e-5, "eval_every": 25, "stop_at_target": True,
    },
    ("regression", "conv"): {
        "epochs": 100, "batch_size": 256, "lr": 0.001, "l2": 1e-4, "eval_every": 5, "stop_at_target": True,
    },
}  # fmt: skip
SMOKE: dict[tuple[str, str], dict[str, Any]] = {
    key: {
        **value, "epochs": 2, "batch_size": 32, "train_subset": 128, "test_subset": 64, "eval_every": 0,
        "stop_at_target": False,
    }
    for key, value in QUICK.items()
}  # fmt: skip


@dataclass(frozen=True)
class Group:
    """A block of a grid: one model on some splits, a preset, fixed overrides and the axes crossed."""

    model: str
    splits: tuple[str, ...]
    preset: str
    axes: Mapping[str, tuple[Any, ...]]
    fixed: Mapping[str, Any] = field(default_factory=dict)


# The grids of ``coordconv sweep``. ``paper``: the official ones (experiment_logs.sh; PAPER.md sections 3-5): 324
# deconv configurations per split on the paper preset (1,000 epochs, lr x0.1 every 200 epochs). Rendering crosses the
# same deconv grid; the official one also crosses it with an MSE loss, which we do not implement (324 rather than 648
# per split). Regression: the paper gives one CoordConv setting; we cross the conv regressors' grid for both models.
# ``quick``: a subset on the quick presets that finishes on 2 CPU cores in 60-90 minutes (classification: 36 deconv
# configurations per split at 20 epochs and the 6 CoordConv ones). ``smoke``: two tiny trials, for tests.
_DECONV_PAPER = {
    "lr": (0.001, 0.002, 0.005, 0.01, 0.02, 0.05),
    "l2": (0.0, 0.001, 0.01),
    "filter_size": (2, 3, 4),
    "multiplier": (1, 2, 3),
    "batch_size": (16, 32),
}
_DECONV_QUICK = {"lr": (0.002, 0.01, 0.05), "l2": (0.0, 0.001), "filter_size": (2, 3, 4), "multiplier": (1, 2)}
_REGRESSION_PAPER = {"lr": (0.0005, 0.001, 0.01), "l2": (1e-5, 1e-4, 5e-4)}


_SMOKE = (Group("coordconv", ("uniform",), "smoke", {"lr": (0.005, 0.01)}),)


GRIDS: dict[str, dict[str, tuple[Group, ...]]] = {
    "classification": {
        "smoke": _SMOKE,
        "quick": (
            Group("conv", SPLITS, "quick", _DECONV_QUICK, {"epochs": 20}),
            Group("coordconv", SPLITS, "quick", {"lr": (0.001, 0.005, 0.01), "l2": (0.0, 0.001)}),
        ),
        "paper": (
            Group("conv", SPLITS, "paper", _DECONV_PAPER),
            Group(
                "coordconv", SPLITS, "paper", {"lr": (0.001, 0.005, 0.01), "l2": (0.0, 0.001)},
                {"batch_size": 16, "epochs": 50},
            ),
        ),
    },
    "rendering": {
        "smoke": _SMOKE,
        "quick": (
            Group("conv", SPLITS, "quick", {"lr": (0.002, 0.01), "l2": (0.0, 0.001), "multiplier": (1, 2)},
                  {"epochs": 20}),
            Group("coordconv", SPLITS, "quick", {"lr": (0.001, 0.005), "l2": (0.0, 0.001)}),
        ),
        "paper": (
            Group("conv", SPLITS, "paper", _DECONV_PAPER),
            Group(
                "coordconv", SPLITS, "paper",
                {"lr": (0.001, 0.005), "l2": (0.0, 0.001), "multiplier": (1, 2)}, {"batch_size": 16, "epochs": 50},
            ),
        ),
    },
    "regression": {
        "smoke": _SMOKE,
        "quick": (
            Group("conv", SPLITS, "quick", {"lr": (0.001, 0.01), "l2": (1e-5, 1e-4)}, {"epochs": 50}),
            Group("coordconv", SPLITS, "quick", {"lr": (0.001, 0.01), "l2": (1e-5, 1e-4)}),
        ),
        "paper": (
            Group("conv", SPLITS, "paper", _REGRESSION_PAPER),
            Group("coordconv", SPLITS, "paper", _REGRESSION_PAPER),
        ),
    },
}  # fmt: skip
