"""Process setup before a run: seeding (one call before anything random happens), torch's thread count, malloc."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import sys

import torch

__all__ = ["keep_freed_memory", "seed_everything", "set_threads"]


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


# Keep freed memory in the process: large tensors otherwise page-fault on every training step.
#
# glibc's malloc serves big blocks (tens of MB: activations, gradients) with fresh ``mmap`` calls and returns
# them on ``free``; every step then pays for mapping, zeroing and unmapping them. On the project's machines this
# doubled the step time of the toy models and made evaluation three times slower (measured with
# ``MALLOC_MMAP_THRESHOLD_``: 27 s of system time for 10 s of work, against 0.5 s). Raising the mmap and trim
# thresholds keeps freed blocks for reuse, as jemalloc or tcmalloc do, which PyTorch's CPU tuning guide
# recommends. This affects only the process that calls it (the experiments' runs), never the library.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGE = 1 << 30  # the largest value glibc accepts for the mmap threshold is half the address space; 1 GiB is enough


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse; return whether it was applied (Linux with glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _LARGE)) and bool(mallopt(_M_TRIM_THRESHOLD, _LARGE))
