"""`spec.managementPolicy: Observe`: the job named by spec.jobName is mirrored, never written.
Pure, no I/O.

An Observe object sends JuliaRun no submit, scale, update or delete; it reads the snapshot
(and, when a batch job ends, its last log lines) and writes its status from it as a Full
object would. It may observe only a job it would be allowed to adopt: one it submitted
itself, or one the administrator lets its namespace adopt (`--adopt-namespace`) that no
other object holds. Switching to Full takes the job over under the same rule (`takeover`).
"""

from __future__ import annotations

from typing import Any

from ...api import ManagementPolicy, management_policy
from ...juliarun import jobtypes as jt
from . import batch
from . import status as st
from .model import Action, Facts, ObjectState, Plan, post_logs
from .rules import ours, status_write, unavailable

OBSERVED = ManagementPolicy.OBSERVE.value  # status.managementPolicy while only mirrored
ADOPT_FLAG = "--adopt-namespace"


def observing(obj: ObjectState) -> bool:
    return management_policy(obj.spec) is ManagementPolicy.OBSERVE


def may_hold(obj: ObjectState, f: Facts, name: str) -> bool:
    """Whether this object may observe (or take over) job `name`: the adoption rules."""
    return ours(obj, f, name) or f.adopt_allowed


def refusal(obj: ObjectState, f: Facts, name: str, what: str) -> str:
    """Why job `name` may not be observed or taken over (`what`), and what would allow it."""
    if f.claimed_by:
        namespace, _, holder = f.claimed_by.partition("/")
        # another namespace's object names are not this one's people's to read
        who = f"JuliaRunJob {holder}" if namespace == obj.namespace else "an object of another namespace"
        return f"JuliaRun job {name} cannot be {what}: it is held by {who}"
    return (
        f"JuliaRun job {name} cannot be {what}: namespace {obj.namespace} may not adopt JuliaRun jobs "
        f"it did not submit (the operator's administrator may allow it: {ADOPT_FLAG} {obj.namespace})"
    )


def observe(obj: ObjectState, f: Facts, start: tuple[Action, ...]) -> Plan:
    name = obj.status.get("jobName") or obj.spec.get("jobName")
    if not name:  # the CRD requires it; an object admitted without that rule still is told
        message = "spec.managementPolicy Observe requires spec.jobName: the JuliaRun job to observe"
        return Plan(start + status_write(obj, f, st.stalled("InvalidSpec", message), warn=True))
    waiting = unavailable(obj, f, start, name)
    if waiting is not None:
        return waiting
    if f.snapshot is None:
        return Plan(start, job=name, wait_snapshot=True)
    # Refused before looking: whether the job exists is not told to who may not observe it.
    if not may_hold(obj, f, name):
        refused = st.stalled("ObserveRefused", refusal(obj, f, name, "observed"))
        return Plan(start + status_write(obj, f, refused, warn=True))
    info = f.snapshot.get(name)
    if info is None:
        message = (
            f"JuliaRun job {name} does not exist; managementPolicy Observe never submits it "
            "(submit it in JuliaRun, or set spec.managementPolicy Full and the type's parameters)"
        )
        missing = st.stalled("JobNotFound", message)
        # job=name: the snapshot that shows it wakes this object
        return Plan(start + status_write(obj, f, missing, warn=True, extra=_observed(f, name)), job=name)
    if info.type != obj.spec.get("type"):
        message = f"JuliaRun job {name} is a {info.type}, not a {obj.spec.get('type')}"
        return Plan(start + status_write(obj, f, st.stalled("Conflict", message), warn=True))
    conditions = st.from_info(info, jt.JOB_TYPES.get(info.type), None)  # JuliaRun's scale is the truth
    logs = (
        (post_logs(name, conditions.phase),)
        if info.status.completed and not obj.status.get("completed") and f.memory.logs_posted != name
        else ()
    )
    extra: dict[str, Any] = {**st.info_fields(info), **_observed(f, name)}
    if conditions.complete is not None:
        extra["succeeded"] = 1
        extra["completionTime"] = obj.status.get("completionTime") or st.iso(f.now)
    writes = status_write(obj, f, conditions, extra=extra)
    return Plan(
        start + logs + writes,
        job=name,
        wait_snapshot=conditions.reconciling.status == "True",
        watch=batch.is_batch(obj) and not info.status.completed,
    )


def _observed(f: Facts, name: str) -> dict[str, Any]:
    return {"jobName": name, "connection": f.connection, "managementPolicy": OBSERVED}


def takeover(obj: ObjectState, f: Facts, name: str) -> bool | None:
    """For a Full object whose status says it observed job `name`: True if it may take the
    job over (the adoption rules), False if not; None when there is nothing to take over."""
    if obj.status.get("managementPolicy") != OBSERVED:
        return None
    return may_hold(obj, f, name)


def takeover_refused(obj: ObjectState, f: Facts, name: str) -> st.Conditions:
    why = refusal(obj, f, name, "taken over by spec.managementPolicy Full")
    return st.stalled("TakeoverRefused", f"{why}; or set spec.managementPolicy back to Observe")
