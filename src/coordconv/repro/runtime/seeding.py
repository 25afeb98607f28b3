"""Seeding: one call before anything random happens."""

from __future__ import annotations

import random

import torch

__all__ = ["seed_everything"]


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
