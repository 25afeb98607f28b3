"""The fast test tier (plain ``pytest``) keeps tests of every test module; ``-m slow`` is the long tier."""

import ast
import pathlib

TESTS = pathlib.Path(__file__).resolve().parent
# modules whose every test needs hardware the fast tier does not assume
HARDWARE_ONLY = {"test_gpu.py"}


def _marks(decorators: list[ast.expr]) -> set[str]:
    """The ``pytest.mark.NAME`` names among decorators (or a ``pytestmark`` value)."""
    names = set()
    for node in decorators:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                names.add(sub.attr)
    return names


def _fast_tests(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    module_marks: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            module_marks |= _marks([node.value])
    if module_marks & {"slow", "gpu"}:
        return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")
        and not _marks(node.decorator_list) & {"slow", "gpu"}
    ]


def test_every_test_module_keeps_a_test_in_the_fast_tier():
    modules = sorted(TESTS.glob("test_*.py"))
    assert len(modules) > 20, modules
    without = [p.name for p in modules if p.name not in HARDWARE_ONLY and not _fast_tests(p)]
    assert without == [], f"test modules with only slow (or gpu) tests: {without}; keep a fast test in each"


def test_the_check_sees_marks(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("import pytest\n\n@pytest.mark.slow\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n")
    assert _fast_tests(sample) == ["test_b"]
    sample.write_text("import pytest\npytestmark = [pytest.mark.gpu]\n\ndef test_b():\n    pass\n")
    assert _fast_tests(sample) == []
