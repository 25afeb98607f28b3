import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# "ci" is deterministic so that a CI run cannot fail by drawing a new example; "thorough" explores more.
settings.register_profile(
    "ci", max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


try:
    from PIL import Image as _PIL_IMAGE
except ImportError:  # pragma: no cover - Pillow comes with the extras
    _PIL_IMAGE = None
_PIL_OPEN = getattr(_PIL_IMAGE, "open", None)


def _restore_pil_open() -> None:
    # importing ultralytics replaces PIL.Image.open process-wide (on an unreadable image it tries to pip install
    # pi-heif and raises something else): give every test Pillow's own (the doctests' collection imports it too)
    if _PIL_IMAGE is not None and _PIL_IMAGE.open is not _PIL_OPEN:
        _PIL_IMAGE.open = _PIL_OPEN


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    _restore_pil_open()
    yield
    _restore_pil_open()


# --- devices and dtypes (kornia's way): `pytest --device cpu,cuda --dtype float32,float64,bfloat16` runs every test
# that takes the `device` / `dtype` fixtures once per combination. The default is the CPU suite: cpu, float64.
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="comma-separated devices for the layer tests (cpu,cuda)")
    parser.addoption(
        "--dtype", default="float64", help=f"comma-separated dtypes for the layer tests ({','.join(_DTYPES)})"
    )


def _parametrized_by_the_test(metafunc, name):
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if name in ([n.strip() for n in names.split(",")] if isinstance(names, str) else names):
            return True
    return False


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames and not _parametrized_by_the_test(metafunc, "device"):
        devices = metafunc.config.getoption("--device").split(",")
        if "cuda" in devices and not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda given, but torch.cuda.is_available() is False")
        metafunc.parametrize("device", [torch.device(d) for d in devices], ids=devices)
    if "dtype" in metafunc.fixturenames and not _parametrized_by_the_test(metafunc, "dtype"):
        names = metafunc.config.getoption("--dtype").split(",")
        unknown = [n for n in names if n not in _DTYPES]
        if unknown:
            raise pytest.UsageError(f"--dtype {','.join(unknown)}: expected some of {','.join(_DTYPES)}")
        metafunc.parametrize("dtype", [_DTYPES[n] for n in names], ids=names)
