"""The JuliaRun client: every call of JuliaRunClient.jl, in Python, on requests.

A `Context` holds where and who (URL, token, namespace, time-outs, TLS); a `Client` holds a
session and makes one method per remote call, returning typed values. The token is
base64-encoded into the `jruntok` query parameter as the Julia client does; since URLs
carry it, nothing here puts a URL with its query into an error or a log line, and every
token and password is registered with `redact` so no echo of one survives either.

This module holds the calls; context.py the Context and the token file, transport.py how
a call is sent (and its transport rules), model.py the values, responses.py their parsing.
The names other modules import from here stay importable from here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from . import jobtypes
from .context import (
    DEFAULT_NAMESPACE_FILE,
    DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_FILE,
    DEFAULT_URL,
    MAX_REQUEST_LINE,
    SERVICE_ACCOUNT_DIR,
    TRUE_WORDS,
    Context,
    TokenFile,
    is_loopback,
    public_url,
)
from .encoding import encode_params
from .errors import InvalidResponse, ParameterError
from .log_scrubbing import install_secret_filter
from .model import Job, JobInfo, JobScale, JobStatus, current_job
from .redact import register_secret
from .responses import parse_scale, parse_status, parsed
from .transport import REPEATABLE, RetryPolicy, Transport

__all__ = [
    "DEFAULT_NAMESPACE_FILE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOKEN_FILE",
    "DEFAULT_URL",
    "MAX_REQUEST_LINE",
    "REPEATABLE",
    "SERVICE_ACCOUNT_DIR",
    "TRUE_WORDS",
    "Client",
    "Context",
    "Job",
    "JobInfo",
    "JobScale",
    "JobStatus",
    "RetryPolicy",
    "TokenFile",
    "current_job",
    "is_loopback",
    "public_url",
]

install_secret_filter()


class Client(Transport):
    """One method per JuliaRun call. Thread-safe as far as requests' Session is."""

    def __repr__(self) -> str:
        return f"<juliarun Client {self.context.describe()}>"

    # --- context-level calls ----------------------------------------------------------

    def get_system_status(self) -> bool:
        return bool(self._call("getSystemStatus"))

    def list_jobs(self) -> dict[str, str]:
        """Job name -> job type."""
        data = self._call("listJobs")
        try:
            return {name: info["type"] for name, info in data.items()}
        except (AttributeError, KeyError, TypeError):
            raise InvalidResponse("listJobs", "expected {name: {type: ...}}") from None

    def get_all_job_info(self, memo: SnapshotMemo | None = None) -> dict[str, JobInfo]:
        """Every job's type, status, scale and endpoints. With `memo` (the last answer), an
        entry that did not change is the same JobInfo as before, not parsed again: at 10,000
        jobs, parsing was half of what a snapshot cost the operator (bench/RESULTS.md)."""
        data = self._call("getAllJobInfo")
        old_raw, old = (memo.raw, memo.parsed) if memo else ({}, {})
        try:
            parsed = {
                name: old[name] if old_raw.get(name) == info else _job_info(name, info)
                for name, info in data.items()
            }
        except (AttributeError, KeyError, TypeError, ValueError):
            raise InvalidResponse(
                "getAllJobInfo", "expected {name: {type, status, scale, endpoint}}"
            ) from None
        if memo:
            memo.raw, memo.parsed = data, parsed
        return parsed

    # --- job-level calls --------------------------------------------------------------

    def get_job_status(self, job: Job) -> JobStatus:
        return parsed("getJobStatus", parse_status, self._call("getJobStatus", job))

    def get_job_scale(self, job: Job) -> JobScale:
        return parsed("getJobScale", parse_scale, self._call("getJobScale", job))

    def set_job_scale(self, job: Job, parallelism: int) -> bool:
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 0:
            raise ParameterError(
                f"parallelism: expected a non-negative integer, got {parallelism!r}", "parallelism"
            )
        return bool(self._call("setJobScale", job, {"parallelism": str(parallelism)}))

    def get_job_endpoint(self, job: Job) -> list[str]:
        data = self._call("getJobEndpoint", job)
        if not isinstance(data, list):
            raise InvalidResponse("getJobEndpoint", "expected a list of endpoints")
        return [str(e) for e in data]

    def delete_job(self, job: Job, *, force: bool = False) -> bool:
        return bool(self._call("deleteJob", job, {"force": "true" if force else "false"}))

    def tail_job(self, job: Job, *, stream: str | None = None, count: int = 50) -> str:
        if stream not in (None, "stdout", "stderr"):
            raise ParameterError(f"stream: expected stdout or stderr, got {stream!r}", "stream")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ParameterError(f"count: expected a non-negative integer, got {count!r}", "count")
        query = {"count": str(count)}
        if stream is not None:
            query["stream"] = stream
        data = self._call("tailJob", job, query)
        if not isinstance(data, str):
            raise InvalidResponse("tailJob", "expected a string")
        return data

    def submit_job(self, job: Job, **params: Any) -> None:
        """Submit `job` with its parameters (checked against the job-type table first)."""
        _register_secret_params(params)
        self._call("submitJob", job, encode_params(job.type, params))

    def update_job(self, job: Job, **params: Any) -> None:
        """Change some parameters of a submitted job (only those given are sent)."""
        _register_secret_params(params)
        self._call("updateJob", job, encode_params(job.type, params, partial=True))

    def get_encoded_url(self, job: Job, port: int) -> str:
        data = self._call("getEncodedURL", job, {"port": str(port)})
        if not isinstance(data, str):
            raise InvalidResponse("getEncodedURL", "expected a string")
        return data

    def wait_for_workers(
        self, job: Job, count: int, *, timeout: float = 300.0, interval: float = 1.0
    ) -> JobScale:
        """Poll the job's scale until `count` workers run; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            scale = self.get_job_scale(job)
            if scale.running >= count:
                return scale
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{job.name}: {scale.running} of {count} workers after {timeout:g} s")
            time.sleep(interval)


def _register_secret_params(params: Mapping[str, Any]) -> None:
    for name, value in params.items():
        if (
            name in jobtypes.PARAMETERS
            and jobtypes.PARAMETERS[name].kind == jobtypes.SECRET
            and isinstance(value, str)
        ):
            register_secret(value)


class SnapshotMemo:
    """The last getAllJobInfo answer, as sent and as parsed (see Client.get_all_job_info)."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}
        self.parsed: dict[str, JobInfo] = {}


def _job_info(name: str, info: Mapping[str, Any]) -> JobInfo:
    return JobInfo(
        name, info["type"], parse_status(info["status"]), parse_scale(info["scale"]), list(info["endpoint"])
    )
