"""What the help, the docs and the README say a default is, is the default the code uses."""

import argparse
import inspect
import re
from pathlib import Path

import pytest

from coordconv.cli import build_parser
from coordconv.repro.data import notsoclevr, sortofclevr, spatial_folder
from coordconv.repro.experiments import imagenet
from coordconv.repro.experiments.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def _parsers(parser: argparse.ArgumentParser, name: str = "coordconv"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


def _options():
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.help and action.help is not argparse.SUPPRESS:
                yield name, action


def _same(shown: str, value: object) -> bool:
    if isinstance(value, bool):
        return shown.lower() in ((str(value).lower(), "on", "yes") if value else (str(value).lower(), "off", "no"))
    if isinstance(value, int | float):
        try:
            return float(shown.replace(",", "").replace("_", "")) == value
        except ValueError:
            return False
    if isinstance(value, list | tuple):
        return shown.replace(",", " ").split() == [str(v) for v in value]
    return shown.strip("'\"`") == str(value)


def _default(name: str, action: argparse.Action) -> object:
    """The option's default; for a config field of ``train TASK`` (left unset so the preset applies), the field's."""
    if action.default is not argparse.SUPPRESS:
        return action.default
    task = name.removeprefix("coordconv train ")
    return getattr(REGISTRY[task].module.Config(), action.dest)


def test_every_default_a_help_text_states_is_the_default():
    checked = 0
    for name, action in _options():
        for shown in re.findall(r"\(default:? ([^);]+)[);]", action.help):
            default = _default(name, action)
            if default is None or not re.fullmatch(r"[-\w.,'\"]+|[-\d. ]+", shown.strip()):
                continue  # said in words: "the five MinAtar games", "the usable CPUs divided by --threads"
            flag = action.option_strings[0]
            assert _same(shown.strip(), default), f"{name} {flag}: says {shown!r}, is {default!r}"
            checked += 1
    assert checked >= 30


@pytest.mark.parametrize(
    ("command", "writer", "renamed"),
    [("notsoclevr", notsoclevr.write, {"split_seed": "seed"}), ("sortofclevr", sortofclevr.write, {}),
     ("spatial", spatial_folder.write, {})],
)  # fmt: skip
def test_dataset_commands_default_to_what_their_writers_do(command, writer, renamed):
    parser = dict(_parsers(build_parser()))[f"coordconv dataset {command}"]
    defaults = {p.name: p.default for p in inspect.signature(writer).parameters.values() if p.default is not p.empty}
    options = [a for a in parser._actions if a.option_strings and a.dest not in ("help", "out", "overwrite")]
    assert options
    for action in options:
        assert defaults[renamed.get(action.dest, action.dest)] == action.default, action.dest


def test_the_offline_imagenet_data_set_is_what_the_docs_and_dataset_spatial_describe():
    cfg, grid = imagenet.Config(), spatial_folder.write.__kwdefaults__["grid"]
    assert cfg.offline_grid == grid
    text = " ".join((ROOT / "docs" / "reproduction" / "imagenet.md").read_text().split())
    assert f"{grid}x{grid} grid" in text and f"({grid * grid} classes" in text
    assert f"{cfg.offline_train:,} training and {cfg.offline_val:,} validation" in text
