import json
import pathlib
import subprocess
import sys

import coordconv

SNAPSHOT = pathlib.Path(__file__).with_name("api_surface.json")


def test_public_api_matches_snapshot():
    """Removing or renaming a public name must be a deliberate change of tests/api_surface.json."""
    expected = json.loads(SNAPSHOT.read_text())
    assert sorted(coordconv.__all__) == expected["coordconv"]
    for name in coordconv.__all__:
        assert hasattr(coordconv, name)


def test_import_does_not_pull_optional_dependencies():
    code = (
        "import sys, coordconv, coordconv.cli; "
        "heavy = {'matplotlib', 'torchvision', 'gymnasium', 'stable_baselines3', 'ray', 'safetensors', "
        "'onnx', 'onnxruntime'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
