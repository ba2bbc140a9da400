"""`juliarun import`: JuliaRunJob manifests, in managementPolicy Observe, for the jobs a
JuliaRun namespace already runs, ready to commit to Git.

JuliaRun tells a job's name, type and scale, not its parameters: a manifest holds what is
known (type, jobName, parallelism) and says, in comments, which fields a person fills in
before switching it to Full. Which fields a type has comes from the job-type table.
Nothing here deletes or overwrites a file.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ..api import API_VERSION, KIND, ManagementPolicy
from ..juliarun import jobtypes as jt
from ..juliarun.client import JobInfo

WORKERS = "nworkers"  # spec.parallelism carries it; it is JuliaRun's scale, which import reads


class Manifest(NamedTuple):
    """One job's manifest: the file it goes to under --out-dir, and its text."""

    job: str
    filename: str
    text: str


def fields_to_fill(job_type: jt.JobType) -> tuple[list[str], list[str]]:
    """The type's CRD fields JuliaRun does not report: (required, optional)."""
    required: list[str] = []
    optional: list[str] = []
    for name, default in job_type.params.items():
        if name == WORKERS:
            continue
        field = jt.PARAMETERS[name].field
        (required if default is jt.REQUIRED else optional).append(field)
    return required, optional


def manifest_body(
    info: JobInfo, namespace: str | None = None, credentials: str | None = None
) -> dict[str, Any]:
    """The JuliaRunJob for JuliaRun job `info`, as it is now: Observe, named after the job."""
    job_type = jt.job_type(info.type)
    metadata: dict[str, Any] = {"name": info.name}
    if namespace:
        metadata["namespace"] = namespace
    spec: dict[str, Any] = {
        "type": job_type.name,
        "jobName": info.name,
        "managementPolicy": ManagementPolicy.OBSERVE.value,
    }
    if job_type.scalable:
        spec["parallelism"] = info.scale.requested  # what JuliaRun runs it at: Full keeps it so
    if credentials:
        spec["credentialsRef"] = {"name": credentials}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def _listed(label: str, fields: list[str]) -> list[str]:
    """`#   label: a, b, c` as comment lines of at most 96 characters."""
    text = textwrap.fill(
        ", ".join(fields), width=96, initial_indent=f"#   {label}: ", subsequent_indent="#     "
    )
    return text.splitlines()


def render(info: JobInfo, source: str, namespace: str | None = None, credentials: str | None = None) -> str:
    """One YAML document: comments saying where it comes from and what Full needs, then the object."""
    job_type = jt.job_type(info.type)
    required, optional = fields_to_fill(job_type)
    lines = [
        f"# JuliaRun job {info.name} ({job_type.name}) in {source}: made by `juliarun import`.",
        "# managementPolicy Observe: the operator mirrors the job's status, scale and endpoints and",
        "# never submits, scales, updates or deletes it; deleting this object leaves the job.",
    ]
    if job_type.scalable:
        lines.append("# parallelism: the workers JuliaRun has requested for the job now.")
    lines.append(
        "# JuliaRun does not report a job's parameters. Before setting managementPolicy: Full, fill in"
    )
    lines += _listed("required", required) if required else ["#   required: none"]
    if optional:
        lines += _listed("optional (as the job runs with them)", optional)
    lines += [
        f"# (`juliarun types {job_type.name}` tells each field.) Full sends them to the job with updateJob",
        "# and manages it from then on, where the operator's administrator lets this namespace adopt jobs.",
    ]
    body = yaml.safe_dump(manifest_body(info, namespace, credentials), sort_keys=False)
    return "\n".join(lines) + "\n" + body


def manifests(
    infos: Mapping[str, JobInfo], source: str, namespace: str | None = None, credentials: str | None = None
) -> tuple[list[Manifest], list[str]]:
    """The manifests of the jobs whose type a JuliaRunJob can have, by name; and a warning for
    each job that is left out (a type the table does not know)."""
    out, skipped = [], []
    for name in sorted(infos):
        info = infos[name]
        if info.type not in jt.JOB_TYPES:
            skipped.append(f"job {name} has type {info.type!r}, which no JuliaRunJob has: not imported")
            continue
        out.append(Manifest(name, f"{name}.yaml", render(info, source, namespace, credentials)))
    return out, skipped


def stream(items: Iterable[Manifest]) -> str:
    """Every manifest in one YAML stream."""
    return "".join(f"---\n{m.text}" for m in items)


class Exists(Exception):
    """Files that are there already: none was written."""


def write_files(out_dir: Path, items: list[Manifest]) -> list[Path]:
    """One file per manifest under `out_dir` (made if missing). No file is overwritten: if any
    is there, none is written and Exists names them."""
    targets = [out_dir / m.filename for m in items]
    taken = [str(p) for p in targets if p.exists()]
    if taken:
        raise Exists(", ".join(taken))
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, m in zip(targets, items, strict=True):
        with path.open("x") as f:  # "x": one created meanwhile is not overwritten either
            f.write(m.text)
    return targets
