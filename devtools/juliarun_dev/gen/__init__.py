"""Generate the JuliaRunJob CRD and the job-type docs from the job-type table.

    python -m juliarun_dev.gen           # (re)write every generated file
    python -m juliarun_dev.gen --check   # exit 1, listing files that differ

`juliarun.jobtypes` is the single source of truth: the CRD's per-parameter fields, their
descriptions (what `kubectl explain` shows) and the CEL rules that say which fields each
job type requires or refuses all come from it, so the API server refuses what the
JuliaRun server would, before the operator sees it.

This module writes the files and checks them for drift; params.py makes the parameters'
fields, spec.py the spec schema, crd.py the CRD, docs.py the Markdown reference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CRD_PATH, DOCS_PATH, GROUP, KIND, NOT_IN_CRD, PLURAL, REPO_ROOT, VERSION
from .crd import crd, render_crd
from .docs import render_docs
from .params import crd_params, types_taking
from .spec import spec_schema

__all__ = [
    "CRD_PATH",
    "DOCS_PATH",
    "GROUP",
    "KIND",
    "NOT_IN_CRD",
    "PLURAL",
    "REPO_ROOT",
    "VERSION",
    "crd",
    "crd_params",
    "generated",
    "main",
    "render_crd",
    "render_docs",
    "spec_schema",
    "stale",
    "types_taking",
    "write",
]

# --- writing -----------------------------------------------------------------------------


# Files shipped in more than one place (the chart and kustomize cannot reach crds/):
# source -> copies, kept identical by `make generate` and checked like generated files.
COPIES = {
    CRD_PATH: [
        "charts/juliarun-operator/crds/juliarun.dev_juliarunjobs.yaml",
        "deploy/crds/juliarun.dev_juliarunjobs.yaml",
    ],
    "gitops/argocd/health.lua": ["charts/juliarun-operator/files/argocd-health.lua"],
}


def generated() -> dict[str, str]:
    """Every generated file: path relative to the repository root -> content."""
    files = {CRD_PATH: render_crd(), DOCS_PATH: render_docs()}
    for source, copies in COPIES.items():
        content = files.get(source) or (REPO_ROOT / source).read_text()
        files.update(dict.fromkeys(copies, content))
    return files


def stale(root: Path = REPO_ROOT) -> list[str]:
    """Generated files whose committed content differs from what would be generated."""
    out = []
    for path, content in generated().items():
        target = root / path
        if not target.is_file() or target.read_text() != content:
            out.append(path)
    return out


def write(root: Path = REPO_ROOT) -> list[str]:
    written = []
    for path, content in generated().items():
        target = root / path
        if not target.is_file() or target.read_text() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m juliarun_dev.gen", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a generated file is stale"
    )
    args = parser.parse_args(argv)
    if not (REPO_ROOT / "pyproject.toml").is_file():  # an installed package: no files to generate
        print(
            "error: the generator writes into a source checkout of juliarun-operator: "
            "run `make generate` in a clone",
            file=sys.stderr,
        )
        return 1
    if args.check:
        paths = stale()
        for path in paths:
            print(f"{path} differs from its generator: run `make generate`", file=sys.stderr)
        return 1 if paths else 0
    for path in write():
        print(f"wrote {path}")
    return 0
