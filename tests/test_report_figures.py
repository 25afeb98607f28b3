"""The reports' figures and opening sentences (issue 17): what a reader sees, checked on synthetic runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coordconv.repro.report import detection, generative, rl, toy
from coordconv.repro.report.runs import seeds_phrase, write_task_report
from coordconv.repro.reproduce import record_command
from coordconv.repro.runtime import plots
from coordconv.repro.runtime.rundir import FinishedRun

pytest.importorskip("matplotlib")


def toy_run(split: str, model: str, seed: int, *, solved: bool, seconds: float, test: float = 1.0) -> FinishedRun:
    """A finished classification run: one evaluation per second, a train row per epoch (every 2 s)."""
    steps = max(1, int(seconds))
    rows: list[dict[str, Any]] = []
    for i in range(1, steps + 1):
        row = {"kind": "epoch" if i % 2 == 0 or i == steps else "step", "train_seconds": float(i)}
        row["test_accuracy"] = test * i / steps
        if row["kind"] == "epoch":
            row["train_accuracy"] = 0.9 * test * i / steps
        rows.append(row)
    if solved:
        rows[-1]["train_set_accuracy"] = 1.0
    summary = {
        "task": "classification", "split": split, "model": model, "seed": seed, "metric": "accuracy", "target": 1.0,
        "train": {"accuracy": test}, "test": {"accuracy": test}, "train_seconds": float(seconds),
        "seconds_to_target": float(seconds) if solved else None,
    }  # fmt: skip
    return FinishedRun(Path(f"/nonexistent/{model}-{split}-seed{seed}"), summary, rows)


def toy_runs(solved: dict[tuple[str, str], int], *, seeds: int = 3, seconds: dict[str, float] | None = None) -> list:
    """``seeds`` runs per (split, model); the first ``solved[(split, model)]`` of them solved."""
    seconds = seconds or {"conv": 100.0, "coordconv": 100.0}
    return [
        toy_run(split, model, seed, solved=seed < solved[split, model], seconds=seconds[model],
                test=1.0 if seed < solved[split, model] else 0.2)
        for split in toy.SPLITS for model in ("conv", "coordconv") for seed in range(seeds)
    ]  # fmt: skip


@pytest.fixture
def captured(monkeypatch):
    """The figures the report functions would save, kept open instead (path -> figure)."""
    figures: dict[Path, Any] = {}
    for module in (toy, rl, detection):
        monkeypatch.setattr(module, "save_figure", lambda fig, path, **_: figures.__setitem__(path, fig))
    yield figures
    plt = plots.pyplot()
    for fig in figures.values():
        plt.close(fig)


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if legend
            for t in legend.get_texts()]  # fmt: skip


def all_text(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_text()))


def test_seeds_phrase_and_rl_verdict():
    assert seeds_phrase(10, 10) == "in every seed" and seeds_phrase(0, 10) == "in no seed"
    assert seeds_phrase(3, 10) == "in 3 of 10 seeds" and seeds_phrase(1, 1) == "in its one seed"
    assert rl.verdict([0.0, 0.1, -0.1], [1.0, 1.1, 0.9]) == "contradicted"
    assert rl.verdict([1.0, 2.0, 0.0], [1.1, 2.1, 0.1]) == "no detectable difference"
    assert rl.verdict([1.0, 1.1, 0.9], [0.0, 0.1, -0.1]) == "reproduced" and rl.verdict([], [1.0]) == "?"


def test_toy_finding_says_who_solves_what():
    every = {(s, m): 3 if m == "coordconv" else 0 for s in toy.SPLITS for m in ("conv", "coordconv")}
    text = toy.finding(toy_runs(every), "classification")
    assert text.startswith("CoordConv solves both splits in every seed; conv solves neither split in any seed")
    assert "100% accuracy" in text and text.endswith(".") and "\n" not in text
    mixed = {**every, ("quadrant", "coordconv"): 1, ("uniform", "conv"): 3}
    text = toy.finding(toy_runs(mixed), "classification")
    assert "CoordConv solves the uniform split in every seed and the quadrant split in 1 of 3 seeds" in text
    assert "conv solves the uniform split in every seed and the quadrant split in no seed" in text
    none = dict.fromkeys(every, 0)
    text = toy.finding(toy_runs(none), "classification")
    assert "CoordConv solves neither split in any seed" in text and "every" not in text
    assert toy.finding([], "classification") == "No finished runs yet."


def test_toy_verdicts_test_the_papers_effect():
    every = {(s, m): 3 if m == "coordconv" else 0 for s in toy.SPLITS for m in ("conv", "coordconv")}
    table = toy.verdict_table(toy_runs(every), "classification")
    # CoordConv 100% against conv 20% in every seed: +80 points, beyond the paper's +14 on uniform, short of its +100
    # on quadrant (the paper's conv got ~0% there)
    assert "| uniform | 3/3 | +80.0 [+80.0, +80.0] pp | +14.0 pp | reproduced |" in table
    assert (
        "| quadrant | 3/3 | +80.0 [+80.0, +80.0] pp | +100.0 pp | contradicted: a difference on the paper's side"
        in table
    )
    mixed = {**every, ("uniform", "coordconv"): 1}  # one seed of three solves: 100%, 20%, 20%
    assert "| uniform | 3/3 | +26.7 [-88.1, +141.4] pp | +14.0 pp | no detectable difference; this test could " in (
        toy.verdict_table(toy_runs(mixed), "classification")
    )
    assert toy.verdict_table(toy_runs(every, seeds=1), "classification") == ""  # one seed: nothing to test


def test_curves_use_a_log_time_axis_when_one_model_runs_over_ten_times_longer(captured, tmp_path):
    solved = {(s, m): 3 for s in toy.SPLITS for m in ("conv", "coordconv")}
    toy.plot_curves(toy_runs(solved, seconds={"conv": 400.0, "coordconv": 4.0}), "classification", tmp_path / "a")
    fig = captured[tmp_path / "a"]
    assert [ax.get_xscale() for ax in fig.axes] == ["log", "log"]
    assert "log scale" in fig.axes[0].get_xlabel()
    labels = legend_texts(fig)
    for label in ("conv", "CoordConv", "test set", "train: running batch average", "train: whole training set"):
        assert label in labels
    assert "table's train" in all_text(fig)  # the caption says which mark the table reports
    toy.plot_curves(toy_runs(solved, seconds={"conv": 40.0, "coordconv": 10.0}), "classification", tmp_path / "b")
    assert [ax.get_xscale() for ax in captured[tmp_path / "b"].axes] == ["linear", "linear"]


def test_curves_draw_a_single_point_series_with_a_marker(captured, tmp_path):
    solved = {(s, m): 3 for s in toy.SPLITS for m in ("conv", "coordconv")}
    toy.plot_curves(toy_runs(solved, seconds={"conv": 100.0, "coordconv": 1.0}), "classification", tmp_path / "c")
    lines = captured[tmp_path / "c"].axes[0].get_lines()
    single = [line for line in lines if len(line.get_xdata()) == 1]
    assert single and all(line.get_marker() not in (None, "None", "", " ") for line in single)


def test_time_scale_and_plot_series():
    assert plots.time_scale([4.0, 100.0]) == "log" and plots.time_scale([11.0, 100.0]) == "linear"
    assert plots.time_scale([0.0, 5.0]) == "linear" and plots.time_scale([]) == "linear"
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    (one,) = plots.plot_series(ax, [1.0], [2.0], color="red")
    (many,) = plots.plot_series(ax, [1.0, 2.0], [2.0, 3.0], color="red")
    assert one.get_marker() == "o" and many.get_marker() in ("None", None, "")
    plt.close(fig)


def test_summary_labels_every_bar_and_explains_the_dots(captured, tmp_path):
    solved = {(s, m): 3 if m == "coordconv" else 0 for s in toy.SPLITS for m in ("conv", "coordconv")}
    runs = toy_runs(solved)
    for r in runs:
        if r.summary["split"] == "quadrant" and r.summary["model"] == "conv":
            r.summary["test"]["accuracy"] = 0.0003  # the invisible 0.03% bar of the report
    toy.plot_summary(runs, ["classification"], tmp_path / "s")
    fig = captured[tmp_path / "s"]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(texts) == sorted(["20.0%", "100.0%", "0.03%", "100.0%"])
    assert "one seed's final model" in legend_texts(fig)
    assert "conv: median over seeds" in legend_texts(fig)
    # one failing seed out of five moves the mean, not the bar
    runs = toy_runs({(s, m): 0 for s in toy.SPLITS for m in ("conv", "coordconv")})
    group = [r for r in runs if r.summary["split"] == "uniform" and r.summary["model"] == "coordconv"]
    for r, value in zip(group, [1.0, 1.0, 0.0], strict=False):
        r.summary["test"]["accuracy"] = value
    toy.plot_summary(runs, ["classification"], tmp_path / "m")
    bars = [p.get_height() for p in captured[tmp_path / "m"].axes[0].patches]
    assert 1.0 in bars


@pytest.mark.parametrize("tasks", [["classification"], ["classification", "regression", "rendering"]])
def test_the_summary_legend_and_caption_lie_inside_the_figure(tasks, captured, tmp_path):
    # the main job's figure has one task: a narrow figure, whose one-row legend was cut on both sides
    solved = {(s, m): 3 if m == "coordconv" else 0 for s in toy.SPLITS for m in ("conv", "coordconv")}
    runs = [r for task in tasks for r in toy_runs(solved)]
    for r, task in zip(runs, [t for t in tasks for _ in range(len(runs) // len(tasks))], strict=True):
        r.summary["task"] = task
    toy.plot_summary(runs, tasks, tmp_path / "s")
    fig = captured[tmp_path / "s"]
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    for artist in [*fig.legends, *fig.texts]:
        box = artist.get_window_extent(renderer)
        assert box.x0 >= figure_box.x0 and box.x1 <= figure_box.x1, (artist, box, figure_box)
        assert box.y0 >= figure_box.y0 and box.y1 <= figure_box.y1, (artist, box, figure_box)


def test_report_opens_with_the_finding_and_the_table_stays_alone(tmp_path):
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "command.txt").write_text("coordconv reproduce task\n")
    path = write_task_report(folder, "Title", "| a |\n|---|", ["![x](x.png)"], "Intro.", finding="It works.")
    assert path.read_text().splitlines()[:5] == ["# Title", "", "It works.", "", "Intro."]
    assert path.read_text().endswith("\n\n![x](x.png)\n")  # the figures close the report
    assert "It works." not in (folder / "table.md").read_text()
    assert (folder / "finding.md").read_text() == "It works.\n"


def test_a_folder_filled_by_two_commands_records_both(tmp_path):
    folder = tmp_path / "task"
    folder.mkdir()
    path = folder / "command.txt"
    commands = ["coordconv reproduce task --seeds 5", "coordconv reproduce task --seeds 3 --ablation"]
    for command in commands:
        record_command(path, command)
        record_command(path, command)  # a rerun adds nothing
    assert path.read_text().splitlines() == commands
    write_task_report(folder, "Title", "| a |\n|---|", [], finding="It works.")
    said = (folder / "table.md").read_text().splitlines()[0]
    assert said == f"Commands, in order: `{commands[0]}`; `{commands[1]}`"
    path.write_bytes(b"\xff\xfe not utf-8\n")  # a foreign file: kept, not a traceback after hours of training
    record_command(path, commands[0])
    assert path.read_text(errors="replace").splitlines()[1:] == [commands[0]]
    path.write_text("")
    write_task_report(folder, "Title", "| a |\n|---|", [], finding="It works.")
    assert (folder / "table.md").read_text().startswith("Command: not recorded\n")


def detection_run(model: str, seed: int, iou: float, clip_boxes: bool = False) -> FinishedRun:
    summary = {"model": model, "seed": seed, "proposal_iou": iou, "map_50": 0.2, "map": 0.1, "train_seconds": 60.0,
               "config": {"clip_boxes": clip_boxes}}  # fmt: skip
    metrics = [
        {"epoch": 1, "proposal_iou": iou - 0.01, "map_50": 0.1},
        {"epoch": 2, "proposal_iou": iou, "map_50": 0.2},
    ]
    return FinishedRun(Path(f"/nonexistent/{model}-seed{seed}"), summary, metrics)


def test_detection_finding_and_curves(captured, tmp_path):
    conv = [detection_run("conv", s, v) for s, v in enumerate([0.50, 0.51, 0.52])]
    better = [detection_run("coordconv", s, v) for s, v in enumerate([0.60, 0.61, 0.62])]
    worse = [detection_run("coordconv", s, v) for s, v in enumerate([0.40, 0.41, 0.42])]
    same = [detection_run("coordconv", s, v) for s, v in enumerate([0.49, 0.52, 0.53])]
    assert detection.finding(conv + better).startswith("The paper's +24% proposal IoU with CoordConv: reproduced (")
    assert "contradicted: a difference opposite to the paper's" in detection.finding(conv + worse)
    # the clipped variant's verdict is scoped to the variant: it cannot speak for the paper's setting
    clipped = [detection_run(r.summary["model"], r.summary["seed"], r.summary["proposal_iou"], True)
               for r in conv + worse]  # fmt: skip
    assert detection.finding(clipped).startswith("In the clipped variant only (")
    assert "says nothing about the paper's setting), the paper's +24% proposal IoU with CoordConv: contradicted" in (
        detection.finding(clipped)
    )
    # 0.49-0.53 against 0.50-0.52: the interval holds zero but not the paper's +0.122, so "no gain" may be said
    assert "contradicted: the interval excludes the paper's effect" in detection.finding(conv + same)
    noisy = [detection_run("coordconv", s, v) for s, v in enumerate([0.30, 0.70, 0.55])]
    text = detection.finding(conv + noisy)
    assert "no detectable difference; this test could detect effects larger than " in text
    assert "nothing is compared" in detection.finding(conv)
    one = detection.finding([*conv, detection_run("coordconv", 0, 0.30)])  # far below, but a single seed
    assert one.startswith("One seed of a model is too few")
    rpn = [detection_run("coordconv-rpn", s, v) for s, v in enumerate([0.70, 0.71, 0.72])]
    assert detection.finding(conv + same + rpn).endswith(
        "In the placement ablation, CoordConv in the RPN only: reproduced (0.710, +39.2%, 3 seeds)."
    )
    lone = detection.finding([*conv, *same, detection_run("coordconv-backbone", 0, 0.90)])  # one seed, far above
    assert lone.endswith("CoordConv in the backbone only: not compared (one seed of a model) (0.900, +76.5%, 1 seed).")
    table = detection.results_table(conv + same + rpn)
    assert "| CoordConv in the RPN only | RPN 3x3 + box mover | 3 | 0.710 ± 0.010 | +39.2% | +0.200 [" in table
    assert "backbone only" not in table  # no runs, no row
    detection.plot_curves(conv + better + rpn, tmp_path / "d")
    legend = legend_texts(captured[tmp_path / "d"])
    assert "Faster R-CNN (3 seeds)" in legend and "CoordConv in the RPN only (3 seeds)" in legend
    assert not any("backbone only" in text for text in legend)
    assert detection.epoch_gaps(conv + better) == (
        "Epoch by epoch (means over seeds), CoordConv Faster R-CNN's proposal IoU differs from Faster R-CNN's by "
        "+19.6% (epoch 2) to +20.0% (epoch 1); the paper reports +24%."
    )
    assert detection.epoch_gaps(conv) == ""
    sparse = [  # evaluated at epochs 5 and 10 only, conv at 0 in epoch 5: the gap there is undefined
        FinishedRun(Path(f"/nonexistent/{m}"), {"model": m, "seed": 0, "proposal_iou": v}, [
            {"epoch": 5, "proposal_iou": 0.0 if m == "conv" else 0.1}, {"epoch": 10, "proposal_iou": v}])
        for m, v in (("conv", 0.5), ("coordconv", 0.55))
    ]  # fmt: skip
    assert "+10.0% (epoch 10) to +10.0% (epoch 10)" in detection.epoch_gaps(sparse)
    detection.plot_curves([*conv, detection_run("coordconv", 0, 0.6)], tmp_path / "one")
    assert "CoordConv Faster R-CNN (1 seed)" in legend_texts(captured[tmp_path / "one"])


def test_detection_verdicts_are_worded_by_what_the_test_can_detect():
    conv, coord = [0.50, 0.51, 0.52], [0.47, 0.49, 0.50]  # t = -2.2, p = 0.1 with 3 seeds each: holds zero
    assert detection.verdict(coord, conv) == "contradicted: the interval excludes the paper's effect"
    assert detection.verdict([0.40, 0.41, 0.42], conv) == "contradicted: a difference opposite to the paper's"
    assert detection.verdict([0.6], conv) == "not compared (one seed of a model)"  # one seed has no spread
    assert detection.verdict([0.65, 0.65], [0.5, 0.5]) == "reproduced"  # no spread: the point decides
    wide = detection.verdict([0.3, 0.9, 0.6], conv)
    assert wide.startswith("no detectable difference; this test could detect effects larger than 0.")


def test_detection_late_change_measures_the_plateau():
    metrics = [{"epoch": e, "proposal_iou": v} for e, v in enumerate([0.5, 0.6, 0.64, 0.65, 0.65, 0.65, 0.66], 1)]
    run = FinishedRun(Path("/nonexistent/conv-seed0"), {"model": "conv", "seed": 0}, metrics)
    assert detection.late_change(run) == pytest.approx(0.66 - 0.6)
    assert detection.late_change(run, epochs=7) is None


def rl_run(env: str, model: str, seed: int, final: float) -> FinishedRun:
    summary = {"env": env, "model": model, "seed": seed, "final_return": final}
    metrics = [{"step": 100, "mean_return_100": final / 2}, {"step": 200, "mean_return_100": final}]
    return FinishedRun(Path(f"/nonexistent/{model}-seed{seed}"), summary, metrics)


def test_rl_finding_and_band_legend(captured, tmp_path):
    runs = [rl_run("MinAtar/Breakout-v1", m, s, v + s * 0.1) for m, v in (("conv", 1.0), ("coordconv", 1.05))
            for s in range(3)]  # fmt: skip
    text = rl.finding(runs)
    assert (
        "returns of 1 game (95% Welch intervals): reproduced in 0, contradicted in 0, no detectable difference in 1"
        in text
    )
    # sd 0.1 a side, 3 seeds: (t(.975, 4) + t(.8, 4)) * sqrt(2 * 0.01 / 3) = 0.30, 28% of conv's 1.1
    assert "(there, this test could detect differences larger than 28% of conv's mean final return, by game)" in text
    runs += [rl_run("MinAtar/Asterix-v1", m, s, v + s * 0.1) for m, v in (("conv", 1.0), ("coordconv", 5.0))
             for s in range(3)]  # fmt: skip
    text = rl.finding(runs)
    assert (
        "returns of 2 games (95% Welch intervals): reproduced in 1, contradicted in 0, no detectable difference in 1"
        in text
    )
    rl.plot_curves(runs, tmp_path / "r")
    assert "lowest to highest seed" in legend_texts(captured[tmp_path / "r"])


def gan_run(model: str, seed: int, one_each: float, red: float = 3.0) -> FinishedRun:
    summary = {"task": "gan", "model": model, "seed": seed, "one_each": one_each,
               "entropy": {"red": red, "blue": red, "diff": 2.0},
               "data": {"entropy": {"red": 3.5, "blue": 3.5, "diff": 4.3}}}  # fmt: skip
    return FinishedRun(Path(f"/nonexistent/{model}-seed{seed}"), summary, [])


def test_gan_finding_says_when_a_model_does_not_work():
    conv = [gan_run("conv", s, 0.9, 2.0 + s * 0.1) for s in range(3)]
    text = generative.finding(conv + [gan_run("coordconv", s, 0.1) for s in range(2)], "gan")
    assert text.startswith("The CoordConv GAN works in no seed and the GAN (DCGAN-like) in every seed")
    assert "cannot be compared" in text
    text = generative.finding(conv + [gan_run("coordconv", s, 0.9, 3.0 + s * 0.1) for s in range(3)], "gan")
    assert text.startswith("Both GANs work in every seed") and "more spread" in text
    text = generative.finding([gan_run(m, s, 0.0) for m in ("conv", "coordconv") for s in range(2)], "gan")
    assert text.startswith("Neither GAN works")


def test_rl_finding_scopes_a_minatar_verdict_to_minatar():
    """A verdict from MinAtar's boards cannot speak for the paper's Atari games: the finding says so."""
    runs = [
        rl_run(env, model, seed, base + (5.0 if model == "coordconv" else 0.0) + seed)
        for env, base in (("MinAtar/Breakout-v1", 10.0), ("ALE/MsPacman-v5", 500.0))
        for model in ("conv", "coordconv")
        for seed in range(3)
    ]
    atari = [r for r in runs if r.summary["env"].startswith("ALE/")]
    assert rl.finding(atari).startswith("The paper's claim that CoordConv agents do better (6 of 9 Atari games")
    minatar = [r for r in runs if r.summary["env"].startswith("MinAtar/")]
    assert rl.finding(minatar).startswith("On MinAtar (10x10 boards, not the paper's Atari frames: a difference")
    assert rl.finding(runs).startswith("On MinAtar for 1 of the 2 games (10x10 boards")
