"""What commands print: a result in the chosen format, a job's state in one word, and the
exit statuses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..juliarun import Job, JobInfo, JobStatus
from ..output import cell, render

EXIT_ERROR = 1
EXIT_USAGE = 2  # as argparse's usage errors
EXIT_INTERRUPTED = 130


def show(
    args: argparse.Namespace,
    data: Any,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    empty: str | None = None,
) -> None:
    """Print a result; `empty` is said (on stderr, as a remark) instead of a bare header."""
    if empty and not rows and args.output == "table":
        print(empty, file=sys.stderr)
        return
    print(render(args.output, data, headers, [[cell(c) for c in row] for row in rows]))


def state(status: JobStatus) -> str:
    """One word for a job's progress: Scheduled until JuliaRun has created it."""
    if status.completed:
        return "Completed"
    return "Running" if status.created else "Scheduled"


def status_data(job: Job, status: JobStatus) -> dict[str, Any]:
    return {"name": job.name, "type": job.type, "state": state(status), **asdict(status)}


def info_data(info: JobInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "type": info.type,
        "state": state(info.status),
        "status": asdict(info.status),
        "scale": asdict(info.scale),
        "endpoints": info.endpoints,
    }
