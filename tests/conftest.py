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


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


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
