"""The bookkeeping of one training run, so that an experiment's ``main`` is its algorithm.

A :class:`Session` opens the run directory (new, resumed or finished), sets the threads and seeds, restores the
checkpoint, shows progress (a bar on a terminal, log lines elsewhere), saves checkpoints at the experiment's
cadence and writes the summary::

    session = Session.open(cfg, out, resume=resume, overwrite=overwrite, log=log, desc="...", total=cfg.epochs)
    if session.result is not None:           # a finished run, resumed: nothing to do
        return session.result
    with session:
        state = session.restore(model=model, optimizer=optimizer)
        while not done:
            ...                              # the algorithm
            session.advance(1, loss=loss)
            session.checkpoint({"model": model.state_dict(), ...})
        session.finish(summary)
    return session.outcome()

Under ``torchrun`` pass ``procs`` (:func:`~coordconv.repro.runtime.ranks.processes`): every process runs the
same code, rank 0 alone writes the run directory, logs and shows progress, every process restores the same
checkpoint, and all of them stop together.

For tests, the environment variable ``COORDCONV_STOP_AFTER_CHECKPOINTS=N`` makes a session stop after its N-th
checkpoint as an interruption would (the run then resumes with ``--resume``); nothing else reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from coordconv.repro.runtime.config import complete_config, to_dict
from coordconv.repro.runtime.files import RunError
from coordconv.repro.runtime.progress import Progress
from coordconv.repro.runtime.ranks import ALONE, Processes, barrier, broadcast
from coordconv.repro.runtime.rundir import Run, read_finished
from coordconv.repro.runtime.seeding import keep_freed_memory, seed_everything, set_threads

__all__ = ["STOP_AFTER_CHECKPOINTS", "Session", "resumed_line", "stop_after_checkpoints"]

STOP_AFTER_CHECKPOINTS = "COORDCONV_STOP_AFTER_CHECKPOINTS"


def stop_after_checkpoints() -> int:
    """The test hook's value: stop a run after this many checkpoints of this process (0: never)."""
    value = os.environ.get(STOP_AFTER_CHECKPOINTS, "")
    return int(value) if value.isdigit() else 0


def resumed_line(done: int, total: int, unit: str, *, checkpoint: bool = True) -> str:
    """What a resumed run says about where it goes on from.

    Example:
        >>> resumed_line(3, 10, "epoch")
        'resumed from its checkpoint: 3 of 10 epochs done, continuing with epoch 4'
        >>> resumed_line(0, 10, "epoch", checkpoint=False)
        'resuming found no checkpoint (the run stopped before its first): starting at epoch 1 of 10'
    """
    if not checkpoint:
        return f"resuming found no checkpoint (the run stopped before its first): starting at {unit} 1 of {total:,}"
    return f"resumed from its checkpoint: {done:,} of {total:,} {unit}s done, continuing with {unit} {done + 1:,}"


def _load(part: Any, state: Any) -> None:
    """Put ``state`` back into ``part`` (``load_state_dict``), or into each of a mapping's parts by name."""
    if isinstance(part, Mapping):
        for name, inner in part.items():
            _load(inner, state[name])
    else:
        part.load_state_dict(state)


class _Stop(Exception):
    """Raised after the checkpoint at which the test hook asks a session to stop."""


