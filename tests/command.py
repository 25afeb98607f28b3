"""The ``coordconv`` command in a subprocess, as a user runs it, optionally with the runtime's test hook on."""

import os
import subprocess
import sys

from coordconv.repro.runtime.session import STOP_AFTER_CHECKPOINTS


def coordconv(*args, timeout=600, stop_after=0, env=None):
    """Run ``coordconv ARGS``; ``stop_after=N`` stops a training run after its N-th checkpoint (an interruption)."""
    env = {**os.environ, **(env or {})}
    if stop_after:
        env[STOP_AFTER_CHECKPOINTS] = str(stop_after)
    return subprocess.run(
        [sys.executable, "-m", "coordconv.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
