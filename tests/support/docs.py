"""The shell blocks of README.md and docs/*.md, and running one as written.

Each fenced shell block (```sh, bash, shell or console; or an unlabelled one that starts
with a `$ ` prompt) is preceded by one HTML comment that says what becomes of it:

    <!-- block: ID -->           a test runs it: run_block("docs/install.md", "ID")
    <!-- not-run: the reason --> it cannot run here, and why

tests/unit/test_docs_run.py fails on a block with neither, on an ID no test passes to
run_block (found by reading the tests' source), and on a block that uses a variable it does
not set. Each doc's owner annotates that doc; there is no list to keep elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`]*)$")
ANNOTATION = re.compile(r"^\s*<!--\s*(?P<kind>block|not-run):\s*(?P<value>.*?)\s*-->\s*$")
# Variables a shell block may use without setting them: the shell's and the login's own.
FROM_THE_SHELL = frozenset({"HOME", "PATH", "PWD", "OLDPWD", "USER", "SHELL", "TMPDIR", "UID"})
# Commands that set variables for the lines after them (`eval "$(juliarun cluster env)"`);
# tests/integration/test_cluster_state.py checks that the command prints exactly these.
SETS_BY_COMMAND: dict[str, frozenset[str]] = {"juliarun cluster env": frozenset({"PATH", "KUBECONFIG"})}


def docs() -> list[Path]:
    """The documents whose shell blocks must run: README.md, CONTRIBUTING.md, docs/*.md."""
    return [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    doc: str  # relative to the repository, e.g. "docs/install.md"
    line: int  # the opening fence's line, from 1
    language: str
    text: str  # the block's lines, the fence's indentation removed
    block_id: str | None  # <!-- block: ID -->
    not_run: str | None  # <!-- not-run: reason -->

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def script(self) -> str:
        """What bash runs: the text, or for a console block only its `$ ` lines (the rest is
        output), with their continuation lines."""
        if self.language != "console":
            return self.text
        lines, continued = [], False
        for line in self.text.splitlines():
            if line.startswith("$ ") or continued:
                lines.append(line[2:] if line.startswith("$ ") and not continued else line)
                continued = line.endswith("\\")
        return "\n".join(lines) + "\n"


def blocks(path: Path) -> list[Block]:
    """The shell blocks of one document, in order."""
    lines = path.read_text().splitlines()
    doc = str(path.relative_to(REPO))
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, info = opening["indent"], opening["info"].strip()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
        inside = lines[i + 1 : end]
        body = [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in inside]
        language = info.split()[0] if info else ""
        if not language and body and body[0].startswith("$ "):
            language = "console"  # a session shown without a label is still a shell block
        if language in SHELL_LANGUAGES:
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            note = ANNOTATION.match(before)
            found.append(
                Block(
                    doc=doc,
                    line=i + 1,
                    language=language,
                    text="\n".join(body) + "\n",
                    block_id=note["value"] if note and note["kind"] == "block" else None,
                    not_run=note["value"] if note and note["kind"] == "not-run" else None,
                )
            )
        i = end + 1
    return found


def shell_blocks() -> list[Block]:
    return [b for path in docs() for b in blocks(path)]


def block(doc: str, block_id: str) -> Block:
    matching = [b for b in blocks(REPO / doc) if b.block_id == block_id]
    assert len(matching) == 1, f"{doc}: {len(matching)} blocks marked <!-- block: {block_id} -->"
    return matching[0]


# --- the variables a block uses and sets -------------------------------------------------------

SINGLE_QUOTED = re.compile(r"'[^']*'")
COMMENT = re.compile(r"(^|\s)#.*$", re.MULTILINE)
USED = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
ASSIGNED = re.compile(r"(?:^|[\s;&|(])(?:export\s+|local\s+|readonly\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
LOOP_OR_READ = re.compile(r"\b(?:for|read(?:\s+-r)?)\s+([A-Za-z_][A-Za-z0-9_]*)")


def unset_variables(script: str) -> list[str]:
    """Variables the script expands before (or without) setting them, in order of use."""
    code = COMMENT.sub(r"\1", SINGLE_QUOTED.sub("''", script))  # no expansion in '...' or comments
    assigned: set[str] = set(FROM_THE_SHELL)
    unset: list[str] = []
    for line in code.splitlines():
        assigned |= set(LOOP_OR_READ.findall(line))  # `for f in ...; do echo $f` sets f first
        for name in USED.findall(line):
            if name not in assigned and name not in unset:
                unset.append(name)
        assigned |= set(ASSIGNED.findall(line))
        for command, names in SETS_BY_COMMAND.items():
            if command in line:
                assigned |= names
    return unset


# --- running a block ---------------------------------------------------------------------------


def run_block(
    doc: str,
    block_id: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run the block `<!-- block: ID -->` of `doc` with bash, as written, from the checkout's
    root (as the docs assume). `set -euo pipefail` first: a failing line, an unset variable
    or a failing pipe fails the block where a user pasting it might not notice. Processes the
    block leaves in the background (`cmd &`) are stopped afterwards. AssertionError with the
    block's output if it fails."""
    source = block(doc, block_id)
    # Files, not pipes: a background job keeps a pipe open after bash has exited.
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            ["bash", "-c", "set -euo pipefail\n" + source.script()],
            cwd=cwd,
            env=dict(os.environ if env is None else env),
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        try:
            code: int | str = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = f"nothing: it ran over {timeout} s"
        finally:
            _stop_group(process.pid)
            process.wait()
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    assert code == 0, f"{source.where} ({block_id}) exited {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    return subprocess.CompletedProcess(process.args, 0, out, err)


def _stop_group(pgid: int) -> None:
    """SIGTERM to what the block left running in its session (its own `&` jobs)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
