"""Refresh the parts of README.md that are generated from committed results.

A block ``<!-- include: PATH -->`` ... ``<!-- end include -->`` in README.md is replaced by the content of
PATH (relative to the repository root); ``<!-- include: PATH as python -->`` shows it as a code block. Run
``python scripts/update_readme.py`` after committing new results;
``--check`` exits 1 when README.md is out of date (the tests run it), so that no table drifts from the run
that produced it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"(<!-- include: (?P<path>[^ ]+)(?: as (?P<lang>\w+))? -->\n)(?P<body>.*?)(<!-- end include -->)", re.DOTALL
)


def render(readme: str, root: Path = ROOT) -> str:
    """README text with every include block refreshed from its file."""

    def fill(match: re.Match[str]) -> str:
        path = root / match["path"]
        if not path.is_file():
            raise FileNotFoundError(f"README includes {match['path']}, which does not exist")
        body = path.read_text()
        body = body if body.endswith("\n") else body + "\n"
        if match["lang"]:  # a source file, shown as a code block
            body = f"```{match['lang']}\n{body}```\n"
        return f"{match[1]}{body}{match[5]}"

    return BLOCK.sub(fill, readme)


def main(argv: list[str] | None = None) -> int:
    """Refresh README.md, or with --check only report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    readme_path = ROOT / "README.md"
    current = readme_path.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md is out of date: run python scripts/update_readme.py", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        tmp = readme_path.with_name(".README.md.tmp")
        tmp.write_text(fresh)
        tmp.replace(readme_path)
        print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
