"""Configs are frozen dataclasses with a docstring under each field; the command line is generated from them."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import math
import os
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from coordconv._help import rst_to_text

__all__ = [
    "SEED_LIMIT",
    "add_config_arguments",
    "complete_config",
    "config_from_args",
    "describe_work",
    "field_docs",
    "finite_float",
    "job_count",
    "seed_value",
    "thread_count",
    "to_dict",
    "validate",
]

C = TypeVar("C")
#: seeds are in ``range(SEED_LIMIT)``: what NumPy's legacy seeding takes, and far from torch's 64-bit limit
#: after the experiments' arithmetic on them (``seed * 1_000_003 + step``)
SEED_LIMIT = 2**32


def finite_float(text: str) -> float:
    """Parse a finite float (an ``argparse`` type): ``nan`` and ``inf`` are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number")
    return value


def seed_value(text: str) -> int:
    """Parse a seed (an ``argparse`` type): an integer in ``0 .. SEED_LIMIT - 1``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer from 0 to {SEED_LIMIT - 1}")
    return value


def _count(text: str, what: str, low: int) -> int:
    """An integer from ``low`` to this machine's CPU count (an ``argparse`` type's body)."""
    cpus = os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not low <= value <= cpus:
        raise argparse.ArgumentTypeError(
            f"invalid {what} {text!r}: expected an integer from {low} to {cpus} (this machine's CPUs)"
            + (", 0 for torch's default" if low == 0 else "")
        )
    return value


def thread_count(text: str) -> int:
    """Parse ``--threads`` of a command that runs here (an ``argparse`` type): 0 (torch's default) to the CPUs."""
    return _count(text, "threads", 0)


def job_count(text: str) -> int:
    """Parse ``--jobs`` (an ``argparse`` type): 1 to this machine's CPUs."""
    return _count(text, "jobs", 1)


def _is_seed(name: str) -> bool:
    return name == "seed" or name.endswith("_seed")


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (the string literal after its annotation)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _parser_for(annotation: Any) -> tuple[dict[str, Any], str]:
    """The argparse keyword arguments and metavar for one field type."""
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return {"type": type(choices[0]), "choices": choices}, "{" + ",".join(map(str, choices)) + "}"
    if get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            kwargs, metavar = _parser_for(inner[0])
            convert = kwargs["type"]
            kwargs["type"] = lambda text: None if text.lower() == "none" else convert(text)
            return kwargs, metavar
    if get_origin(annotation) is tuple:
        item = get_args(annotation)[0]
        return {"type": item, "nargs": "+"}, item.__name__.upper()
    if annotation is float:
        return {"type": finite_float}, "FLOAT"
    if annotation in (int, str):
        return {"type": annotation}, annotation.__name__.upper()
    raise TypeError(f"unsupported config field type {annotation!r}")


def _shown(value: Any) -> str:
    """A field's default as the help shows it (``%`` escaped for argparse)."""
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, tuple | list):
        text = " ".join(map(str, value)) or "none"
    elif value == "":
        text = '""'
    else:
        text = str(value)
    return text.replace("%", "%%")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` option per dataclass field (``--flag/--no-flag`` for bools).

    Options default to "not given", so that only what the user types overrides a preset.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(
        f"{cls.__name__} fields (override the preset)",
        "Each option overrides the preset's value. A field's default is its value without a preset; the presets "
        "change some fields (see Presets below).",
    )
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.init:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = rst_to_text(docs.get(field.name, ""))
        if field.default is not dataclasses.MISSING:
            help_text += f" (default: {_shown(field.default)})"
        annotation = hints[field.name]
        if annotation is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
            continue
        kwargs, metavar = _parser_for(annotation)
        group.add_argument(flag, dest=field.name, default=argparse.SUPPRESS, metavar=metavar, help=help_text, **kwargs)


def config_from_args(base: C, args: argparse.Namespace | Mapping[str, Any]) -> C:
    """``base`` with every field that ``args`` sets replaced (tuples for ``nargs`` fields)."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    names = {f.name for f in dataclasses.fields(base)}  # type: ignore[arg-type]
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    return dataclasses.replace(base, **changes)  # type: ignore[type-var]


def to_dict(config: Any) -> dict[str, Any]:
    """A config as a JSON-ready dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def complete_config(cls: type, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A run's stored config (its ``config.json``) with every field of ``cls`` that it lacks filled in.

    A field the run predates takes the value runs had before it: ``cls.LEGACY_DEFAULTS[name]`` where the config
    class names it there (a class attribute: the fields added with, or changed to, a default that differs from
    what earlier runs did), else the field's default. Fields the stored config has are kept as they are, those
    that ``cls`` no longer has too (:func:`~coordconv.repro.runtime.rundir.config_changes` ignores them).
    """
    legacy = getattr(cls, "LEGACY_DEFAULTS", {})
    return {**to_dict(cls()), **{k: v for k, v in legacy.items() if k not in stored}, **stored}


def validate(config: Any, checks: Mapping[str, bool | tuple[bool, str]]) -> None:
    """Check a config's fields, raising on the first invalid one.

    Every float field must be finite and every seed in ``range(SEED_LIMIT)``; then ``checks`` (field name ->
    whether its value is valid, and the allowed values: ``(lr > 0, "> 0")``) and every ``Literal`` field. (The
    thread count is also checked where the run starts: :func:`coordconv.repro.runtime.seeding.set_threads`.)
    The message reads ``invalid lr: -0.1; expected a finite number > 0``.

    Raises:
        ValueError: naming the first invalid field, its value and what was expected.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if hints[f.name] is float and not (isinstance(value, int | float) and math.isfinite(value)):
            raise ValueError(f"invalid {f.name}: {value!r}; expected a finite number")
        if _is_seed(f.name) and hints[f.name] is int and not 0 <= value < SEED_LIMIT:
            raise ValueError(f"invalid {f.name}: {value!r}; expected a seed from 0 to {SEED_LIMIT - 1}")
    for name, check in checks.items():
        ok, allowed = check if isinstance(check, tuple) else (check, "")
        if not ok:
            hint = hints.get(name)
            kind = "a finite number " if hint is float else "an integer " if hint is int else ""
            expected = f"; expected {kind}{allowed}" if allowed else ""
            raise ValueError(f"invalid {name}: {getattr(config, name)!r}{expected}")
    for f in dataclasses.fields(config):
        hint = hints[f.name]
        if get_origin(hint) is Literal and getattr(config, f.name) not in get_args(hint):
            raise ValueError(f"invalid {f.name}: {getattr(config, f.name)!r}; expected one of {get_args(hint)}")


def describe_work(configs: list[Any]) -> str:
    """How much training ``configs`` ask for, e.g. ``"4 run(s), 2,200 epochs in all"`` (epochs and steps summed)."""
    totals: dict[str, int] = {}
    for config in configs:
        for name, unit in (("epochs", "epochs"), ("steps", "steps"), ("total_steps", "environment steps")):
            value = getattr(config, name, None)
            if isinstance(value, int):
                totals[unit] = totals.get(unit, 0) + value
    amounts = " and ".join(f"{n:,} {unit}" for unit, n in totals.items())
    return f"{len(configs)} run(s)" + (f", {amounts} in all" if amounts else "")
