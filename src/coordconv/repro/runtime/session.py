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

import contextlib
import datetime
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch import nn

from coordconv.repro.runtime.config import complete_config, to_dict
from coordconv.repro.runtime.files import RunError, atomic_path, json_text, write_atomic, write_json
from coordconv.repro.runtime.ranks import ALONE, Processes, barrier, broadcast
from coordconv.repro.runtime.rundir import (
    CHECKPOINT,
    CONFIG,
    ENVIRONMENT_KEYS,
    FILES_KEY,
    LOCK,
    METRICS,
    RUN_FILES,
    SELF_KEY,
    SUMMARY,
    WEIGHTS,
    _is_run_config,
    _prepare_dir,
    claim,
    config_changes,
    difference,
    environment,
    read_finished,
    record_files,
    release,
    summary_hash,
)
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
    """One run: its directory, progress, log and checkpoints; see the module docstring.

    Create it with :meth:`open` (an experiment's run) or :meth:`start` (a directory and a resolved config).

    Attributes:
        path: the run directory; in processes other than rank 0 it is only read (the checkpoint), never written.
        config: the resolved config (JSON-serialisable).
        history: the evaluations logged so far (``metrics.jsonl``).
        environment_change: set on resuming in another environment: what differs.
        procs: the run's processes (one, unless under ``torchrun``).
        resumed: whether a checkpoint was restored.
        result: the summary once the run finished (or was found finished), ``{"interrupted": True, ...}`` when
            the test hook stopped it, else ``None``.
    """

    def __init__(self, path: Path, config: Mapping[str, Any]) -> None:
        self.path = path
        self.config = dict(config)
        self.history: list[dict[str, Any]] = []
        self.environment_change: str | None = None
        self._complete: Callable[[Mapping[str, Any]], Mapping[str, Any]] = lambda stored: stored
        self._reader = False
        self.procs = ALONE
        self.desc = ""
        self.total = 0
        self.unit = "epoch"
        self.resumed = False
        self._resume = False
        self.result: dict[str, Any] | None = None
        self._log: Callable[[str], None] | None = None
        self._every = 10.0
        self._showing = False  # inside the ``with`` block with no ``log``: progress goes to standard error
        self._bar: Any = None  # a tqdm bar (when installed) on a terminal
        self._last = 0.0  # when the last progress line was written without a bar
        self._postfix: dict[str, Any] = {}
        self._checkpoints = 0
        self._done = 0
        self._stop_after = stop_after_checkpoints()

    @classmethod
    def start(
        cls,
        path: str | Path,
        config: Mapping[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
        complete: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        reader: bool = False,
    ) -> Session:
        """Open ``path`` for a new run, or for resuming the run already there, and claim it for this process.

        ``reader``: open the run as another process of it sees it (processes other than rank 0 of a ``torchrun``
        launch restore the checkpoint that rank 0 writes): nothing is checked, written or claimed.

        A folder that holds only a run's ``config.json`` (a run that failed before its first checkpoint, for
        example on its data) counts as empty: nothing would be lost by starting again. Any other ``config.json``
        (a model folder's, say) is kept unless ``overwrite``.

        ``complete`` fills in the fields a stored config lacks (a run made before a field existed) before it is
        compared on resuming: :func:`~coordconv.repro.runtime.config.complete_config` for the config's class.

        Raises:
            RunError: ``path`` is not a usable folder or another process runs in it; the folder holds another run
                (and neither ``resume`` nor ``overwrite``), or ``resume`` finds no run or a different config.
        """
        run = cls(Path(path), config)
        run._complete = complete or (lambda stored: stored)
        run._reader = reader
        if reader:
            return run
        path = _prepare_dir(path)
        claim(path)
        existing = [name for name in RUN_FILES if (path / name).exists()]
        if resume:
            if not (path / CONFIG).exists():
                raise RunError(
                    f"cannot resume: {path} holds no run ({CONFIG} is missing: none was started there, or it was "
                    "stopped before it wrote one); start it with the same command without --resume"
                )
            try:
                stored = dict(json.loads((path / CONFIG).read_text())["config"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise RunError(f"{path / CONFIG} is unreadable: {e}") from e
            changed = config_changes(run._complete(stored), run.config)
            if changed:
                raise RunError(
                    f"cannot resume {path}: its config differs in {', '.join(changed)} (--overwrite replaces it)"
                )
            if not run.finished:
                run._record_environment()
            return run
        if existing == [CONFIG] and not overwrite and not _is_run_config(path / CONFIG):
            raise RunError(
                f"{path / CONFIG} is not a coordconv run's config; choose another --out (or pass --overwrite to "
                "replace the file)"
            )
        if existing and existing != [CONFIG] and not overwrite:
            raise RunError(
                f"{path} already holds a run ({', '.join(existing)}); "
                "pass --resume to continue it or --overwrite to replace it"
            )
        for name in existing:
            (path / name).unlink()
        write_json(
            path / CONFIG,
            {
                "config": run.config,
                **environment(run.config),
                "command": sys.argv,
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            },
        )
        return run

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
            RunError: see :meth:`start`.
        """
        complete = partial(complete_config, type(cfg))
        error = None
        try:  # the processes other than rank 0 only read the run (its checkpoint)
            session = cls.start(
                out, to_dict(cfg), resume=resume, overwrite=overwrite, complete=complete, reader=not procs.main
            )
        except RunError as e:
            if procs.world == 1:
                raise
            error = str(e)
        error = broadcast(error, procs)  # the others learn rank 0's outcome and raise the same error
        if error is not None:
            raise RunError(error)
        session.procs, session.desc, session.total, session.unit = procs, desc, total, unit
        session._log, session._every, session._resume = log, every, resume
        if resume and broadcast(session.finished, procs):
            session.result = read_finished(session.path).summary
            return session
        set_threads(cfg.threads)
        keep_freed_memory()
        seed_everything(cfg.seed)
        return session

    def _record_environment(self) -> None:
        """On resuming: add this process's environment to ``config.json`` when it differs from the last one there.

        A run's numbers depend on torch, the CPU kernels and the code, so a run continued elsewhere records every
        environment it trained in (the summary lists them); :attr:`environment_change` says what changed.
        """
        stored = json.loads((self.path / CONFIG).read_text())
        now = environment(self.config)
        seen = [{k: stored.get(k) for k in ENVIRONMENT_KEYS}, *stored.get("resumed_in", [])]
        last = {k: seen[-1].get(k) for k in ENVIRONMENT_KEYS}
        changed = [difference(k, last.get(k), now[k]) for k in ENVIRONMENT_KEYS if last.get(k) != now[k]]
        if not changed:
            return
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        stored["resumed_in"] = [*stored.get("resumed_in", []), {**now, "started": started}]
        write_json(self.path / CONFIG, stored)
        self.environment_change = "; ".join(changed)

    @property
    def finished(self) -> bool:
        """Whether the run wrote its summary."""
        return (self.path / SUMMARY).exists()

    def restore(self, **parts: Any) -> dict[str, Any] | None:
        """The checkpoint's training state when resuming from one (``None`` without one), its parts put back.

        Each keyword names a part of the state and what it goes back into: an object with ``load_state_dict``
        (a model, an optimizer) or a mapping of them by name (``modules={"G": g, "D": d}`` for
        ``state["modules"]["G"]``, ...). The rest of the state (counters, histories) the caller reads from the
        returned dict. The metrics history comes back from the checkpoint too (rank 0 rewrites ``metrics.jsonl``
        from it).

        Example::

            state = session.restore(model=model, optimizer=optimizer)
            epoch = state["epoch"] if state else 0

        Raises:
            RunError: the checkpoint cannot be read, was written by another run (another config), or its state
                does not fit (missing or unexpected keys, other shapes); the message names the checkpoint.
        """
        path = self.path / CHECKPOINT
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            history = [dict(r) for r in state.pop("history")]
            config = state.pop("config", None)
        except Exception as e:  # a truncated or foreign file raises many different errors
            raise RunError(f"cannot resume: {path} is corrupt or not a checkpoint ({type(e).__name__})") from e
        # checkpoints written before the config was stored in them are taken as they are
        changed = [] if config is None else config_changes(self._complete(config), self.config)
        if changed:
            raise RunError(f"cannot resume: {path} belongs to another run (its config differs in {', '.join(changed)})")
        self.history = history
        if not self._reader:
            self._write_metrics()
        try:
            for key, part in parts.items():
                _load(part, state[key])
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise RunError(f"cannot resume: {path} does not fit this run ({type(e).__name__}: {first[:200]})") from e
        self.resumed = True
        return dict(state)

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files (rank 0, or the only process)."""
        return self.procs.main

    def __enter__(self) -> Session:
        """Show progress on standard error: a tqdm bar (when installed) on a terminal, else a line every ``every`` s.

        Without a terminal (CI logs, files, pipes) the lines are plain log lines.
        """
        self._showing, self._last = self._log is None and self.main, time.monotonic()
        if self._showing and sys.stderr.isatty():
            with contextlib.suppress(ImportError):
                from tqdm import tqdm  # type: ignore[import-untyped]

                self._bar = tqdm(total=self.total, desc=self.desc, file=sys.stderr, dynamic_ncols=True, leave=False)
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
        if self._bar is not None:
            self._bar.close()
        self._bar, self._showing = None, False
        return stopped

    # -- during the run ---------------------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        """A log line (through the bar on a terminal); rank 0's only."""
        if not self.main:
            return
        if self._log is not None:
            self._log(line)
        elif self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr if self._showing else sys.stdout, flush=True)

    def advance(self, n: int = 1, **postfix: Any) -> None:
        """Count ``n`` units of work done and show ``postfix`` values (metrics) beside the count."""
        self._done += n
        if not self._showing:
            return
        self._postfix.update(postfix)
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix_str(self._shown_postfix(), refresh=False)
        elif time.monotonic() - self._last >= self._every:  # formatted only when a line is written
            self._last = time.monotonic()
            self.emit(f"{self.desc}: {self._done}/{self.total} {self._shown_postfix()}".rstrip())

    def _shown_postfix(self) -> str:
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self._postfix.items())

    def start_at(self, done: int) -> None:
        """Start the count at ``done`` units (a resumed run says where it goes on from)."""
        if self.resumed or self._resume:
            self.emit(f"{self.desc}: {resumed_line(done, self.total, self.unit, checkpoint=self.resumed)}")
        if self.environment_change:
            self.emit(
                f"{self.desc}: resumed in another environment ({self.environment_change}); config.json and "
                "the summary record both"
            )
        self.advance(done - self._done)

    def checkpoint(self, state: Mapping[str, Any], *, last: bool = False) -> None:
        """Save the training state (tensors, numbers, strings, lists and dicts only) with the metrics history.

        Everything that decides how the run goes on, whether it is over included (a target reached, an early
        stop), belongs in ``state``: a run killed after this checkpoint resumes from it alone.

        ``last``: this is the run's final checkpoint (the test hook does not stop a run that is done anyway).
        Rank 0 writes it; every process counts it, so all of them stop together under the test hook.
        """
        if self.main:
            with atomic_path(self.path / CHECKPOINT) as tmp:
                torch.save({**state, "history": self.history, "config": self.config}, tmp)
        self._checkpoints += 1
        if self._stop_after and self._checkpoints >= self._stop_after and not last:
            raise _Stop

    def outcome(self) -> dict[str, Any]:
        """What ``main`` returns after the ``with`` block: the summary, or the interruption marker."""
        if self.result is None:
            raise RuntimeError(f"{self.desc}: the session ended without a summary (call finish())")
        return self.result

    def finish(self, summary: Mapping[str, Any], model: Any = None) -> dict[str, Any]:
        """Save ``model``'s weights (when given) and ``summary.json``, which marks the run finished; return it.

        The summary gets the record of the run's files and of the environments it trained in.

        Rank 0 writes them (the other processes return ``summary`` as given), and no process returns before
        they are written.
        """
        if self.main:
            if model is not None:
                self._save_weights(model)
            # every environment the run trained in, first to last (from config.json)
            stored = json.loads((self.path / CONFIG).read_text())
            seen = [stored, *stored.get("resumed_in", [])]
            environments = [{k: e.get(k) for k in ENVIRONMENT_KEYS} for e in seen]
            written = {**summary, "environments": environments, FILES_KEY: record_files(self.path, SUMMARY)}
            written[SELF_KEY] = summary_hash(written)
            write_json(self.path / SUMMARY, written)
            release(self.path)
            # a finished run is never trained in again (a resume returns it as it is): its lock file goes
            with contextlib.suppress(OSError):
                (self.path / LOCK).unlink()
            self.result = written
        else:
            self.result = dict(summary)
        barrier(self.procs)
        return self.result

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one evaluation to the history and to ``metrics.jsonl`` (rank 0 writes it).

        Raises:
            RunError: the record holds NaN or an infinity.
        """
        if not self.main:
            return
        json_text(self.path / METRICS, dict(record))
        self.history.append(dict(record))
        self._write_metrics()

    def _write_metrics(self) -> None:
        path = self.path / METRICS
        write_atomic(path, "".join(json_text(path, r) + "\n" for r in self.history))

    def save_with(self, name: str, write: Callable[[Path], None]) -> None:
        """Write an extra file of the run (a picture, an archive) atomically: ``write`` gets the temporary path."""
        with atomic_path(self.path / name) as tmp:
            write(tmp)

    def _save_weights(self, model: nn.Module) -> None:
        """Save the model's state dict as safetensors, with the config as metadata (shared tensors copied)."""
        from safetensors.torch import save_file

        tensors: dict[str, torch.Tensor] = {}
        seen: set[tuple[int, int]] = set()
        for k, v in model.state_dict().items():
            v = v.detach().contiguous().cpu()
            where = (v.untyped_storage().data_ptr(), v.storage_offset())
            # safetensors refuses tensors that share memory (a body shared by two heads appears under two names)
            tensors[k] = v.clone() if where in seen else v
            seen.add(where)
        with atomic_path(self.path / WEIGHTS) as tmp:
            save_file(tensors, str(tmp), metadata={"config": json.dumps(self.config)})
