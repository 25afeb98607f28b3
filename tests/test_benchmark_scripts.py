"""The benchmark scripts of issue 30 run and measure what they say (no timings are checked: timing is noisy)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from coordconv import CoordConv3d, CoordConvTranspose3d

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import model_overhead  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_script_refuses_clearly_without_cuda(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu.py"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "CUDA is not available" in result.stderr and "run it on a machine with a CUDA GPU" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written, no half-made folder


def test_model_benchmark_variants_convert_and_floor_the_same_layers():
    case = model_overhead.ModelCase("unet3d", lambda: model_overhead.UNet3d(width=2), 1, 1, (8, 8, 8))
    x = case.input("cpu", channels_last=False)
    variants = model_overhead.build_variants(case, "all", x, "cpu", channels_last=False)
    plain, floor, ours = variants["plain"], variants["floor"], variants["ours"]
    names = model_overhead._converted_names(plain, "all")
    assert len(names) == 13  # ten 3x3x3 convs, two transposed, the 1x1x1 head
    checked = 0
    for name in names:
        assert isinstance(ours.get_submodule(name), CoordConv3d | CoordConvTranspose3d), name
        wrapped = floor.get_submodule(name)
        assert isinstance(wrapped, model_overhead.FloorConv), name
        inner = plain.get_submodule(name)
        torch.testing.assert_close(wrapped.conv.weight, inner.weight)
        assert wrapped.term.shape[:2] == (1, inner.out_channels)
        if not inner.transposed:  # size-keeping: an input of the term's size; the floor adds the term
            sample = torch.randn(2, inner.in_channels, *wrapped.term.shape[2:])
            with torch.no_grad():
                torch.testing.assert_close(wrapped(sample), inner(sample) + wrapped.term)
            checked += 1
    assert checked == 11
    first = model_overhead._converted_names(plain, "first")
    assert first == names[:1]


def test_model_benchmark_runs_every_mode_and_reports_ratios():
    case = model_overhead.ModelCase("unet3d", lambda: model_overhead.UNet3d(width=2), 1, 1, (8, 8, 8))
    lines = []
    rows = model_overhead.run([case], ["first"], ["eager"], ["inference", "train"], [1], 1, 0, log=lines.append)
    assert [(r.mode, r.threads) for r in rows] == [("inference", 1), ("train", 1)]
    for row in rows:
        assert set(row.ms) == {"plain", "floor", "ours"} and all(v > 0 for v in row.ms.values())
        assert all(v > 0 for v in row.ratios.values())
    table = model_overhead.format_table(rows)
    assert table.count("\n| unet3d | first | eager |") == 2 and len(lines) == 2


def test_model_profile_lists_operators_and_names_the_input_filter_copies():
    import model_profile

    weight = torch.randn(4, 5, 1, 1)  # three input channels and two coordinate channels, as CoordConv keeps them
    times = model_profile.self_times(lambda: weight[:, :3].contiguous(), 2, {(4, 3, 1, 1)})
    assert times[model_profile.WEIGHT_COPY][1] == 1  # one copy per call of the input filters' view
    case = model_overhead.ModelCase("unet3d", lambda: model_overhead.UNet3d(width=2), 1, 1, (8, 8, 8))
    lines = model_profile.profile_case(case, "train", "all", calls=1, warmup=0, top=5)
    assert lines[0].startswith("### unet3d, all converted, eager train")
    assert sum(line.startswith("| `") for line in lines) == 5 and "ours / floor" in lines[2]


def test_model_benchmark_keeps_freed_memory_where_malloc_is_glibc():
    said = model_overhead.keep_freed_memory()
    if sys.platform == "linux" and os.confstr("CS_GNU_LIBC_VERSION"):
        assert said.startswith("glibc malloc keeping freed memory"), said
    else:
        assert "malloc" in said
