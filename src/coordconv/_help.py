"""The ``coordconv`` command's help and errors: plain text from reST docstrings, one-line errors.

Docstrings serve both the API documentation (reST) and ``--help`` (plain text): :func:`rst_to_text` turns
``literals``, roles such as ``:func:`a.b``` and ``*emphasis*`` into plain words, and :class:`HelpFormatter`
wraps paragraphs while keeping bullet lists one item per line. :class:`Parser` uses both, and prints an
argument error as one line with a pointer to ``--help`` instead of the usage block.
"""

from __future__ import annotations

import argparse
import inspect
import re
import textwrap
from typing import Any, NoReturn

__all__ = ["HelpFormatter", "Parser", "rst_to_text"]

# one pass over the text, so that nothing inside a ``literal`` is read as markup
_MARKUP = re.compile(
    r"``(?P<literal>[^`]+?)``"
    r"|:(?:py:)?(?P<role>\w+):`(?P<target>[^`]+)`"
    r"|`(?P<tilde>~[^`]+)`"
    r"|(?<![\w*\\])\*(?P<emphasis>[^*\s](?:[^*]*[^*\s])?)\*(?![\w*])"
)
_TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^>]+)>$")
_BULLET = re.compile(r"^(?:[*-]|\d+\.) ")


def _target_text(role: str, target: str) -> str:
    titled = _TITLED.match(target)
    if titled:
        return titled["title"]
    target = target.lstrip("~!").lstrip(".")
    # a module by its dotted name; a function, class, ... by its own name
    return target if role == "mod" else target.rsplit(".", 1)[-1]


def _replace(match: re.Match[str]) -> str:
    if match["literal"] is not None:
        return match["literal"]
    if match["role"] is not None:
        return _target_text(match["role"], match["target"])
    if match["tilde"] is not None:
        return _target_text("", match["tilde"])
    return match["emphasis"]


def rst_to_text(text: str) -> str:
    """``text`` (reST, as in docstrings) as plain text; the line structure is kept.

    ``literal`` and ``*emphasis*`` lose their marks, a role keeps its target (a module its dotted name, anything
    else its last name: ``:func:`a.b``` is ``b``), ``.. note::`` becomes ``Note:``, and a paragraph's closing
    ``::`` a colon.

    Example:
        >>> rst_to_text("See :func:`~coordconv.coords.coord_grid` and ``with_r=True``; *solved* means::")
        'See coord_grid and with_r=True; solved means:'
    """
    text = re.sub(r"^(\s*)\.\. (\w+)::", lambda m: f"{m[1]}{m[2].capitalize()}:", text, flags=re.MULTILINE)
    text = re.sub(r"(\S)::$", r"\1:", text, flags=re.MULTILINE)
    text = re.sub(r"\s+::$", "", text, flags=re.MULTILINE)
    return _MARKUP.sub(_replace, text)


def _fill_paragraph(paragraph: str, width: int, indent: str) -> str:
    lines = paragraph.splitlines()
    if any(_BULLET.match(line.lstrip()) for line in lines):
        # a bullet list: one item per line (wrapped under its own text), continuation lines joined to their item
        items: list[tuple[int, str, list[str]]] = []
        for line in lines:
            stripped = line.lstrip()
            bullet = _BULLET.match(stripped)
            if bullet or not items:
                lead = len(line) - len(stripped)
                mark = bullet.group(0) if bullet else ""
                items.append((lead, mark, [stripped[len(mark) :]]))
            else:
                items[-1][2].append(stripped)
        return "\n".join(
            textwrap.fill(
                " ".join(words),
                width,
                initial_indent=indent + " " * lead + mark,
                subsequent_indent=indent + " " * (lead + len(mark)),
                break_on_hyphens=False,
            )
            for lead, mark, words in items
        )
    if all(line.startswith(" ") for line in lines):
        # an indented block (an example, a continuation of a list item): as written
        return "\n".join(indent + line for line in lines)
    return textwrap.fill(
        " ".join(paragraph.split()), width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    )


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions as paragraphs (wrapped) and bullet lists (one item per line); help strings as plain text."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = inspect.cleandoc(rst_to_text(text))
        paragraphs = re.split(r"\n[ \t]*\n", text)
        return "\n\n".join(_fill_paragraph(p, width, indent) for p in paragraphs if p.strip())

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(rst_to_text(text), width)


class Parser(argparse.ArgumentParser):
    """An argument parser whose help is plain text (:class:`HelpFormatter`) and whose errors are one line.

    An error prints ``PROG: error: MESSAGE (see PROG --help)`` and exits with status 2, without the usage block.
    Subcommands (``add_subparsers``) get the same class.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        for key in ("description", "epilog"):
            if kwargs.get(key):
                kwargs[key] = rst_to_text(kwargs[key])
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