class Session:
    """One training run's directory, progress, log and checkpoints; see the module docstring.

    Create it with :meth:`open`. Attributes:
        run: the run directory (:class:`~coordconv.repro.runtime.rundir.Run`); in processes other than rank 0 it
            is only read (the checkpoint), never written.
        procs: the run's processes (one, unless under ``torchrun``).
        resumed: whether a checkpoint was restored.
        result: the summary once the run finished (or was found finished), ``{"interrupted": True, ...}`` when
            the test hook stopped it, else ``None``.
    """

    def __init__(
        self,
        run: Run,
        desc: str,
        total: int,
        log: Callable[[str], None] | None,
        every: float,
        unit: str = "epoch",
        resume: bool = False,
        procs: Processes = ALONE,
    ) -> None:
        self.run = run
        self.procs = procs
        self.desc = desc
        self.total = total
        self.unit = unit
        self.resumed = False
        self._resume = resume
        self.result: dict[str, Any] | None = None
        self._log = log
        self._every = every
        self._progress: Progress | None = None
        self._checkpoints = 0
        self._done = 0
        self._stop_after = stop_after_checkpoints()

    @classmethod
    def open(
        cls,
        cfg: Any,
        out: str | Path,
        *,
        desc: str,
        total: int,
        resume: bool = False,
        overwrite: bool = False,
        log: Callable[[str], None] | None = None,
        every: float = 10.0,
        unit: str = "epoch",
        procs: Processes = ALONE,
    ) -> Session:
        """Open ``out`` for the run of ``cfg``; set threads (``cfg.threads``) and seeds (``cfg.seed``).

        Args:
            cfg: the run's config (a dataclass with ``seed`` and ``threads`` fields).
            out: the run directory.
            desc: a short label for progress lines.
            total: the units of work the run does in all (epochs, steps), for the progress bar.
            resume: continue the run in ``out`` (a finished one is returned as it is, in ``result``).
            overwrite: replace a run already in ``out``.
            log: where progress lines go (default: a bar on a terminal, else standard error).
            every: seconds between log lines without a terminal.
            unit: what ``total`` counts, in the singular ("epoch", "step"), for the line a resumed run prints.
            procs: this process's place among the run's processes (rank 0 opens the directory; the others learn
                its outcome and raise the same error).

        Raises:
            RunError: see :meth:`Run.start`.
        """
        complete = partial(complete_config, type(cfg))
        if procs.world == 1:
            run = Run.start(out, to_dict(cfg), resume=resume, overwrite=overwrite, complete=complete)
        else:
            error = None
            if procs.main:
                try:
                    run = Run.start(out, to_dict(cfg), resume=resume, overwrite=overwrite, complete=complete)
                except RunError as e:
                    error = str(e)
            else:
                run = Run.start(out, to_dict(cfg), complete=complete, reader=True)
            error = broadcast(error, procs)
            if error is not None:
                raise RunError(error)
        session = cls(run, desc, total, log, every, unit, resume, procs)
        if resume and broadcast(run.finished, procs):
            session.result = read_finished(run.path).summary
            return session
        set_threads(cfg.threads)
        keep_freed_memory()
        seed_everything(cfg.seed)
        return session

    def restore(self, **parts: Any) -> dict[str, Any] | None:
        """The checkpoint's training state when resuming from one (``None`` without one), its parts put back.

        Each keyword names a part of the state and what it goes back into: an object with ``load_state_dict``
        (a model, an optimizer) or a mapping of them by name (``modules={"G": g, "D": d}`` for
        ``state["modules"]["G"]``, ...). The rest of the state (counters, histories) the caller reads from the
        returned dict. A state that does not fit raises :class:`RunError` naming the checkpoint.

        Example::

            state = session.restore(model=model, optimizer=optimizer)
            epoch = state["epoch"] if state else 0
        """
        state = self.run.load_checkpoint()
        if state is None:
            return None
        with self.run.restoring():
            for key, part in parts.items():
                _load(part, state[key])
        self.resumed = True
        return state

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files (rank 0, or the only process)."""
        return self.procs.main

    def __enter__(self) -> Session:
        if self._log is None and self.main:
            self._progress = Progress(self.total, self.desc, every=self._every)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        stopped = isinstance(exc, _Stop)
        if stopped:
            barrier(self.procs)
            self.emit(
                f"{self.desc}: stopped after {self._checkpoints} checkpoint(s) as asked, at {self.unit} "
                f"{self._done:,} of {self.total:,}; resume with --resume"
            )
            self.result = {"interrupted": True, "done": self._done}
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        return stopped

    # -- during the run ---------------------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        """A log line (through the bar on a terminal); rank 0's only."""
        if not self.main:
            return
        if self._log is not None:
            self._log(line)
        elif self._progress is not None:
            self._progress.write(line)
        else:
            print(line, flush=True)

    def advance(self, n: int = 1, **postfix: Any) -> None:
        """Count ``n`` units of work done and show ``postfix`` values beside the count."""
        self._done += n
        if self._progress is not None:
            self._progress.update(n, **postfix)

    def start_at(self, done: int) -> None:
        """Start the count at ``done`` units (a resumed run says where it goes on from)."""
        if self.resumed or self._resume:
            self.emit(f"{self.desc}: {resumed_line(done, self.total, self.unit, checkpoint=self.resumed)}")
        if self.run.environment_change:
            self.emit(
                f"{self.desc}: resumed in another environment ({self.run.environment_change}); config.json and "
                "the summary record both"
            )
        self.advance(done - self._done)

    def log(self, record: Mapping[str, Any]) -> None:
        """One evaluation into ``metrics.jsonl`` (rank 0 writes it)."""
        if self.main:
            self.run.log(record)

    def checkpoint(self, state: Mapping[str, Any], *, last: bool = False) -> None:
        """Save the training state; everything that decides whether the run is over belongs in ``state``.

        ``last``: this is the run's final checkpoint (the test hook does not stop a run that is done anyway).
        Rank 0 writes it; every process counts it, so all of them stop together under the test hook.
        """
        if self.main:
            self.run.save_checkpoint(state)
        self._checkpoints += 1
        if self._stop_after and self._checkpoints >= self._stop_after and not last:
            raise _Stop

    def outcome(self) -> dict[str, Any]:
        """What ``main`` returns after the ``with`` block: the summary, or the interruption marker."""
        if self.result is None:
            raise RuntimeError(f"{self.desc}: the session ended without a summary (call finish())")
        return self.result

    def finish(self, summary: Mapping[str, Any], model: Any = None) -> dict[str, Any]:
        """Save ``model``'s weights (when given) and the summary, which marks the run finished; return it.

        Rank 0 writes them (the other processes return ``summary`` as given), and no process returns before
        they are written.
        """
        if self.main:
            if model is not None:
                self.run.save_weights(model)
            self.result = self.run.finish(summary)
        else:
            self.result = dict(summary)
        barrier(self.procs)
        return self.result
