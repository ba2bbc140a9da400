"""Docs that run: every shell block of README.md, CONTRIBUTING.md and docs/*.md is run by a
test as written (`<!-- block: ID -->` and a test calling run_block(doc, ID)) or says why it
cannot run here (`<!-- not-run: reason -->`); and every block sets the variables it uses,
so that pasting it into a new shell does what it says (tests/support/docs.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support import docs

TESTS = Path(__file__).resolve().parents[1]
BLOCKS = docs.shell_blocks()


def run_block_calls() -> dict[tuple[str, str], list[str]]:
    """(doc, ID) -> where a test calls run_block(doc, ID), read from the tests' source."""
    calls: dict[tuple[str, str], list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            doc, block_id = node.args[0], node.args[1]
            if (
                name == "run_block"
                and isinstance(doc, ast.Constant)
                and isinstance(block_id, ast.Constant)
                and isinstance(doc.value, str)
                and isinstance(block_id.value, str)
            ):
                where = f"{path.relative_to(TESTS.parent)}:{node.lineno}"
                calls.setdefault((doc.value, block_id.value), []).append(where)
    return calls


CALLS = run_block_calls()


def test_there_are_blocks_and_calls_to_check():
    assert len(BLOCKS) > 10 and CALLS


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_every_shell_block_is_run_by_a_test_or_says_why_not(block):
    if block.not_run is not None:
        assert len(block.not_run) >= 10, f"{block.where}: say why it cannot run here"
        return
    assert block.block_id, (
        f"{block.where}: neither <!-- block: ID --> (run by a test with run_block) nor "
        f"<!-- not-run: reason --> right before it:\n{block.text}"
    )
    assert (block.doc, block.block_id) in CALLS, (
        f"{block.where}: no test calls run_block({block.doc!r}, {block.block_id!r})"
    )


def test_block_ids_are_unique_within_a_doc():
    seen: dict[tuple[str, str], str] = {}
    for block in BLOCKS:
        if block.block_id:
            key = (block.doc, block.block_id)
            assert key not in seen, f"{block.where}: ID {block.block_id!r} also at {seen[key]}"
            seen[key] = block.where


def test_every_run_block_call_names_a_block():
    marked = {(b.doc, b.block_id) for b in BLOCKS if b.block_id}
    stale = {key: where for key, where in CALLS.items() if key not in marked}
    assert not stale, f"run_block of blocks the docs no longer mark: {stale}"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_every_block_sets_the_variables_it_uses(block):
    """Run or not: a block pasted into a new shell must not expand an unset variable (an
    unset STATE made `--state-dir ""` of a command that deletes its state dir)."""
    assert docs.unset_variables(block.script()) == [], (
        f"{block.where}: uses variables it does not set:\n{block.text}"
    )


# --- the checker itself ------------------------------------------------------------------------


def test_annotations_and_console_blocks_are_read(tmp_path, monkeypatch):
    monkeypatch.setattr(docs, "REPO", tmp_path)
    doc = tmp_path / "x.md"
    doc.write_text(
        "<!-- block: one -->\n```sh\necho 1\n```\n\n"
        "<!-- not-run: needs a real cluster -->\n\n```bash\nrm -rf /\n```\n"
        "```console\n$ echo a \\\n  b\na b\n```\n"
        "```\n$ kubectl get jrj\nNAME\n```\n"
        "```yaml\nkey: $NOT_SHELL\n```\n"
        "- a list item:\n\n  ```sh\n  echo indented\n  ```\n"
    )
    found = docs.blocks(doc)
    assert [(b.line, b.language, b.block_id, b.not_run) for b in found] == [
        (2, "sh", "one", None),
        (8, "bash", None, "needs a real cluster"),
        (11, "console", None, None),
        (16, "console", None, None),
        (25, "sh", None, None),
    ]
    assert found[2].script() == "echo a \\\n  b\n"
    assert found[4].text == "echo indented\n"


@pytest.mark.parametrize(
    "script, unset",
    [
        ('juliarun cluster down --state-dir "$STATE"\n', ["STATE"]),
        ('STATE=/tmp/x\njuliarun cluster down --state-dir "$STATE"\n', []),
        ('echo "${STATE}"\nSTATE=late\n', ["STATE"]),
        ("export A=1 B=2\necho $A $B $HOME\n", []),
        ("for f in a b; do echo $f; done\n", []),
        ("awk '{print $1, $NAME}' # $ALSO_NOT\n", []),
        ('eval "$(juliarun cluster env)"\nkubectl --kubeconfig "$KUBECONFIG" get ns\n', []),
        ('X=$(cat "$FILE")\n', ["FILE"]),
    ],
)
def test_unset_variables(script, unset):
    assert docs.unset_variables(script) == unset
