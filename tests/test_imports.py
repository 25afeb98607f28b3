"""Imports run one way: cli -> commands -> sweep -> reproduce -> experiments -> models/data/report -> runtime -> lib."""

import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def _layer(module: str) -> tuple[int, str]:
    """(rank, group): a module may import only modules of a higher rank (or its own group)."""
    parts = module.split(".")
    if parts[:2] != ["coordconv", "repro"]:
        return (0, "cli") if module == "coordconv.cli" else (8, "library")
    sub = parts[2] if len(parts) > 2 else ""
    ranks = {
        "commands": 1, "sweep": 2, "reproduce": 3, "experiments": 4, "models": 5, "data": 5, "report": 5,
        "runtime": 6, "": 7,
    }  # fmt: skip
    return ranks[sub], sub


def _imports(path: pathlib.Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("coordconv")}


def test_imports_run_one_way():
    wrong = []
    for path in sorted((SRC / "coordconv").rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        rank, group = _layer(module)
        for target in _imports(path, module):
            target_rank, target_group = _layer(target)
            if target_group != group and target_rank <= rank:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_experiment_modules_are_short_and_their_mains_read_top_to_bottom():
    """Issue 29: no experiment module over 400 lines; no closure or ``nonlocal`` inside an experiment's ``main``."""
    long, nested = [], []
    for path in sorted((SRC / "coordconv" / "repro" / "experiments").glob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                inner = [n for n in ast.walk(node) if n is not node and isinstance(n, ast.FunctionDef | ast.Lambda)]
                inner += [n for n in ast.walk(node) if isinstance(n, ast.Nonlocal)]
                nested += [f"{path.name}:{n.lineno}" for n in inner]
    assert not long, long
    assert not nested, nested
