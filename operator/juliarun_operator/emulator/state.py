"""The emulated cluster: jobs and their lifecycle, with no I/O and no timers.

Everything a job reports (status, scale, endpoints, log lines) is computed from a few
timestamps at the moment it is asked, so holding 10,000 jobs costs only their records.
Time comes from an injected clock (wall-clock seconds by default, so a state file still
means the same thing after a restart).

Lifecycle, per job:
- scheduled at submit; created `create_delay` seconds later;
- workers (scalable types) approach the requested scale one step per `worker_delay`,
  starting at creation; a scale change restarts the approach from the running count;
- batch types (`completes`) finish `run_time` seconds after creation (never if 0);
  services run until deleted.

Failures, per job (`fail`, from the job's `JULIARUN_EMULATOR_FAIL` variable or a fault rule):
- "all": the job ends at its run time with no worker succeeded;
- "some": it ends at its run time with half its workers (rounded down) succeeded;
- "crash": the job dies while running, at half its run time (a service too), none succeeded.
A failed job counts at least one worker started, so that the status tuple says it failed
(`workersSucceeded < workersStarted`) even with no workers requested.

Scale as reported by getJobScale, `[running, requested]`:
- scalable types: requested is `nworkers` (0 when not given), running the workers so far;
- other types are one unit: `[0, 1]` before creation, `[1, 1]` while running;
- a finished job reports `[0, 0]`: nothing runs and nothing more is wanted.
For the status tuple, a non-scalable job counts its one container as its worker.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..juliarun import jobtypes as jt
from ..juliarun.encoding import check_job_name
from ..juliarun.errors import CODE_INVALID_PARAMETER, CODE_JOB_EXISTS, CODE_NO_SUCH_JOB, ParameterError

STDOUT, STDERR = "stdout", "stderr"
STREAMS = (STDOUT, STDERR)
# Lines fixed in a job's history (API actions, finished scale approaches) are capped like a
# rotated log, so a job scaled up and down forever does not grow without bound.
MAX_HISTORY = 1000
MAX_TAIL = 10_000  # lines one tailJob returns at most, however long the job has run
BATCH_PROGRESS_STEPS = 5  # a batch job logs progress at each fifth of its run time
STATE_FORMAT = 1
FAIL_ENV = "JULIARUN_EMULATOR_FAIL"  # a job variable that makes the emulated job fail
RUN_TIME_ENV = "JULIARUN_EMULATOR_RUN_TIME"  # a job variable: this job's run time, in seconds
FAIL_MODES = ("all", "some", "crash")
# Looked up for every job on every getAllJobInfo, so taken out of the table once.
_SCALABLE = {name: t.scalable for name, t in jt.JOB_TYPES.items()}
_DEFAULT_PORTS = {name: t.defaults().get("ports") or {} for name, t in jt.JOB_TYPES.items()}


class Refused(Exception):
    """An API call the cluster refuses: `code` and `reason` go into the response envelope."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Timing:
    create_delay: float = 1.0
    worker_delay: float = 0.5
    run_time: float = 10.0
    log_interval: float = 5.0  # heartbeat lines of jobs without a run time


@dataclass
class Job:
    namespace: str
    name: str
    type: str
    params: dict[str, Any]
    submitted_at: float
    created_at: float
    completes_at: float | None
    requested: int  # workers wanted (1 for non-scalable types)
    base: int  # running workers when the current approach began
    approach_from: float  # when the current approach began
    started_before: int  # workers started before the current approach
    history: list[list[Any]] = field(default_factory=list)  # [time, stream, text], by time
    fail: str = ""  # one of FAIL_MODES, or "" for a job that succeeds
    ip: str = field(init=False)
    endpoints: list[str] = field(init=False)  # while running; derived, not saved

    def __post_init__(self) -> None:
        self.ip = fake_pod_ip(self.namespace, self.name)
        self.refresh_endpoints()

    def ports(self) -> dict[str, Any]:
        ports = self.params.get("ports")
        return _DEFAULT_PORTS[self.type] if ports is None else ports

    def refresh_endpoints(self) -> None:
        self.endpoints = [f"{self.ip}:{pair[1]}" for pair in self.ports().values()]

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "namespace",
                "name",
                "type",
                "params",
                "submitted_at",
                "created_at",
                "completes_at",
                "requested",
                "base",
                "approach_from",
                "started_before",
                "history",
                "fail",
            )
        }


