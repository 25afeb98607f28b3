"""Every ```python block of README.md and docs/**/*.md runs as pasted, in order, one namespace per file.

A reader copies a page's blocks one after another into one interpreter, so each file's blocks run in order in
one shared namespace (fresh per file), in a temporary working directory. Exceptions, each visible in the
Markdown:

- a block right after ``<!-- not run: REASON -->`` is not run (it needs a data set, a GPU, hours or the
  network); the reason is required, and such blocks are kept few (``MAX_NOT_RUN``);
- a block inside ``<!-- include: PATH.py -->`` is a copy of that file (``scripts/update_readme.py --check``),
  which its own tests run: ``tests/test_examples.py`` runs ``examples/*.py``;
- a block that imports an optional package (``OPTIONAL``) that is not installed stops the file's run there
  with a skip that names the package (later blocks may use its names).

Tracebacks point at the Markdown file's own line numbers.
"""

import ast
import dataclasses
import importlib.util
import pathlib
import re
import traceback

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# packages an example may import that `pip install torch-coordconv` does not bring (the extras do)
OPTIONAL = frozenset(
    {"gymnasium", "matplotlib", "minatar", "numpy", "onnx", "onnxruntime", "onnxscript", "ray", "safetensors"}
    | {"openvino", "stable_baselines3", "timm", "torchvision", "ultralytics", "mmcv", "mmengine"}
)
MAX_NOT_RUN = 3

FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
NOT_RUN = re.compile(r"^<!-- not run:(?P<reason>.*?)-->$")
INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+) -->$")


@dataclasses.dataclass(frozen=True)
class Block:
    page: pathlib.Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_run: str | None  # the reason, if marked not run
    included: str | None  # the included file, inside an include block

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: pathlib.Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with the marker before each and the include it sits in."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    previous = ""  # the last non-blank line outside a block
    included = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        fence = FENCE.match(line)
        if fence is None:
            if INCLUDE.match(line):
                included = INCLUDE.match(line)["path"]
            elif line == "<!-- end include -->":
                included = None
            if line:
                previous = line
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence[1]), None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: unclosed code fence"
        marker = NOT_RUN.match(previous)
        not_run = marker["reason"].strip() if marker else None
        found.append(Block(page, i + 1, fence[2].lower(), "\n".join(lines[i + 1 : end]) + "\n", not_run, included))
        previous = lines[end].strip()
        i = end + 1
    return found


def python_blocks(page: pathlib.Path) -> list[Block]:
    return [b for b in blocks(page) if b.language == "python"]


def runnable(page: pathlib.Path) -> list[Block]:
    return [b for b in python_blocks(page) if b.not_run is None and b.included is None]


RUNNABLE_PAGES = [p for p in PAGES if runnable(p)]


def _imported_packages(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _where_it_failed(error: BaseException, page: pathlib.Path) -> str:
    """The traceback's frames in the page, then the error: the library's internals are not the point here."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(page)]
    return "".join(traceback.format_list(frames) + traceback.format_exception_only(error))


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE_PAGES])
def test_python_blocks_run_as_pasted(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything an example writes lands here, not in the repository
    namespace: dict[str, object] = {"__name__": "__main__"}
    for ran, block in enumerate(runnable(page)):
        missing = sorted(p for p in _imported_packages(block.code) & OPTIONAL if importlib.util.find_spec(p) is None)
        if missing:
            pytest.skip(f"{block.where} needs {', '.join(missing)} (ran the {ran} blocks before it)")
        # padded with blank lines so that tracebacks give the Markdown file's line numbers
        code = compile("\n" * block.line + block.code, str(page), "exec")
        failure = None
        try:
            exec(code, namespace)
        except Exception as error:
            failure = _where_it_failed(error, page)
        if failure is not None:  # failed outside the except block, so that no chained traceback is printed
            pytest.fail(f"the block at {block.where} fails when pasted after the {ran} before it:\n{failure}", False)


def test_not_run_blocks_give_a_reason_and_are_few():
    marked = [b for p in PAGES for b in blocks(p) if b.not_run is not None]
    assert all(b.language == "python" for b in marked), [b.where for b in marked if b.language != "python"]
    assert all(b.not_run for b in marked), [f"{b.where}: <!-- not run: --> needs a reason" for b in marked]
    assert len(marked) <= MAX_NOT_RUN, [f"{b.where}: {b.not_run}" for b in marked]


def test_every_not_run_marker_precedes_a_block():
    for page in PAGES:
        markers = len(re.findall(r"^<!-- not run:", page.read_text(), re.MULTILINE))
        assert markers == sum(b.not_run is not None for b in blocks(page)), f"{page.relative_to(ROOT)}: stray marker"


def test_included_python_blocks_are_run_by_other_tests():
    tested = (ROOT / "tests" / "test_examples.py").read_text()
    for block in (b for p in PAGES for b in python_blocks(p) if b.included):
        path = pathlib.PurePosixPath(block.included)
        assert path.suffix == ".py", f"{block.where}: a python block includes {path}"
        if path.parent.name == "examples":
            assert f'"{path.name}"' in tested, f"{block.where}: tests/test_examples.py does not run {path}"
        else:
            assert path.parent.name == "tests", f"{block.where}: {path} is run by no test"
            users = [t for t in (ROOT / "tests").glob("test_*.py") if path.stem in t.read_text()]
            assert users, f"{block.where}: no test uses {path}"


def test_python_blocks_are_fenced_as_python():
    """Blocks fenced ```py, ```pycon or ```python3 would escape the test above."""
    odd = [b.where for p in PAGES for b in blocks(p) if b.language.startswith("py") and b.language != "python"]
    assert not odd, odd


def test_the_pages_have_python_blocks():
    assert ROOT / "README.md" in RUNNABLE_PAGES
    assert sum(len(python_blocks(p)) for p in PAGES) >= 10


def test_blocks_are_found_with_their_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n```python\nx = 1\n```\n\n<!-- not run: needs a GPU -->\n\n```python\ny = 2\n```\n"
        "<!-- include: examples/a.py -->\n```python\nz = 3\n```\n<!-- end include -->\n"
        "````text\n```python\nnot a block\n```\n````\n<!-- not run: -->\n```bash\nls\n```\n"
    )
    found = blocks(page)
    assert [(b.line, b.language, b.code, b.not_run, b.included) for b in found] == [
        (3, "python", "x = 1\n", None, None),
        (9, "python", "y = 2\n", "needs a GPU", None),
        (13, "python", "z = 3\n", None, "examples/a.py"),
        (17, "text", "```python\nnot a block\n```\n", None, None),
        (23, "bash", "ls\n", "", None),
    ]


def test_coordconv_commands_in_bash_blocks_parse():
    """Bash blocks are not run, but every ``coordconv ...`` command shown must be one the parser accepts."""
    import contextlib
    import io
    import shlex

    from coordconv.cli import parse

    checked, refused = 0, []
    for block in (b for p in PAGES for b in blocks(p) if b.language == "bash"):
        for line in block.code.splitlines():
            for command in line.split("&&"):
                words = shlex.split(command, comments=True)
                if not words or pathlib.PurePosixPath(words[0]).name != "coordconv" or "..." in words:
                    continue  # not a coordconv command, or one with elided options
                out = io.StringIO()
                try:
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                        parse(words[1:])
                except SystemExit as exit:
                    if exit.code != 0:  # --help exits with 0
                        refused.append(f"{block.where}: {' '.join(words)}\n{out.getvalue()}")
                checked += 1
    assert not refused, "\n".join(refused)
    assert checked >= 20
