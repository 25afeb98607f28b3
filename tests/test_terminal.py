"""Every command under a real (pseudo-)terminal: the progress bar, not only the plain log lines of pipes."""

import os
import select
import subprocess
import sys

import pytest

from coordconv.repro.experiments.registry import REGISTRY

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals")


def _in_terminal(args, cwd, timeout=600):
    """Run ``coordconv ARGS`` with a pseudo-terminal as stdin, stdout and stderr; return (status, output)."""
    import pty

    pytest.importorskip("tqdm")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "coordconv.cli", *map(str, args)], stdin=follower, stdout=follower, stderr=follower,
        cwd=cwd, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        assert ready, f"no output for {timeout} s: {b''.join(chunks)[-2000:]!r}"
        try:
            data = os.read(leader, 1 << 16)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode(errors="replace")


# the fast tier trains the quickest task under a terminal; the long tier (-m slow) every other task
@pytest.mark.parametrize(
    "task", [pytest.param(task, marks=() if task == "regression" else pytest.mark.slow) for task in REGISTRY]
)
def test_train_runs_in_a_terminal(task, tmp_path):
    module = REGISTRY[task].module
    needs = getattr(module, "requires", lambda cfg: ())(module.preset("smoke"))
    for package in needs:
        pytest.importorskip({"mlxtend": "mlxtend", "PIL": "PIL"}.get(package, package))
    status, output = _in_terminal(["train", task, "--preset", "smoke", "--out", tmp_path / "run"], tmp_path)
    assert status == 0, output[-3000:]
    assert "Traceback" not in output and "coordconv: error" not in output
    assert (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["reproduce", "classification", "--preset", "smoke", "--out", "rep"],
        ["dataset", "notsoclevr", "--out", "d.npz"],
        ["bench", "layer", "--quick", "--repeats", "1", "--warmup", "0"],
    ],
    ids=lambda a: a[0],
)
def test_other_commands_run_in_a_terminal(args, tmp_path):
    status, output = _in_terminal(args, tmp_path)
    assert status == 0, output[-3000:]
    assert "Traceback" not in output


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_train_runs_with_a_closed_stream(closed, tmp_path):
    # `2>&-` / `>&-`: the descriptor is closed before the start, so Python's stream is None
    script = f'exec {1 if closed == "stdout" else 2}>&- && exec "$@"'
    args = [sys.executable, "-m", "coordconv.cli", "train", "classification", "--preset", "smoke", "--out", "run"]
    command = ["sh", "-c", script, "sh", *args]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "summary.json").exists()
