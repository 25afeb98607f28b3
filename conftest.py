"""Collection rules for the doctests under src/ (the tests' fixtures live in tests/conftest.py).

The framework drop-ins import their framework when imported, so their doctests are collected only where it is
installed (the `frameworks` extra, part of `dev`); tests/test_integrations.py skips with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_FRAMEWORK_OF = {"ultralytics.py": "ultralytics", "mmcv.py": "mmengine"}


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Skip a framework drop-in's module when its framework is not installed."""
    package = _FRAMEWORK_OF.get(collection_path.name)
    if package is None or collection_path.parent.name != "integrations":
        return None
    return True if importlib.util.find_spec(package) is None else None
