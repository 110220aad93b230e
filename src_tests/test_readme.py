"""The README's Python quick start runs as written, and the documents describe the product."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def python_quick_start() -> str:
    """The first ```python block under the README's "## Python" heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README.md: no ```python block under '## Python'"
    return match.group(1)


@pytest.mark.slow  # the shipped network on the full sample photo, three times
def test_readme_python_quick_start_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the snippet must not depend on the checkout's files
    exec(compile(python_quick_start(), "README.md (## Python)", "exec"), {"__name__": "readme"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("vCDR 0.") and "px" in lines[0]
    assert lines[1] == "(1411, 1411) bool"
    assert lines[2] == "4"  # the shipped network's attention gates
    assert lines[-1].startswith("[0.") and lines[-1].count(",") == 1


def test_documents_speak_of_the_product():
    """How the weights were made lives in docs/experiments.md, dated; the other documents
    describe what a user gets, not the sessions that made it."""
    wording = re.compile(r"issue [0-9]|last stop|this stop|\bI saw\b|of ours|sees only the repository|"
                         r"minimum, not its aim", re.IGNORECASE)
    found = []
    for path in [README, *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "src_tests").glob("*.py"))]:
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if wording.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
