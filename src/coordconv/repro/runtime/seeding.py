"""Process setup before a run: seeding (one call before anything random happens) and torch's thread count."""

from __future__ import annotations

import os
import random

import torch

__all__ = ["seed_everything", "set_threads"]


def seed_everything(seed: int, *, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy (if installed) and torch; return a fresh ``torch.Generator`` seeded with ``seed``.

    Args:
        seed: the seed.
        deterministic: also ask torch for deterministic algorithms (slower on some GPU kernels).
    """
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        np.random.seed(seed % 2**32)  # noqa: NPY002 - code that uses the global NumPy stream
    if deterministic:
        torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


def set_threads(threads: int) -> None:
    """Use ``threads`` torch CPU threads (0: keep torch's default).

    Checked here, on the machine that runs, rather than in the config: a sweep builds its trials' configs on the
    machine that drives a cluster, which may have fewer CPUs than the ones that train.

    Raises:
        ValueError: ``threads`` is negative or more than this machine's CPUs (thousands of threads crash torch).
    """
    cpus = os.cpu_count() or 1
    if not 0 <= threads <= cpus:
        raise ValueError(f"invalid threads: {threads}; expected 0 (torch's default) to {cpus}, this machine's CPUs")
    if threads:
        torch.set_num_threads(threads)
