"""Every relative link in the project's Markdown points at a file that is there: a reader
who follows one must not land on nothing (README once linked a results file no commit had)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)  # code is not prose: its brackets are no links


def markdown_files() -> list[Path]:
    tracked = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / p for p in tracked]


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path):
    missing = [
        target
        for target in LINK.findall(CODE.sub("", doc.read_text()))
        if "://" not in target and not target.startswith("mailto:") and not (doc.parent / target).exists()
    ]
    assert not missing, f"{doc.relative_to(ROOT)} links to files that do not exist: {missing}"
