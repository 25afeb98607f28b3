"""MkDocs hook: serve the committed figures under results/ with the site, so pages show them without copies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent


def on_files(files: Files, config: Any) -> Files:
    """Add results/**/*.png (the figures that pages reference as ../results/...) to the site's files."""
    for path in sorted((ROOT / "results").rglob("*.png")):
        files.append(
            File(
                str(path.relative_to(ROOT)),
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
