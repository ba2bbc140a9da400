"""Batch jobs as `batch/v1` Job has them: attempts, retries, deadlines, suspend, clean-up.
Pure functions of the object's spec and status and the facts, like `decide`.

- An attempt is one JuliaRun job. Attempt 1 has the object's job name; attempt n > 1 the
  same name with `-n` (a default name still carries the UID's hash, so it proves itself).
  `status.attempts` counts attempts begun, `status.failed` those that failed, and
  `status.jobName` is the current one's name. A new attempt is recorded in status before
  it is submitted, so a restarted operator never submits an attempt twice.
- `backoffLimit`: a failed attempt is followed by another while `failed <= backoffLimit`;
  never while suspended or deleted. Failures to reach JuliaRun are not attempts.
- `activeDeadlineSeconds`: counted from `status.startTime`, across attempts; a job still
  running then is deleted in JuliaRun and the object ends Failed (DeadlineExceeded).
- `suspend`: a job not submitted is held back; a running one is deleted in JuliaRun. On
  resume the next attempt is submitted. As with Job, startTime is cleared on suspend and set
  again on resume, so the deadline clock does not run while suspended.
- `ttlSecondsAfterFinished`: counted from the Complete or Failed condition's transition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...api import attempt_job_name
from ...juliarun import jobtypes as jt
from ...juliarun.client import JobInfo
from . import model as d
from . import rules  # each uses the other's names only when called: the cycle is safe
from . import status as st

FIELDS = ("ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit", "suspend")
MAX_HISTORY = 20  # past attempts kept in status
DEFAULT_BACKOFF_LIMIT = 0  # as KubeRay's RayJob: a JuliaRun job can be costly to run again
BATCH_TYPES = [t.name for t in jt.JOB_TYPES.values() if t.completes]


def is_batch(obj: d.ObjectState) -> bool:
    job_type = jt.JOB_TYPES.get(obj.spec.get("type", ""))
    return bool(job_type and job_type.completes)


def attempts(status: Mapping[str, Any]) -> int:
    """The number of the current attempt (1 before any is recorded)."""
    return int(status.get("attempts") or 1)


def attempt_name(obj: d.ObjectState, n: int) -> str:
    """The JuliaRun name of attempt `n`."""
    return attempt_job_name(obj.spec.get("jobName"), obj.default_name, n)


def derived(obj: d.ObjectState, name: str) -> bool:
    """Whether `name` proves itself this object's: a default name of one of its attempts."""
    if obj.spec.get("jobName"):
        return False
    return any(name == attempt_name(obj, n) for n in range(1, attempts(obj.status) + 1))


def earlier_names(obj: d.ObjectState) -> list[str]:
    """The JuliaRun names of the attempts before the current one (each was submitted)."""
    return [attempt_name(obj, n) for n in range(1, attempts(obj.status))]


def backoff_limit(obj: d.ObjectState) -> int:
    return int(obj.spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))


def start_time(obj: d.ObjectState, f: d.Facts, name: str) -> str:
    """status.startTime, or the one to write now: when this process submitted the job, else now."""
    m = f.memory
    return str(
        obj.status.get("startTime") or st.iso(m.submit_at if m.name == name and m.submit_at else f.now)
    )


def deadline_left(obj: d.ObjectState, now: float, start: str | None = None) -> float | None:
    """Seconds until activeDeadlineSeconds runs out (<= 0: it has), None without a deadline;
    from status.startTime, or `start` where status has none yet."""
    limit = obj.spec.get("activeDeadlineSeconds")
    start = obj.status.get("startTime") or start
    if limit is None or not start:
        return None
    return st.parse_time(start) + float(limit) - now


def ttl_left(obj: d.ObjectState, now: float) -> float | None:
    """Seconds until a finished object is to be deleted, None without a TTL."""
    ttl = obj.spec.get("ttlSecondsAfterFinished")
    ended = st.condition(obj.status, st.finished(obj.status)).get("lastTransitionTime")
    if ttl is None or not ended:
        return None
    return st.parse_time(ended) + float(ttl) - now