def fake_pod_ip(namespace: str, name: str) -> str:
    """A stable 10.x.y.z address for a job: a string to report, never connected to."""
    a, b, c = hashlib.sha1(f"{namespace}/{name}".encode(), usedforsecurity=False).digest()[:3]
    return f"10.{a}.{b}.{max(c, 1)}"


def _timestamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Cluster:
    """All jobs, by namespace. Methods raise Refused for anything the API must refuse."""

    def __init__(self, timing: Timing = Timing(), clock: Callable[[], float] = time.time):
        self.timing = timing
        self.clock = clock
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
        job.history.append([now, STDERR, f"[ Info: {job_type} job {name} scheduled"])
        self.jobs.setdefault(namespace, {})[name] = job
        self.version += 1

    def update(self, namespace: str, name: str, job_type: str, params: dict[str, Any]) -> None:
        job = self._get(namespace, name, job_type)
        now = self.clock()
        job.params.update(params)
        job.refresh_endpoints()
        self._log(job, now, STDERR, "[ Info: parameters updated: " + (", ".join(sorted(params)) or "none"))
        if "nworkers" in params and _spec(job_type).scalable and not self._completed(job, now):
            self._rescale(job, now, params["nworkers"])
        self.version += 1

    def set_scale(self, namespace: str, name: str, job_type: str, parallelism: int) -> bool:
        job = self._get(namespace, name, job_type)
        if not _spec(job_type).scalable:
            raise Refused(CODE_INVALID_PARAMETER, f"{job_type} jobs cannot be scaled")
        now = self.clock()
        if self._completed(job, now):
            raise Refused(CODE_INVALID_PARAMETER, f"job {name!r} has completed and cannot be scaled")
        self._rescale(job, now, parallelism)
        self.version += 1
        return True

    def delete(self, namespace: str, name: str, job_type: str, force: bool) -> bool:
        job = self._get(namespace, name, job_type)
        if not force and not self._completed(job, self.clock()):
            raise Refused(CODE_INVALID_PARAMETER, f"job {name!r} has not finished; delete it with force=true")
        del self.jobs[namespace][name]
        if not self.jobs[namespace]:
            del self.jobs[namespace]
        self.version += 1
        return True

    def _rescale(self, job: Job, now: float, parallelism: int) -> None:
        # Fix the finished part of the current approach in the history, then start anew
        # from where the workers are now.
        job.history.extend(self._worker_lines(job, now, MAX_HISTORY))
        job.history.sort(key=lambda line: line[0])
        running, started = self._workers(job, now)
        job.base, job.started_before = running, started
        job.requested, job.approach_from = parallelism, now
        self._log(job, now, STDERR, f"[ Info: scale requested: {parallelism} workers")

    def _log(self, job: Job, t: float, stream: str, text: str) -> None:
        job.history.append([t, stream, text])
        job.history.sort(key=lambda line: line[0])
        del job.history[:-MAX_HISTORY]

    # --- the lifecycle, computed ----------------------------------------------------

    def _completed(self, job: Job, now: float) -> bool:
        return job.completes_at is not None and now >= job.completes_at

    def _steps(self, job: Job, t: float) -> int:
        """Worker steps of the current approach done by time `t`."""
        start = max(job.approach_from, job.created_at)
        if t < start:
            return 0
        distance = abs(job.requested - job.base)
        if self.timing.worker_delay <= 0:
            return distance
        return min(distance, int((t - start) / self.timing.worker_delay))

    def _workers(self, job: Job, t: float) -> tuple[int, int]:
        """(running, started so far) of a scalable job at `t`, ignoring completion."""
        steps = self._steps(job, t)
        if job.requested >= job.base:
            return job.base + steps, job.started_before + steps
        return job.base - steps, job.started_before

    def view(self, job: Job, now: float) -> tuple[list[int], list[int], list[str]]:
        """(status, scale, endpoints) of `job` at `now`, as the API reports them."""
        created = now >= job.created_at
        completed = self._completed(job, now)
        notebook = job.type == "Notebook"
        failed = completed and bool(job.fail)
        if _SCALABLE[job.type]:
            running, started = self._workers(job, min(now, job.completes_at or now))
            if failed:
                started = max(started, 1)
            succeeded = (started // 2 if job.fail == "some" else 0) if failed else started
            status = [completed, succeeded if completed else 0, started, created, notebook]
            scale = [0, 0] if completed else [running if created else 0, job.requested]
        else:
            status = [completed, 1 if completed and not failed else 0, 1 if created else 0, created, notebook]
            scale = [0, 0] if completed else [1 if created else 0, 1]
        endpoints = list(job.endpoints) if created and not completed else []
        return status, scale, endpoints

    # --- API reads ------------------------------------------------------------------

    def list_jobs(self, namespace: str) -> dict[str, dict[str, str]]:
        return {name: {"type": job.type} for name, job in self.jobs.get(namespace, {}).items()}

    def all_job_info(self, namespace: str) -> dict[str, dict[str, Any]]:
        now = self.clock()
        info: dict[str, dict[str, Any]] = {}
        for name, job in self.jobs.get(namespace, {}).items():
            status, scale, endpoints = self.view(job, now)
            info[name] = {"type": job.type, "status": status, "scale": scale, "endpoint": endpoints}
        return info

    def status(self, namespace: str, name: str, job_type: str) -> list[int]:
        return self.view(self._get(namespace, name, job_type), self.clock())[0]

    def scale(self, namespace: str, name: str, job_type: str) -> list[int]:
        return self.view(self._get(namespace, name, job_type), self.clock())[1]

    def endpoints(self, namespace: str, name: str, job_type: str) -> list[str]:
        return self.view(self._get(namespace, name, job_type), self.clock())[2]

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
            self._lifecycle_lines(job, now),
            self._worker_lines(job, min(now, job.completes_at or now), count),
            self._progress_lines(job, now, count),
        ]
        lines = [
            line
            for line in heapq.merge(*series, key=lambda line: line[0])
            if stream is None or line[1] == stream
        ]
        return "\n".join(f"{_timestamp(t)} {text}" for t, _, text in lines[-count:])

    def _lifecycle_lines(self, job: Job, now: float) -> list[list[Any]]:
        lines = []
        if now >= job.created_at:
            lines.append([job.created_at, STDERR, f"[ Info: job created: pod {job.ip}"])
        if self._completed(job, now):
            status = self.view(job, now)[0]
            if job.fail == "crash":
                lines.append([job.completes_at, STDERR, "ERROR: the job died while running"])
            elif job.fail:
                lines.append(
                    [job.completes_at, STDERR, f"ERROR: job failed: {status[1]} of {status[2]} succeeded"]
                )
            else:
                lines.append([job.completes_at, STDOUT, f"job finished: {status[1]} succeeded"])
        return lines

    def _worker_lines(self, job: Job, until: float, count: int) -> list[list[Any]]:
        """The last `count` worker start/stop lines of the current approach, up to `until`."""
        if not _SCALABLE[job.type]:
            return []
        steps = self._steps(job, until)
        start = max(job.approach_from, job.created_at)
        delay = max(self.timing.worker_delay, 0.0)
        up = job.requested >= job.base
        lines = []
        for i in range(max(1, steps - count + 1), steps + 1):
            text = f"worker {job.base + i} started" if up else f"worker {job.base - i + 1} stopped"
            lines.append([start + i * delay, STDERR, f"[ Info: {text}"])
        return lines

    def _progress_lines(self, job: Job, now: float, count: int) -> Iterable[list[Any]]:
        """Periodic lines: a batch job's progress in fifths, otherwise a heartbeat."""
        if job.completes_at is not None:
            interval = (job.completes_at - job.created_at) / BATCH_PROGRESS_STEPS
            last_k = BATCH_PROGRESS_STEPS - 1  # the last fifth is the completion line
        else:
            interval = self.timing.log_interval
            last_k = None
        if interval <= 0 or now < job.created_at:
            return []
        k_now = int((now - job.created_at) / interval)
        if last_k is not None:
            k_now = min(k_now, last_k)
        lines = []
        for k in range(max(1, k_now - count + 1), k_now + 1):
            t = job.created_at + k * interval
            if job.completes_at is not None:
                text = f"progress: {100 * k // BATCH_PROGRESS_STEPS}%"
            else:
                text = "running for " + f"{k * interval:.3f}".rstrip("0").rstrip(".") + " s"
            lines.append([t, STDOUT, text])
        return lines

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
