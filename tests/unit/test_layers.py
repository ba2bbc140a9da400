"""The package's layers, as its imports draw them: a back arrow fails here.

Inside `reconcile/`: main -> runtime -> adapters -> decision, never back. `juliarun/` (the
protocol) knows nothing of Kubernetes, the operator or the test server; `reconcile/` never
imports the emulator; the decision does no I/O (no HTTP or Kubernetes library); `api.py`
is plain vocabulary.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "juliarun_operator"
ROOT = "juliarun_operator"
IO_LIBRARIES = ("kubernetes", "kopf", "requests", "aiohttp", "urllib3", "socket", "subprocess")

# module prefix -> the module prefixes it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    f"{ROOT}.api": (f"{ROOT}.", *IO_LIBRARIES),
    f"{ROOT}.juliarun": (f"{ROOT}.reconcile", f"{ROOT}.emulator", f"{ROOT}.cli", "kubernetes", "kopf"),
    f"{ROOT}.reconcile": (f"{ROOT}.emulator", f"{ROOT}.cli"),
    f"{ROOT}.reconcile.decision": (
        f"{ROOT}.reconcile.runtime",
        f"{ROOT}.reconcile.adapters",
        f"{ROOT}.reconcile.main",
        *IO_LIBRARIES,
    ),
    f"{ROOT}.reconcile.adapters": (f"{ROOT}.reconcile.runtime", f"{ROOT}.reconcile.main"),
    f"{ROOT}.reconcile.runtime": (f"{ROOT}.reconcile.main",),
}
# Modules the layers above may name; everything in reconcile/ must sit in one of them.
RECONCILE_PLACES = ("decision", "runtime", "adapters", "main", "__init__")


def module_name(path: Path, package: Path = PACKAGE, root: str = ROOT) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([root, *parts])


def imports(path: Path, package: Path = PACKAGE, root: str = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative ones resolved."""
    me = module_name(path, package, root)
    here = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, target))
            if node.module is None or node.level:  # `from . import status`: the names may be modules
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def under(target: str, ban: str) -> bool:
    """`target` is `ban` or inside it (a ban ending in "." is a prefix: anything below it)."""
    return target.startswith(ban) if ban.endswith(".") else target == ban or target.startswith(ban + ".")


def violations(package: Path = PACKAGE, root: str = ROOT, rules: dict[str, tuple[str, ...]] = FORBIDDEN):
    wrong = set()
    for path in sorted(package.rglob("*.py")):
        me = module_name(path, package, root)
        for prefix, banned in rules.items():
            if not under(me, prefix):
                continue
            for line, target in imports(path, package, root):
                if not under(target, prefix) and any(under(target, ban) for ban in banned):
                    wrong.add(f"{path.relative_to(package)}:{line} imports {target}")
    return sorted(wrong)


def test_no_import_runs_against_the_layers():
    assert violations() == []


def test_everything_in_reconcile_sits_in_a_layer():
    strays = [
        p.name
        for p in (PACKAGE / "reconcile").iterdir()
        if p.suffix == ".py" and p.stem not in RECONCILE_PLACES
    ]
    assert strays == []


@pytest.mark.parametrize(
    ("where", "line", "caught"),
    [
        ("reconcile/decision/bad.py", "from ..runtime import controller\n", True),
        ("reconcile/adapters/bad.py", "from ..runtime.queue import WorkQueue\n", True),
        ("reconcile/decision/bad.py", "import kubernetes\n", True),
        ("juliarun/bad.py", "from ..reconcile.decision import model\n", True),
        ("reconcile/runtime/bad.py", "from ..decision import model\n", False),
        ("reconcile/decision/bad.py", "from . import status\n", False),
    ],
)
def test_the_check_catches_a_back_arrow(tmp_path, where, line, caught):
    """The check itself, on a made-up tree: it can fail."""
    path = tmp_path / ROOT / where
    path.parent.mkdir(parents=True)
    path.write_text(line)
    assert bool(violations(tmp_path / ROOT)) is caught