def next_attempt(
    obj: d.ObjectState, f: d.Facts, *, name: str, failed: bool, message: str, start: str | None
) -> dict[str, Any]:
    """The status fields that end the current attempt (job `name`) and begin the next,
    written before the next is submitted."""
    n = attempts(obj.status) + 1
    past = {
        "attempt": n - 1,
        "jobName": name,
        "result": "Failed" if failed else "Suspended",
        "message": message,
        "endTime": st.iso(f.now),
    }
    history = [*list(obj.status.get("pastAttempts") or [])[-(MAX_HISTORY - 1) :], past]
    return {
        "attempts": n,
        "failed": int(obj.status.get("failed") or 0) + (1 if failed else 0),
        "pastAttempts": history,
        "jobName": attempt_name(obj, n),
        "submitted": False,
        "submitTime": st.iso(f.now),
        "startTime": start,
        "connection": obj.status.get("connection") or f.connection,
        # what JuliaRun said of the attempt before: not this one's
        "created": None,
        "completed": None,
        "workersStarted": None,
        "workersSucceeded": None,
        "endpoints": None,
        "scale": None,
        "workers": None,
    }


# --- the decisions of batch jobs, called from decide.reconcile ----------------------------


def finished_plan(obj: d.ObjectState, f: d.Facts, start: tuple[d.Action, ...]) -> d.Plan:
    """Complete or Failed for good: nothing more is sent to JuliaRun; the TTL runs."""
    actions = start
    if obj.status.get("observedGeneration") != obj.generation:  # a spec edit after the end
        actions += (d.write_status({"observedGeneration": obj.generation}),)
    left = ttl_left(obj, f.now)
    name = obj.status.get("jobName")
    if left is not None and left <= 0:
        return d.Plan((*actions, d.Action(d.Kind.DELETE_OBJECT, name or "")), job=name)
    return d.Plan(actions, job=name, requeue_after=left)


def hold(
    obj: d.ObjectState, f: d.Facts, name: str, info: JobInfo | None, start: tuple[d.Action, ...]
) -> d.Plan | None:
    """Suspend, resume and the deadline; None when none of them decides."""
    m = f.memory
    suspend = bool(obj.spec.get("suspend"))
    left = deadline_left(obj, f.now)
    over = not suspend and left is not None and left <= 0
    if not (suspend or over):
        return resume(obj, f, name, info, start)
    if info is not None and info.status.completed:
        return None  # it ended on its own: that result stands
    if info is not None and name not in m.deleted_jobs:
        if not rules.ours(obj, f, name):
            return None  # a conflict, shown as such
        logs = (d.post_logs(name, "DeadlineExceeded"),) if over and m.logs_posted != name else ()
        return d.Plan(start + logs + (d.delete(name),), job=name, wait_snapshot=True)
    # Nothing of this attempt runs in JuliaRun, or JuliaRun has been told to delete it.
    if info is None and m.name == name and m.submit is d.Outcome.LANDED and f.snapshot_time < m.landed_at:
        return d.Plan(start, job=name, wait_snapshot=True)
    wait = rules.landing_wait(obj, f, name) if info is None else 0.0  # a submit that lands is deleted then
    submitted = (
        bool(obj.status.get("submitted"))
        or name in m.deleted_jobs
        or (m.name == name and m.submit is d.Outcome.LANDED)
    )
    if over:
        if wait > 0:
            return d.Plan(start, job=name, requeue_after=wait)
        failed = int(obj.status.get("failed") or 0) + (1 if submitted else 0)
        message = (
            f"the job was active longer than activeDeadlineSeconds ({obj.spec['activeDeadlineSeconds']} s)"
        )
        end: dict[str, Any] = {"failed": failed, "jobName": name, "submitted": submitted}
        if m.logs_posted == name and m.last_logs:
            end["lastLogs"] = m.last_logs
        return d.Plan(
            start + rules.status_write(obj, f, st.failed("DeadlineExceeded", message), warn=True, extra=end),
            job=name,
        )
    message = (
        "suspended: the JuliaRun job was deleted; resuming submits the next attempt"
        if submitted
        else "suspended: not submitted until resumed"
    )
    extra: dict[str, Any] = {"startTime": None}  # the deadline clock stops
    if submitted:
        extra.update(jobName=name, submitted=True)
    return d.Plan(
        start + rules.status_write(obj, f, st.suspended(message), extra=extra),
        job=name,
        requeue_after=wait if wait > 0 else None,
    )


