"""Griffe extension: render the reST roles in the docstrings (``:class:`X```, ``:math:`...```) as code spans.

The docstrings follow torch's conventions (Google sections with reST roles), which Markdown would show raw.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|math):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    text = match[2]
    return f"`{text.rsplit('.', 1)[-1] if match[1] else text}`"


class RstRoles(griffe.Extension):
    """Rewrite ``:role:`target``` to a Markdown code span (``~`` keeps the last name only, as Sphinx does)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
