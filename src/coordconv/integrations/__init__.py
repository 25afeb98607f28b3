"""Drop-ins for detection frameworks.

ultralytics: ``coordconv.integrations.ultralytics``; OpenMMLab (mmcv, mmdet): ``coordconv.integrations.mmcv``.

Each submodule imports its framework only when it is imported itself; without the framework the import fails
with one line naming the extra: ``pip install "torch-coordconv[frameworks]"``.
"""

import importlib
from types import ModuleType

__all__: list[str] = []


def _require(package: str, integration: str) -> ModuleType:
    """Import ``package`` or fail in one line that names the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ImportError(
            f"coordconv.integrations.{integration} needs {package.split('.')[0]}, which is not installed: "
            'pip install "torch-coordconv[frameworks]"'
        ) from error
