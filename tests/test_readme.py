import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_tables_match_committed_results():
    """Every generated block in README.md equals the committed results file it comes from."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "update_readme.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    commands = [line for line in block if line and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("coordconv reproduce")
    assert commands[1].endswith("python -m pytest -n auto")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci, ".ci/run must call the README's test command"
    # one project, one environment: both commands pin the same torch (and torchvision) builds, so running one
    # after the other, in either order, changes nothing the other installed
    pins = [sorted(re.findall(r"\b(torch(?:vision)?==[\w.+]+)", command)) for command in commands]
    assert pins[0] == pins[1] and any(p.startswith("torch==") for p in pins[0]), pins
    guide = (ROOT / "docs" / "getting-started.md").read_text()
    assert all(command in guide for command in commands), "docs/getting-started.md shows the README's two commands"


def test_readme_images_and_links_exist():
    import re

    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?:results|benchmarks|src|tests|docs|examples)/[^)#]+|CHANGELOG.md)\)", text)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing


def test_reports_regenerate_from_the_committed_runs(tmp_path):
    """Every committed table and report under results/ is what `coordconv reproduce` writes from the committed runs."""
    import shutil

    sys.path.insert(0, str(ROOT / "scripts"))
    import regenerate_reports

    for folder in regenerate_reports.FOLDERS:
        for command in (ROOT / folder).glob("*/command.txt"):
            task = command.parent.relative_to(ROOT)
            shutil.copytree(ROOT / task, tmp_path / task, ignore=shutil.ignore_patterns("*.pt", "*.safetensors"))
    before = regenerate_reports.tables(tmp_path)
    assert len(before) >= 8
    regenerate_reports.regenerate(tmp_path)
    assert regenerate_reports.tables(tmp_path) == before
    assert (tmp_path / "results" / "toy" / "classification" / "report.md").exists()
