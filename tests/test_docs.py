"""The documentation cannot drift from the code and the committed results.

Generated pages and include blocks are checked by tests/test_readme.py (scripts/update_readme.py --check covers
README.md and docs/); this file checks the reference's coverage and the links. The site itself is built with
warnings as errors by `mkdocs build --strict` in .ci/run.
"""

import inspect
import pathlib
import re

import pytest

import coordconv

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_every_public_name_has_a_reference_entry():
    api = (DOCS / "reference" / "api.md").read_text()
    entries = set(re.findall(r"^::: coordconv\.(\S+)$", api, re.MULTILINE))
    from coordconv import ports  # a public submodule: other implementations' weights

    assert entries == set(coordconv.__all__) | {f"ports.{name}" for name in ports.__all__}


@pytest.mark.parametrize("name", sorted(set(coordconv.__all__) - {"__version__"}))
def test_every_public_name_has_an_example(name):
    doc = inspect.getdoc(getattr(coordconv, name)) or ""
    assert "Example:" in doc and ">>> " in doc, f"{name}'s docstring has no Example: section"


@pytest.mark.parametrize(
    "name", [n for n in coordconv.__all__ if n.startswith(("CoordConv", "AddCoords", "add_coords"))]
)
def test_every_layer_documents_its_shapes(name):
    assert "Shape:" in (inspect.getdoc(getattr(coordconv, name)) or "")


def test_nav_lists_every_page():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    listed = set(re.findall(r":\s*(\S+\.md)\s*$", nav, re.MULTILINE))
    assert pages == listed


def test_relative_links_and_images_exist():
    missing = []
    for page in DOCS.rglob("*.md"):
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            # figures under results/ are served from the repository root by docs/hooks.py
            resolved = (page.parent / target).resolve()
            in_site = resolved.is_relative_to(DOCS) and (ROOT / resolved.relative_to(DOCS)).exists()
            if not (resolved.exists() or in_site):
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert not missing, missing


def test_cli_reference_covers_every_command():
    reference = (DOCS / "reference" / "cli.md").read_text()
    for command in ("demo", "bench layer", "inspect", "train classification", "train rl", "reproduce", "sweep"):
        assert f"## `coordconv {command}`" in reference
