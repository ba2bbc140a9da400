"""The emulated cluster: jobs and their lifecycle, with no I/O and no timers.

Everything a job reports (status, scale, endpoints, log lines) is computed from a few
timestamps at the moment it is asked, so holding 10,000 jobs costs only their records.
Time comes from an injected clock (wall-clock seconds by default, so a state file still
means the same thing after a restart).

This module holds the cluster: its jobs by namespace, the changes and reads of the API,
and the state file's form. jobs.py holds a job's record, lifecycle.py what it reports.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..juliarun import jobtypes as jt
from ..juliarun.encoding import check_job_name
from ..juliarun.errors import CODE_INVALID_PARAMETER, CODE_JOB_EXISTS, CODE_NO_SUCH_JOB, ParameterError
from .jobs import (
    FAIL_ENV,
    FAIL_MODES,
    MAX_HISTORY,
    MAX_TAIL,
    RUN_TIME_ENV,
    STATE_FORMAT,
    STDERR,
    Job,
    Refused,
    Timing,
)
from .lifecycle import is_completed, lifecycle_lines, progress_lines, view, worker_lines, workers_at

# The tests import these from here.
__all__ = ["FAIL_ENV", "MAX_HISTORY", "RUN_TIME_ENV", "Cluster", "Refused", "Timing"]


def _timestamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Cluster:
    """All jobs, by namespace. Methods raise Refused for anything the API must refuse."""

    def __init__(self, timing: Timing = Timing(), clock: Callable[[], float] = time.time):  # noqa: B008 (a frozen dataclass)
        self.timing = timing
        self.clock = clock
        self.pool: list[str] = []  # addresses jobs take to listen on (--listen-host); none: fake IPs
        self.jobs: dict[str, dict[str, Job]] = {}
        self.version = 0  # bumped on every change, so a writer knows when to save

    # --- lookups --------------------------------------------------------------------

    def count(self) -> int:
        return sum(len(jobs) for jobs in self.jobs.values())

    def _get(self, namespace: str, name: str, job_type: str) -> Job:
        job = self.jobs.get(namespace, {}).get(name)
        if job is None:
            raise Refused(CODE_NO_SUCH_JOB, f"no job named {name!r} in namespace {namespace!r}")
        if job.type != job_type:
            raise Refused(CODE_NO_SUCH_JOB, f"job {name!r} is a {job.type} job, not a {job_type} job")
        return job

    # --- changes --------------------------------------------------------------------

    def submit(
        self, namespace: str, name: str, job_type: str, params: dict[str, Any], fail: str = ""
    ) -> None:
        spec = _spec(job_type)
        _check_name(name)
        env = params.get("envvars") or {}
        fail = fail or env.get(FAIL_ENV, "")
        if fail not in ("", *FAIL_MODES):
            raise Refused(
                CODE_INVALID_PARAMETER, f"{FAIL_ENV}={fail!r}: expected one of {', '.join(FAIL_MODES)}"
            )
        try:
            run_time = float(env.get(RUN_TIME_ENV, self.timing.run_time))
        except ValueError:
            raise Refused(CODE_INVALID_PARAMETER, f"{RUN_TIME_ENV}: not a number of seconds") from None
        existing = self.jobs.get(namespace, {}).get(name)
        if existing is not None:
            raise Refused(
                CODE_JOB_EXISTS,
                f"a {existing.type} job named {name!r} already exists in namespace {namespace!r}",
            )
        now = self.clock()
        created = now + self.timing.create_delay
        requested = (params.get("nworkers", spec.defaults().get("nworkers")) or 0) if spec.scalable else 1
        ends = created + run_time if spec.completes and run_time > 0 else None
        if fail == "crash" and run_time > 0:
            ends = created + run_time / 2
        job = Job(
            namespace, name, job_type, dict(params), now, created, ends, requested, 0, now, 0, fail=fail
        )
        job.move(self._free_address())
        job.history.append([now, STDERR, f"[ Info: {job_type} job {name} scheduled"])
        self.jobs.setdefault(namespace, {})[name] = job
        self.version += 1

    def update(self, namespace: str, name: str, job_type: str, params: dict[str, Any]) -> None:
        job = self._get(namespace, name, job_type)
        now = self.clock()
        job.params.update(params)
        job.refresh_endpoints()
        self._log(job, now, STDERR, "[ Info: parameters updated: " + (", ".join(sorted(params)) or "none"))
        if "nworkers" in params and _spec(job_type).scalable and not is_completed(job, now):
            self._rescale(job, now, params["nworkers"])
        self.version += 1

    def set_scale(self, namespace: str, name: str, job_type: str, parallelism: int) -> bool:
        job = self._get(namespace, name, job_type)
        if not _spec(job_type).scalable:
            raise Refused(CODE_INVALID_PARAMETER, f"{job_type} jobs cannot be scaled")
        now = self.clock()
        if is_completed(job, now):
            raise Refused(CODE_INVALID_PARAMETER, f"job {name!r} has completed and cannot be scaled")
        self._rescale(job, now, parallelism)
        self.version += 1
        return True

    def delete(self, namespace: str, name: str, job_type: str, force: bool) -> bool:
        job = self._get(namespace, name, job_type)
        if not force and not is_completed(job, self.clock()):
            raise Refused(CODE_INVALID_PARAMETER, f"job {name!r} has not finished; delete it with force=true")
        del self.jobs[namespace][name]
        if not self.jobs[namespace]:
            del self.jobs[namespace]
        self.version += 1
        return True

    def complete(self, namespace: str, names: list[str]) -> dict[str, float]:
        """End the named batch jobs now (those created and not ended yet), as their run time
        would: when each ended, for a test or a benchmark to measure from."""
        now, ended = self.clock(), {}
        for name in names:
            job = self.jobs.get(namespace, {}).get(name)
            if job is None or not jt.job_type(job.type).completes or now < job.created_at:
                continue
            if job.completes_at is None or job.completes_at > now:
                job.completes_at = now
                ended[name] = now
        self.version += 1
        return ended

    def _free_address(self) -> str:
        """The first address of the pool no job holds ("" when there is no pool or none is left)."""
        if not self.pool:  # looking through every job costs each submit O(jobs): 30 s at 10,000
            return ""
        held = {job.ip for jobs in self.jobs.values() for job in jobs.values()}
        return next((a for a in self.pool if a not in held), "")

    def move(self, namespace: str, name: str, address: str) -> list[str]:
        """Move a job to `address` (an IP address or host name; "" back to its own), as
        JuliaRun does when it reschedules one: its endpoints follow. Its new endpoints."""
        job = self.jobs.get(namespace, {}).get(name)
        if job is None:
            raise KeyError(f"no job {name!r} in namespace {namespace!r}")
        job.move(address)
        self._log(job, self.clock(), STDERR, f"[ Info: job moved: pod {job.ip}")
        self.version += 1
        return list(job.endpoints)

    def _rescale(self, job: Job, now: float, parallelism: int) -> None:
        # Fix the finished part of the current approach in the history, then start anew
        # from where the workers are now.
        job.history.extend(worker_lines(job, now, MAX_HISTORY, self.timing))
        job.history.sort(key=lambda line: line[0])
        running, started = workers_at(job, now, self.timing)
        job.base, job.started_before = running, started
        job.requested, job.approach_from = parallelism, now
        self._log(job, now, STDERR, f"[ Info: scale requested: {parallelism} workers")

    def _log(self, job: Job, t: float, stream: str, text: str) -> None:
        job.history.append([t, stream, text])
        job.history.sort(key=lambda line: line[0])
        del job.history[:-MAX_HISTORY]

    # --- API reads ------------------------------------------------------------------

    def list_jobs(self, namespace: str) -> dict[str, dict[str, str]]:
        return {name: {"type": job.type} for name, job in self.jobs.get(namespace, {}).items()}

    def all_job_info(self, namespace: str) -> dict[str, dict[str, Any]]:
        now = self.clock()
        info: dict[str, dict[str, Any]] = {}
        for name, job in self.jobs.get(namespace, {}).items():
            status, scale, endpoints = view(job, now, self.timing)
            info[name] = {"type": job.type, "status": status, "scale": scale, "endpoint": endpoints}
        return info

    def status(self, namespace: str, name: str, job_type: str) -> list[int]:
        return view(self._get(namespace, name, job_type), self.clock(), self.timing)[0]

    def scale(self, namespace: str, name: str, job_type: str) -> list[int]:
        return view(self._get(namespace, name, job_type), self.clock(), self.timing)[1]

    def endpoints(self, namespace: str, name: str, job_type: str) -> list[str]:
        return view(self._get(namespace, name, job_type), self.clock(), self.timing)[2]

    def service_port(self, namespace: str, name: str, job_type: str, port: int) -> int:
        """`port` if the job exposes it as a service port; Refused otherwise."""
        job = self._get(namespace, name, job_type)
        exposed = [pair[1] for pair in job.ports().values()]
        if port not in exposed:
            shown = ", ".join(map(str, exposed)) or "none"
            raise Refused(
                CODE_INVALID_PARAMETER,
                f"parameter port: job {name!r} does not expose port {port} (it exposes: {shown})",
            )
        return port

    def tail(self, namespace: str, name: str, job_type: str, count: int, stream: str | None = None) -> str:
        """The last `count` log lines of the job (of `stream` only, if given), at most MAX_TAIL."""
        job = self._get(namespace, name, job_type)
        count = min(count, MAX_TAIL)
        if count <= 0:
            return ""
        now = self.clock()
        series = [
            job.history,
            lifecycle_lines(job, now, self.timing),
            worker_lines(job, min(now, job.completes_at or now), count, self.timing),
            progress_lines(job, now, count, self.timing),
        ]
        lines = [
            line
            for line in heapq.merge(*series, key=lambda line: line[0])
            if stream is None or line[1] == stream
        ]
        return "\n".join(f"{_timestamp(t)} {text}" for t, _, text in lines[-count:])

    # --- persistence ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "jobs": [job.to_dict() for jobs in self.jobs.values() for job in jobs.values()],
        }

    def load_dict(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError("not an emulator state of format 1")
        jobs: dict[str, dict[str, Job]] = {}
        try:
            for record in data["jobs"]:
                job = Job(**record)
                _spec(job.type)
                jobs.setdefault(job.namespace, {})[job.name] = job
        except (KeyError, TypeError, Refused) as exc:
            raise ValueError(f"state does not hold valid jobs: {exc}") from None
        self.jobs = jobs
        self.version += 1


def _spec(job_type: str) -> jt.JobType:
    try:
        return jt.job_type(job_type)
    except ValueError as exc:
        raise Refused(CODE_INVALID_PARAMETER, str(exc)) from None


def _check_name(name: str) -> None:
    try:
        check_job_name(name)
    except ParameterError as exc:
        raise Refused(CODE_INVALID_PARAMETER, str(exc)) from None
