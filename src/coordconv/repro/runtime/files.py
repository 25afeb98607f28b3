"""Files written safely: atomic writes (a temporary file, then a rename), JSON without NaN, the divergence guard.

Every file of a run, a report or a data set is written through :func:`atomic_path`, so an interrupted process
leaves either the old or the new version of a file, never half of one; the temporary copies that killed writers
leave behind are removed by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "RunError",
    "atomic_path",
    "check_finite",
    "failure_reason",
    "file_mode",
    "json_text",
    "remove_stale_copies",
    "temporary_name",
    "write_atomic",
    "write_json",
]


class RunError(Exception):
    """A run cannot start, resume or be read; the message is one line meant for the user."""


def file_mode() -> int:
    """The mode a newly created file gets under the current umask (0644 under the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def failure_reason(error: BaseException, folder: Path) -> str:
    """Why a write failed, in a few words (torch reports a full disk as a C++ enforce message)."""
    if isinstance(error, OSError) and error.errno is not None:
        # mkdir of a folder whose path runs through a file says "File exists" or "Not a directory": name the file
        if error.errno in (errno.EEXIST, errno.ENOTDIR):
            blocking = next((p for p in (folder, *folder.parents) if _is_file(p)), None)
            if blocking is not None:
                return f"{blocking} is a file, not a folder"
        return os.strerror(error.errno)
    with contextlib.suppress(OSError):
        if shutil.disk_usage(folder).free < 1 << 20:
            return os.strerror(errno.ENOSPC)
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where the path cannot even be looked up (too long, no permission)."""
    try:
        return path.is_file()
    except OSError:
        return False


def temporary_name(path: Path) -> str:
    """A hidden name beside ``path`` for writing it, unique to this process, within the file system's 255 bytes.

    ``.NAME.tmpPID.SUFFIX`` (the suffix last: numpy and matplotlib choose the format by it); a name too long for
    that is cut and given a hash of the whole name, so that two long names never share a temporary file.
    """
    tag = f".tmp{os.getpid()}"
    name = f".{path.stem}{tag}{path.suffix}"
    if len(name.encode()) <= 255:
        return name
    digest = hashlib.sha256(path.name.encode()).hexdigest()[:16]
    keep = 255 - len(f".{tag}{digest}{path.suffix}".encode())
    if keep < 1:  # a suffix too long to keep
        return f".{digest}{tag}"
    stem = path.stem.encode()[:keep].decode(errors="ignore")
    return f".{stem}{digest}{tag}{path.suffix}"


def remove_stale_copies(path: Path) -> None:
    """Remove the temporary copies of ``path`` that writers killed mid-write left (their process is gone).

    They are named ``.NAME.tmpPID`` (a folder) or as :func:`temporary_name` names them (a file).
    """
    pattern = re.compile(
        rf"^\.(?:{re.escape(path.name)}|{re.escape(path.stem)})\.tmp(\d+){re.escape(path.suffix)}$|"
        rf"^\.{re.escape(path.name)}\.tmp(\d+)$"
    )
    with contextlib.suppress(OSError):
        for old in path.parent.iterdir():
            found = pattern.match(old.name)
            pid = found and int(found.group(1) or found.group(2))
            if pid and pid != os.getpid() and not _process_alive(pid):
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it is renamed to ``path``, else removed.

    The file gets the mode of any new file (``0666`` less the umask), whatever the writer chose.

    Raises:
        RunError: writing failed with an ``OSError`` or a torch ``RuntimeError`` (a full disk, a read-only file
            system); the message names ``path`` and the reason.
    """
    # the suffix stays last: numpy and matplotlib choose the format by it (and numpy appends .npz otherwise)
    tmp = path.with_name(temporary_name(path))
    remove_stale_copies(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError | RuntimeError):
            raise RunError(f"cannot write {path}: {failure_reason(e, path.parent)}") from e
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def json_text(path: Path, obj: Any, indent: int | None = None) -> str:
    """``obj`` as JSON text for ``path``.

    Raises:
        RunError: ``obj`` holds NaN or an infinity, which JSON cannot hold.
    """
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError as e:
        raise RunError(f"refusing to write {path}: a value is NaN or infinite, which JSON cannot hold") from e


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically.

    Raises:
        RunError: ``obj`` holds NaN or an infinity (never written as the non-standard ``NaN``/``Infinity``).
    """
    write_atomic(path, json_text(path, obj, indent=2) + "\n")


def check_finite(value: float, what: str) -> None:
    """Stop a run whose loss stopped being a finite number.

    Raises:
        RunError: naming ``what`` (for example ``"the loss at step 12"``).
    """
    if not math.isfinite(value):
        raise RunError(f"training diverged: {what} is {value}; lower the learning rate (the run is not finished)")


def npz_outputs(path: Path, overwrite: bool) -> tuple[Path, Path]:
    """A data set writer's two outputs, ``path`` (an ``.npz`` file) and the ``.png`` of examples beside it.

    Raises:
        IsADirectoryError: ``path`` is a folder.
        ValueError: ``path`` does not end in ``.npz``.
        FileExistsError: either file is already there and ``overwrite`` is false.
    """
    if path.is_dir():
        raise IsADirectoryError(f"the output must be an .npz file, got {path} (a directory)")
    if path.suffix != ".npz":
        raise ValueError(f"the output must be an .npz file, got {path}")
    picture = path.with_suffix(".png")
    for target in (path, picture):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    return path, picture
