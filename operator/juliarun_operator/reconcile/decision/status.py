"""A JuliaRunJob's status from JuliaRun's view of its job: pure functions, no I/O.

Conditions follow metav1.Condition and the kstatus conventions that Argo CD and Flux read:
Ready (at scale, or completed), Reconciling (work pending), Stalled (no retry will fix it).
Batch jobs add what `batch/v1` Job has, for `kubectl wait` and people used to Job: Complete
or Failed (True once, when the job has ended for good) and Suspended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, NamedTuple

from ...juliarun import jobtypes as jt
from ...juliarun.client import JobInfo

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"
COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
PUBLISHED = "Published"  # the Service, EndpointSlice and connection Secret (publish.py)
ORDER = {READY: 0, RECONCILING: 1, STALLED: 2, COMPLETE: 3, FAILED: 4, SUSPENDED: 5, PUBLISHED: 6}


class Cond(NamedTuple):
    """One condition's status ("True", "False", "Unknown"), reason and message."""

    status: str
    reason: str
    message: str = ""


class Conditions(NamedTuple):
    """The phase and the three conditions that together say where an object stands, and
    the batch ones where they apply (None: left as they are, but Suspended turns False)."""

    phase: str
    ready: Cond
    reconciling: Cond
    stalled: Cond
    complete: Cond | None = None
    failed: Cond | None = None
    suspended: Cond | None = None


def parse_time(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as Kubernetes writes it."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).isoformat().replace("+00:00", "Z")


def set_condition(
    conditions: list[dict[str, Any]], ctype: str, cond: Cond, generation: int, now: str
) -> list[dict[str, Any]]:
    """`conditions` with one condition set; lastTransitionTime moves only when status does."""
    old = next((c for c in conditions if c.get("type") == ctype), None)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == cond.status and old.get("lastTransitionTime")
        else now
    )
    new = {
        "type": ctype,
        "status": cond.status,
        "reason": cond.reason,
        "message": cond.message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }
    return [c for c in conditions if c.get("type") != ctype] + [new]


def conditions_for(
    status: Mapping[str, Any], generation: int, now: str, c: Conditions
) -> list[dict[str, Any]]:
    """The conditions, in a fixed order, updated from `c`."""
    conditions = list(status.get("conditions") or [])
    suspended = c.suspended
    if suspended is None and condition(status, SUSPENDED).get("status") == "True":
        suspended = Cond("False", "Resumed", "resumed")
    for ctype, cond in (
        (READY, c.ready),
        (RECONCILING, c.reconciling),
        (STALLED, c.stalled),
        (COMPLETE, c.complete),
        (FAILED, c.failed),
        (SUSPENDED, suspended),
    ):
        if cond is not None:
            conditions = set_condition(conditions, ctype, cond, generation, now)
    return sorted(conditions, key=lambda x: ORDER.get(x["type"], 3))


def condition(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), {})


def paused() -> Conditions:
    return Conditions(
        "Paused",
        Cond("Unknown", "Paused", "paused: the operator does not call JuliaRun for this object"),
        Cond("False", "Paused"),
        Cond("False", "Paused"),
    )


def waiting(phase: str, reason: str, message: str) -> Conditions:
    """Work that waits on something outside the object (JuliaRun, a Secret)."""
    return Conditions(
        phase, Cond("Unknown", reason, message), Cond("True", reason, message), Cond("False", "Retrying")
    )


def stalled(reason: str, message: str) -> Conditions:
    return Conditions(
        "Failed", Cond("False", reason, message), Cond("False", reason), Cond("True", reason, message)
    )


def finished(status: Mapping[str, Any]) -> str:
    """COMPLETE or FAILED when the job has ended for good, else ""."""
    for ctype in (COMPLETE, FAILED):
        if condition(status, ctype).get("status") == "True":
            return ctype
    return ""


def suspended(message: str) -> Conditions:
    return Conditions(
        "Suspended",
        Cond("False", "Suspended", message),
        Cond("False", "Suspended"),
        Cond("False", "Suspended"),
        suspended=Cond("True", "Suspended", message),
    )


def failed(reason: str, message: str) -> Conditions:
    """Ended for good without success: Failed (and Stalled, which kstatus and Argo CD read)."""
    return Conditions(
        "Failed",
        Cond("False", reason, message),
        Cond("False", reason),
        Cond("True", reason, message),
        failed=Cond("True", reason, message),
    )


def submitting(name: str) -> Conditions:
    message = f"submitting job {name}"
    return Conditions(
        "Pending",
        Cond("False", "Submitting", message),
        Cond("True", "Submitting", message),
        Cond("False", "Healthy"),
    )


def from_info(info: JobInfo, job_type: jt.JobType | None, wanted: int | None) -> Conditions:
    """What JuliaRun's view of a job says about it."""
    st, scale = info.status, info.scale
    if not st.created:
        msg = "scheduled: waiting for JuliaRun to create the job"
        return Conditions(
            "Pending",
            Cond("False", "Scheduled", msg),
            Cond("True", "Scheduled", msg),
            Cond("False", "Healthy"),
        )
    if st.completed:
        if st.workers_succeeded < st.workers_started:
            msg = f"job failed: {st.workers_succeeded} of {st.workers_started} workers succeeded"
            return failed("JobFailed", msg)._replace(reconciling=Cond("False", "Completed"))
        return Conditions(
            "Completed",
            Cond("True", "Completed", "job completed"),
            Cond("False", "Completed"),
            Cond("False", "Healthy"),
            complete=Cond("True", "Completed", "job completed"),
        )
    if job_type and job_type.scalable:
        target = scale.requested if wanted is None else wanted
        # At scale only when JuliaRun runs exactly what is asked: more running is still scaling down.
        if scale.requested != target or scale.running != target:
            msg = f"scaling: {scale.running}/{target} workers running"
            return Conditions(
                "Running",
                Cond("False", "Scaling", msg),
                Cond("True", "Scaling", msg),
                Cond("False", "Healthy"),
            )
        msg = f"{scale.running}/{target} workers running"
        return Conditions(
            "Running", Cond("True", "AtScale", msg), Cond("False", "Idle"), Cond("False", "Healthy")
        )
    return Conditions(
        "Running", Cond("True", "Running", "job running"), Cond("False", "Idle"), Cond("False", "Healthy")
    )


def info_fields(info: JobInfo) -> dict[str, Any]:
    """JuliaRun's status tuple, scale and endpoints, spelled out as status fields."""
    return {
        "created": info.status.created,
        "completed": info.status.completed,
        "workersStarted": info.status.workers_started,
        "workersSucceeded": info.status.workers_succeeded,
        "scale": {"running": info.scale.running, "requested": info.scale.requested},
        "workers": f"{info.scale.running}/{info.scale.requested}",
        "endpoints": list(info.endpoints),
    }


def fields(status: Mapping[str, Any], generation: int, now: str, c: Conditions) -> dict[str, Any]:
    """The phase, message and conditions fields for `c`."""
    return {
        "phase": c.phase,
        "observedGeneration": generation,
        "message": c.ready.message if c.ready.status != "True" else "",
        "conditions": conditions_for(status, generation, now, c),
    }


def changed(current: Mapping[str, Any], view: Mapping[str, Any]) -> bool:
    """Whether writing `view` would change anything a person or tool can see."""
    return any(current.get(k) != v for k, v in view.items())
