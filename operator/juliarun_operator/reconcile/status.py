"""A JuliaRunJob's status from JuliaRun's view of its job: pure functions, no I/O.

Conditions follow metav1.Condition and the kstatus conventions that Argo CD and Flux read:
Ready (at scale, or completed), Reconciling (work pending), Stalled (no retry will fix it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..juliarun import jobtypes as jt
from ..juliarun.client import JobInfo

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"
# Stalled reasons that handlers set (a refused spec, a name conflict): the status sync
# keeps them until the spec changes, since no JuliaRun state can clear them.
HANDLER_STALLED_REASONS = frozenset({"InvalidSpec", "Conflict", "SubmitRefused", "UpdateRefused"})
# Everything the status sync owns; lastSyncTime changes only with one of these.
VIEW_FIELDS = ("phase", "created", "completed", "workersStarted", "workersSucceeded", "scale",
               "workers", "endpoints", "message", "conditions", "observedGeneration")


def parse_time(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as Kubernetes writes it."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ObjectView:
    """What the status logic needs of a JuliaRunJob."""

    namespace: str
    name: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)
    paused: bool = False
    deleting: bool = False

    @classmethod
    def of(cls, body: Mapping[str, Any], pause_annotation: str) -> "ObjectView":
        meta = body.get("metadata", {})
        annotations = meta.get("annotations") or {}
        return cls(meta.get("namespace", ""), meta.get("name", ""), meta.get("generation", 0),
                   body.get("spec") or {}, body.get("status") or {},
                   annotations.get(pause_annotation, "").lower() == "true",
                   bool(meta.get("deletionTimestamp")))


def set_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str,
                  generation: int, now: str) -> list[dict]:
    """`conditions` with one condition set; lastTransitionTime moves only when status does."""
    old = next((c for c in conditions if c.get("type") == ctype), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status \
        and old.get("lastTransitionTime") else now
    new = {"type": ctype, "status": status, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": since}
    return [c for c in conditions if c.get("type") != ctype] + [new]


def conditions_for(status: Mapping[str, Any], generation: int, now: str,
                   ready: tuple[str, str, str], reconciling: tuple[str, str, str],
                   stalled: tuple[str, str, str]) -> list[dict]:
    """The three conditions, in a fixed order, each given as (status, reason, message)."""
    conditions = list(status.get("conditions") or [])
    for ctype, (cstatus, reason, message) in ((READY, ready), (RECONCILING, reconciling),
                                              (STALLED, stalled)):
        conditions = set_condition(conditions, ctype, cstatus, reason, message, generation, now)
    order = {READY: 0, RECONCILING: 1, STALLED: 2}
    return sorted(conditions, key=lambda c: order.get(c["type"], 3))


def handler_stall(status: Mapping[str, Any], generation: int) -> dict | None:
    """A Stalled condition a handler set for this generation, if any."""
    for c in status.get("conditions") or []:
        if c.get("type") == STALLED and c.get("status") == "True" \
                and c.get("reason") in HANDLER_STALLED_REASONS \
                and c.get("observedGeneration") == generation:
            return c
    return None


def view_of(obj: ObjectView, info: JobInfo | None, *, reachable: bool = True,
            problem: str = "", now: str | None = None) -> dict[str, Any]:
    """The status fields JuliaRun's view implies for a submitted job.

    `info` None means JuliaRun has no such job; `reachable` False means we could not ask.
    """
    now = now or now_iso()
    status, gen = obj.status, obj.generation
    out: dict[str, Any] = {"observedGeneration": gen}
    job_type = jt.JOB_TYPES.get(obj.spec.get("type", ""))
    wanted = obj.spec.get("parallelism")

    if obj.deleting:
        phase, ready, recon = "Deleting", ("False", "Deleting", "deleting the JuliaRun job"), \
            ("True", "Deleting", "deleting the JuliaRun job")
        stalled = ("False", "Deleting", "")
    elif obj.paused:
        phase = "Paused"
        ready = ("Unknown", "Paused", "paused: the operator does not call JuliaRun for this object")
        recon, stalled = ("False", "Paused", ""), ("False", "Paused", "")
    elif not reachable:
        phase = status.get("phase", "Pending")
        ready = ("Unknown", "JuliaRunUnavailable", problem or "JuliaRun cannot be reached")
        recon = ("True", "WaitingForJuliaRun", problem or "JuliaRun cannot be reached")
        stalled = ("False", "Retrying", "")
    elif info is None:
        phase = "Failed"
        message = (f"job {status.get('jobName')} is not in JuliaRun: it was deleted outside "
                   "Kubernetes; delete and re-create this object to run it again")
        ready, recon = ("False", "JobMissing", message), ("False", "JobMissing", "")
        stalled = ("True", "JobMissing", message)
    else:
        phase, ready, recon, stalled = _from_info(info, job_type, wanted)
        out.update({
            "created": info.status.created, "completed": info.status.completed,
            "workersStarted": info.status.workers_started,
            "workersSucceeded": info.status.workers_succeeded,
            "scale": {"running": info.scale.running, "requested": info.scale.requested},
            "workers": f"{info.scale.running}/{info.scale.requested}",
            "endpoints": list(info.endpoints),
        })
    kept = handler_stall(status, gen)
    if kept and not obj.deleting:
        stalled = ("True", kept["reason"], kept.get("message", ""))
        ready = ("False", kept["reason"], kept.get("message", ""))
    out["phase"] = phase
    out["message"] = ready[2] if ready[0] != "True" else ""
    out["conditions"] = conditions_for(status, gen, now, ready, recon, stalled)
    return out


def _from_info(info: JobInfo, job_type: jt.JobType | None, wanted: int | None):
    st, scale = info.status, info.scale
    if not st.created:
        msg = "scheduled: waiting for JuliaRun to create the job"
        return "Pending", ("False", "Scheduled", msg), ("True", "Scheduled", msg), \
            ("False", "Healthy", "")
    if st.completed:
        if st.workers_succeeded < st.workers_started:
            msg = f"job failed: {st.workers_succeeded} of {st.workers_started} workers succeeded"
            return "Failed", ("False", "JobFailed", msg), ("False", "Completed", ""), \
                ("True", "JobFailed", msg)
        return "Completed", ("True", "Completed", "job completed"), \
            ("False", "Completed", ""), ("False", "Healthy", "")
    scalable = bool(job_type and job_type.scalable)
    if scalable:
        target = scale.requested if wanted is None else wanted
        if scale.requested != target or scale.running < target:
            msg = f"scaling: {scale.running}/{target} workers running"
            return "Running", ("False", "Scaling", msg), ("True", "Scaling", msg), \
                ("False", "Healthy", "")
        msg = f"{scale.running}/{target} workers running"
        return "Running", ("True", "AtScale", msg), ("False", "Idle", ""), ("False", "Healthy", "")
    return "Running", ("True", "Running", "job running"), ("False", "Idle", ""), \
        ("False", "Healthy", "")


def changed(current: Mapping[str, Any], view: Mapping[str, Any]) -> bool:
    """Whether writing `view` would change anything a person or tool can see."""
    return any(current.get(k) != v for k, v in view.items())
