"""Imports run one way: cli -> commands -> reproduce/sweep -> experiments -> models/data/report -> runtime -> lib."""

import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def _layer(module: str) -> tuple[int, str]:
    """(rank, group): a module may import only modules of a higher rank (or its own group)."""
    parts = module.split(".")
    if parts[:2] != ["coordconv", "repro"]:
        return (0, "cli") if module == "coordconv.cli" else (7, "library")
    sub = parts[2] if len(parts) > 2 else ""
    ranks = {
        "commands": 1, "reproduce": 2, "sweep": 2, "experiments": 3, "models": 4, "data": 4, "report": 4,
        "runtime": 5, "": 6,
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
