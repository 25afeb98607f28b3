"""The optional packages (pip extras) that each command needs, checked before the command does any work.

``pip install torch-coordconv`` installs the layers and the ``coordconv`` command with torch alone; the
experiments need the extras of ``pyproject.toml``. A command calls :func:`require` first, so that a missing
package ends it with one line that names the extra to install, before anything trains or is written::

    coordconv: error: coordconv train classification needs numpy, safetensors:
    pip install "torch-coordconv[experiments]"

(one line on the terminal).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

__all__ = ["DATASET_NEEDS", "EXTRAS", "PIP_NAMES", "MissingExtraError", "missing", "require"]

#: import name -> the extra of ``pyproject.toml`` that installs it (PIL comes with matplotlib and torchvision)
EXTRAS: dict[str, str] = {
    "numpy": "experiments",
    "matplotlib": "experiments",
    "safetensors": "experiments",
    "scipy": "experiments",
    "PIL": "experiments",
    "torchvision": "detection",
    "mlxtend": "detection",
    "torchmetrics": "detection",
    "pycocotools": "detection",
    "gymnasium": "rl",
    "ale_py": "rl",
    "stable_baselines3": "rl",
    "minatar": "rl",
    "cv2": "rl",
    "ray": "sweep",
    "tyro": "experiments",
}
#: the optional packages each ``coordconv dataset`` kind imports (PIL: matplotlib's PNG writer, spatial's images)
DATASET_NEEDS: dict[str, list[str]] = {
    "notsoclevr": ["numpy", "matplotlib", "PIL"],
    "sortofclevr": ["numpy", "matplotlib", "PIL"],
    "spatial": ["numpy", "PIL"],
}
#: the pip names of import names that differ from them, for the message
PIP_NAMES: dict[str, str] = {
    "PIL": "pillow",
    "cv2": "opencv-python-headless",
    "ale_py": "ale-py",
    "stable_baselines3": "stable-baselines3",
}
#: extras that install the experiments extra too
_WITH_EXPERIMENTS = ("detection", "rl", "sweep")


class MissingExtraError(ImportError):
    """A command needs packages that are not installed; the message says which extra installs them."""


def missing(modules: Iterable[str]) -> list[str]:
    """The ``modules`` (import names) that cannot be imported, in order, without importing any of them."""
    absent = []
    for name in dict.fromkeys(modules):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or blocked package
            found = False
        if not found:
            absent.append(name)
    return absent


def require(command: str, modules: Iterable[str]) -> None:
    """Check that ``command`` (``"coordconv train classification"``) can import ``modules``.

    Raises:
        MissingExtraError: one line naming the missing modules and the ``pip install`` that adds them.

    Example:
        >>> require("coordconv demo", ["torch"])
        >>> try:
        ...     require("coordconv demo", ["torch", "no_such_package"])
        ... except MissingExtraError as e:
        ...     print(e)
        coordconv demo needs no_such_package: pip install "torch-coordconv[all]"
    """
    absent = missing(modules)
    if not absent:
        return
    extras = list(dict.fromkeys(EXTRAS.get(name, "all") for name in absent))
    if any(extra in _WITH_EXPERIMENTS for extra in extras) and "experiments" in extras:
        extras.remove("experiments")
    raise MissingExtraError(
        f"{command} needs {', '.join(PIP_NAMES.get(name, name) for name in absent)}: "
        f'pip install "torch-coordconv[{",".join(sorted(extras))}]"'
    )