def resume(
    obj: d.ObjectState, f: d.Facts, name: str, info: JobInfo | None, start: tuple[d.Action, ...]
) -> d.Plan | None:
    """After suspend deleted the current attempt's job: the next attempt."""
    suspended = st.condition(obj.status, st.SUSPENDED).get("status") == "True"
    if name in f.memory.deleted_jobs:
        pass  # suspend deleted it (this process saw to that)
    elif not (suspended and obj.status.get("submitted")) or info is not None:
        return None
    fields = next_attempt(
        obj,
        f,
        name=name,
        failed=False,
        message="suspended: its JuliaRun job was deleted",
        start=st.iso(f.now),
    )
    new = fields["jobName"]
    event = d.event(
        "Normal", "Resumed", f"resumed: submitting attempt {fields['attempts']} as JuliaRun job {new}", new
    )
    return begin(obj, f, start, fields, event)


def begin(
    obj: d.ObjectState,
    f: d.Facts,
    start: tuple[d.Action, ...],
    fields: dict[str, Any],
    event: d.Action,
    logs: tuple[d.Action, ...] = (),
) -> d.Plan:
    """A new attempt: recorded in status (with the last attempt's logs), then submitted."""
    name = fields["jobName"]
    write = rules.status_write(obj, f, st.submitting(name), extra=fields, force=True)
    return d.Plan(
        start + logs + write + (event,) + rules.submit_actions(obj, f, name), job=name, wait_snapshot=True
    )


def ended(
    obj: d.ObjectState,
    f: d.Facts,
    name: str,
    info: JobInfo,
    conditions: st.Conditions,
    extra: dict[str, Any],
    logs: tuple[d.Action, ...],
) -> tuple[st.Conditions, d.Plan | None]:
    """A batch attempt that ended: Complete, the next attempt, or Failed for good."""
    if conditions.failed is None:
        return conditions, None
    why = conditions.failed.message
    failed = int(obj.status.get("failed") or 0) + 1
    limit = backoff_limit(obj)
    n = attempts(obj.status)
    extra["failed"] = failed
    if failed > limit:
        if limit > 0:
            conditions = st.failed(
                "BackoffLimitExceeded",
                f"{why}: attempt {n} failed; backoffLimit {limit} reached",
            )
        return conditions, None
    fields = next_attempt(
        obj,
        f,
        name=name,
        failed=True,
        message=why,
        start=obj.status.get("startTime") or st.iso(f.now),
    )
    new = fields["jobName"]
    if obj.spec.get("suspend"):  # never a retry while suspended: the next attempt waits
        fields.update(submitTime=None, startTime=None)
        message = f"suspended: attempt {n} failed; resuming submits attempt {n + 1}"
        return conditions, d.Plan(
            logs + rules.status_write(obj, f, st.suspended(message), extra=fields), job=new
        )
    event = d.event(
        "Warning",
        "AttemptFailed",
        f"attempt {n} (JuliaRun job {name}) failed: {why}; "
        f"submitting attempt {n + 1} as {new} (retry {failed} of backoffLimit {limit})",
        new,
    )
    return conditions, begin(obj, f, (), fields, event, logs)
