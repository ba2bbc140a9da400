"""The values a JuliaRun call takes and returns: a job's address, status, scale and info."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from . import jobtypes
from .errors import JuliaRunError


@dataclass(frozen=True)
class Job:
    """A job as JuliaRun addresses it: its type and its name."""

    type: str
    name: str

    def __post_init__(self) -> None:
        jobtypes.job_type(self.type)


@dataclass(frozen=True)
class JobStatus:
    completed: bool
    workers_succeeded: int
    workers_started: int
    created: bool
    notebook: bool


@dataclass(frozen=True)
class JobScale:
    running: int
    requested: int


@dataclass(frozen=True)
class JobInfo:
    name: str
    type: str
    status: JobStatus
    scale: JobScale
    endpoints: list[str]


def current_job(environ: Mapping[str, str] | None = None) -> Job:
    """The job this process runs in (`self()` of the Julia client), from JRUN_TYPE/JRUN_NAME."""
    env = os.environ if environ is None else environ
    try:
        return Job(env["JRUN_TYPE"], env["JRUN_NAME"])
    except KeyError as exc:
        raise JuliaRunError(f"not inside a JuliaRun job: {exc.args[0]} is not set") from None
