"""What the help, the docs and the README say a default is, is the default the code uses."""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from coordconv.repro import commands, reproduce, sweep
from coordconv.repro.data import notsoclevr, sortofclevr, spatial_folder
from coordconv.repro.experiments import imagenet, inspect_run, registry
from coordconv.repro.experiments.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def test_no_help_text_types_a_default_by_hand():
    """tyro shows every option's default beside its help: a help text that states one as well would go stale."""
    checked = 0
    option_modules = [commands, registry, inspect_run, reproduce, sweep, notsoclevr, sortofclevr, spatial_folder]
    sources = [*map(inspect.getsource, option_modules), *(inspect.getsource(e.module) for e in REGISTRY.values())]
    for source in sources:
        # the docstring under a dataclass field (`    name: type = value` then `    """help"""`)
        for doc in re.findall(r'^    \w+: [^\n]+\n    """(.*?)"""', source, re.MULTILINE | re.DOTALL):
            assert "(default:" not in doc, doc
            checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    ("command", "writer", "renamed"),
    [(notsoclevr.Options, notsoclevr.write, {"split_seed": "seed"}), (sortofclevr.Options, sortofclevr.write, {}),
     (spatial_folder.Options, spatial_folder.write, {})],
)  # fmt: skip
def test_dataset_commands_default_to_what_their_writers_do(command, writer, renamed):
    defaults = {p.name: p.default for p in inspect.signature(writer).parameters.values() if p.default is not p.empty}
    options = [f for f in dataclasses.fields(command) if f.name not in ("out", "overwrite")]
    assert options
    for field in options:
        assert defaults[renamed.get(field.name, field.name)] == field.default, field.name


def test_the_offline_imagenet_data_set_is_what_the_docs_and_dataset_spatial_describe():
    cfg, grid = imagenet.Config(), spatial_folder.write.__kwdefaults__["grid"]
    assert cfg.offline_grid == grid
    text = " ".join((ROOT / "docs" / "reproduction" / "imagenet.md").read_text().split())
    assert f"{grid}x{grid} grid" in text and f"({grid * grid} classes" in text
    assert f"{cfg.offline_train:,} training and {cfg.offline_val:,} validation" in text
