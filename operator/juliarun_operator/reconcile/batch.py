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

from typing import TYPE_CHECKING, Any, Mapping

from ..juliarun import jobtypes as jt
from . import status as st
from .naming import HASH_LEN, MAX_NAME

if TYPE_CHECKING:
    from .decide import ObjectState

FIELDS = ("ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit", "suspend")
MAX_HISTORY = 20  # past attempts kept in status
DEFAULT_BACKOFF_LIMIT = 0  # as KubeRay's RayJob: a JuliaRun job can be costly to run again
BATCH_TYPES = [t.name for t in jt.JOB_TYPES.values() if t.completes]


def is_batch(obj: ObjectState) -> bool:
    job_type = jt.JOB_TYPES.get(obj.spec.get("type", ""))
    return bool(job_type and job_type.completes)


def attempts(status: Mapping[str, Any]) -> int:
    """The number of the current attempt (1 before any is recorded)."""
    return int(status.get("attempts") or 1)


def attempt_name(obj: ObjectState, n: int) -> str:
    """The JuliaRun name of attempt `n`."""
    base = obj.spec.get("jobName") or obj.default_name
    if n <= 1:
        return base
    suffix = f"-{n}"
    if obj.spec.get("jobName"):
        return base[: MAX_NAME - len(suffix)].rstrip("-") + suffix
    prefix, digest = base.rsplit("-", 1)
    return prefix[: MAX_NAME - HASH_LEN - 1 - len(suffix)].rstrip("-") + f"-{digest}{suffix}"


def derived(obj: ObjectState, name: str) -> bool:
    """Whether `name` proves itself this object's: a default name of one of its attempts."""
    if obj.spec.get("jobName"):
        return False
    return any(name == attempt_name(obj, n) for n in range(1, attempts(obj.status) + 1))


def earlier_names(obj: ObjectState) -> list[str]:
    """The JuliaRun names of the attempts before the current one (each was submitted)."""
    return [attempt_name(obj, n) for n in range(1, attempts(obj.status))]


def backoff_limit(obj: ObjectState) -> int:
    return int(obj.spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))


def deadline_left(obj: ObjectState, now: float) -> float | None:
    """Seconds until activeDeadlineSeconds runs out (<= 0: it has), None without a deadline."""
    limit = obj.spec.get("activeDeadlineSeconds")
    start = obj.status.get("startTime")
    if limit is None or not start:
        return None
    return st.parse_time(start) + float(limit) - now


def ttl_left(obj: ObjectState, now: float) -> float | None:
    """Seconds until a finished object is to be deleted, None without a TTL."""
    ttl = obj.spec.get("ttlSecondsAfterFinished")
    ended = st.condition(obj.status, st.finished(obj.status)).get("lastTransitionTime")
    if ttl is None or not ended:
        return None
    return st.parse_time(ended) + float(ttl) - now


def next_attempt(obj: ObjectState, now: float, *, name: str, failed: bool, message: str,
                 start: str | None) -> dict[str, Any]:
    """The status fields that end the current attempt (job `name`) and begin the next,
    written before the next is submitted."""
    n = attempts(obj.status) + 1
    past = {"attempt": n - 1, "jobName": name, "result": "Failed" if failed else "Suspended",
            "message": message, "endTime": st.iso(now)}
    history = list(obj.status.get("pastAttempts") or [])[-(MAX_HISTORY - 1):] + [past]
    return {"attempts": n, "failed": int(obj.status.get("failed") or 0) + (1 if failed else 0),
            "pastAttempts": history,
            "jobName": attempt_name(obj, n), "submitted": False, "submitTime": st.iso(now),
            "startTime": start, "connection": obj.status.get("connection") or obj.connection,
            # what JuliaRun said of the attempt before: not this one's
            "created": None, "completed": None, "workersStarted": None, "workersSucceeded": None,
            "endpoints": None, "scale": None, "workers": None}
