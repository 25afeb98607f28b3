import subprocess
import sys

import pytest

from coordconv import __version__
from coordconv.cli import main


def _run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "coordconv.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_version_and_help():
    result = _run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"coordconv {__version__}"
    result = _run("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout and "bench" in result.stdout


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: coordconv" in capsys.readouterr().out


def test_bench_layer_quick_through_the_real_command():
    result = _run("bench", "layer", "--quick", "--repeats", "1", "--warmup", "0", "--threads", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# machine:")
    rows = [line for line in lines if line.startswith("| conv")]
    assert len(rows) == 4  # two cases, train and inference
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[6]) > 0 and float(cells[7]) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "layer", "--repeats", "0"], "--repeats must be >= 1"),
        (["bench", "layer", "--threads", "0"], "--threads must be positive"),
        (["bench", "layer", "--case", "no-such-case"], "no benchmark case matches"),
        (["bench", "nothing"], "invalid choice 'nothing'"),
        (["frobnicate"], "Unrecognized options: frobnicate"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = _run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "i: [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]" in out
    # zero coordinate filters: the plain convolution up to where the bias is added (the layer adds it with the
    # coordinate term, after the convolution): bit for bit on some CPUs, 1.5e-8 on this project's AMD EPYC VM
    change = float(out.split("max |output change| = ")[1].split()[0])
    assert change <= 1e-6, out
