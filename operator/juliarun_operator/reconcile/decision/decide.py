"""The decision: from an object and JuliaRun's view of it, what to do. Pure, no I/O.

`reconcile(obj, facts)` reads state, never history: the object's spec and status, the latest
snapshot of the connection's jobs, and what this process itself sent (`Memory`, lost on a
restart, which the landing window covers). Whatever was missed (a crash, a lost event, a
change while paused or while another replica acted) the next call repairs.

A job is this object's only if its name proves it (the default name hashes the object's UID),
this object recorded the name before submitting it, or the object asks to adopt it and the
administrator lets its namespace. An answer from JuliaRun to `submitJob` means the request
reached it: a refused submit did not land, whatever the code.

Here: the entry and the life of a live object; `deleting.py` decides for an object being
deleted, `batch.py` adds the rules of batch jobs, `rules.py` holds what they share.
"""

from __future__ import annotations

from typing import Any

from ...api import ADOPT_ANNOTATION, FINALIZER
from ...juliarun import jobtypes as jt
from ...juliarun.client import JobInfo
from . import batch
from . import status as st
from .deleting import deleting
from .mapping import changed_params, params_digest
from .model import (
    DEFAULT_CONNECTION,
    SECRET_RECHECK,
    Action,
    Facts,
    Kind,
    ObjectState,
    Outcome,
    Plan,
    event,
    post_logs,
    set_scale,
    update,
)
from .observe import observe, observing, takeover, takeover_refused
from .rules import landing_wait, ours, refusal_wait, spec_stall, status_write, submit_actions, unavailable


def reconcile(obj: ObjectState, f: Facts) -> Plan:
    if obj.deleting:
        return deleting(obj, f)
    start = () if FINALIZER in obj.finalizers else (Action(Kind.ADD_FINALIZER),)
    if obj.paused:
        return Plan(start + status_write(obj, f, st.paused()), job=obj.status.get("jobName"))
    if st.finished(obj.status):
        return batch.finished_plan(obj, f, start)
    recorded = obj.status.get("jobName")
    if recorded and obj.status.get("connection", DEFAULT_CONNECTION) != f.connection:
        message = (
            f"job {recorded} was submitted through connection {obj.status.get('connection')}; "
            f"its connection cannot change once submitted (now {f.connection})"
        )
        return Plan(start + status_write(obj, f, st.stalled("ConnectionChanged", message)), job=recorded)
    if observing(obj):  # no parameters needed: none is sent
        return observe(obj, f, start)
    if f.params is None:
        stalled = st.stalled("InvalidSpec", f.invalid)
        again = SECRET_RECHECK if f.invalid_outside else None
        return Plan(start + status_write(obj, f, stalled, warn=True), job=recorded, requeue_after=again)
    if f.memory.invalid and f.memory.invalid_generation == obj.generation:  # refused before sending
        stalled = st.stalled("InvalidSpec", f.memory.invalid)
        return Plan(start + status_write(obj, f, stalled, warn=True), job=recorded)
    chosen = obj.spec.get("jobName")
    if chosen and not recorded and not f.trusted and not chosen.startswith(f"{obj.namespace}-"):
        message = (
            f"spec.jobName {chosen!r} must start with {obj.namespace}- (the namespace's own "
            "names; the operator's administrator may allow others: ADOPT_NAMESPACES)"
        )
        return Plan(start + status_write(obj, f, st.stalled("InvalidSpec", message), warn=True))
    name = recorded or f.memory.name or chosen or obj.default_name
    waiting = unavailable(obj, f, start, name)
    if waiting is not None:
        return waiting
    if f.snapshot is None:
        return Plan(start, job=name, wait_snapshot=True)
    info = f.snapshot.get(name)
    if batch.is_batch(obj):
        held = batch.hold(obj, f, name, info, start)
        if held is not None:
            return held
    plan = _present(obj, f, name, info, start) if info is not None else _absent(obj, f, name, start)
    # Look again when the deadline runs out, counted from the startTime this plan may write.
    left = batch.deadline_left(obj, f.now, batch.start_time(obj, f, name)) if batch.is_batch(obj) else None
    if left is not None and left > 0:
        plan = plan._replace(requeue_after=min(plan.requeue_after or left, left))
    return plan


def _present(obj: ObjectState, f: Facts, name: str, info: JobInfo, start: tuple[Action, ...]) -> Plan:
    taking = takeover(obj, f, name)  # spec.managementPolicy turned from Observe to Full
    if taking is False:
        return Plan(start + status_write(obj, f, takeover_refused(obj, f, name), warn=True))
    if not taking and not ours(obj, f, name):
        if obj.adopt and not f.adopt_allowed:
            why = (
                _holder(obj, f.claimed_by)
                if f.claimed_by
                else "this namespace may not adopt jobs (the operator's administrator decides)"
            )
            message = f"JuliaRun job {name} cannot be adopted: {why}"
        else:
            message = (
                f"JuliaRun job {name} already exists and was not created for this object; "
                f"set spec.jobName to another name, or annotate {ADOPT_ANNOTATION}=true to adopt it"
            )
        return _conflict(obj, f, start, message)
    if info.type != obj.spec.get("type"):
        message = f"JuliaRun job {name} is a {info.type}, not a {obj.spec.get('type')}"
        return _conflict(obj, f, start, message)
    m, params = f.memory, f.params or {}
    actions: list[Action] = []
    job_type = jt.JOB_TYPES.get(obj.spec.get("type", ""))
    wanted = obj.spec.get("parallelism")
    stall = spec_stall(obj, f)
    digest = params_digest(params)
    applied = params_digest(m.params) if m.params is not None else obj.status.get("parametersHash")
    if applied is None and obj.generation <= 1:
        applied = digest  # submitted from this very spec by an earlier process
    if not stall and not info.status.completed:
        if applied != digest:
            sent = (
                changed_params(m.params, params, obj.spec["type"])
                if m.params is not None
                else {k: v for k, v in params.items() if k != "nworkers"}
            )
            actions.append(update(name, sent))
        if (
            wanted is not None
            and job_type
            and job_type.scalable
            and info.scale.requested != wanted
            and not (m.scale == wanted and m.scale_at >= f.snapshot_time)
        ):
            actions.append(set_scale(name, wanted))
    conditions = st.from_info(info, job_type, wanted)
    logs = (
        (post_logs(name, conditions.phase),)
        if info.status.completed and not obj.status.get("completed") and m.logs_posted != name
        else ()
    )
    if info.status.completed and batch.is_batch(obj):
        ended: dict[str, Any] = {}
        conditions, retry = batch.ended(obj, f, name, info, conditions, ended, logs)
        if retry is not None:
            return retry._replace(actions=start + retry.actions)
    else:
        ended = {}
    if stall:
        conditions = conditions._replace(ready=st.Cond("False", *stall), stalled=st.Cond("True", *stall))
    extra = {
        **st.info_fields(info),
        "jobName": name,
        "submitted": True,
        "parametersHash": digest,
        "connection": f.connection,
        **ended,
    }
    if taking:
        extra["managementPolicy"] = None  # taken over: from now on as if submitted here
    if batch.is_batch(obj):
        extra["attempts"] = batch.attempts(obj.status)
        extra["startTime"] = batch.start_time(obj, f, name)
        if conditions.complete is not None:
            extra["succeeded"] = 1
            extra["completionTime"] = obj.status.get("completionTime") or st.iso(f.now)
    actions += logs
    if not batch.derived(obj, name) and not obj.status.get("submitted") and m.submit is None:
        actions.append(event("Normal", "Adopted", f"adopted existing JuliaRun job {name}", name))
    writes = status_write(obj, f, conditions, extra=extra)
    busy = conditions.reconciling.status == "True" or bool(actions)
    return Plan(
        start + tuple(actions) + writes,
        job=name,
        wait_snapshot=busy,
        watch=batch.is_batch(obj) and not info.status.completed,
        requeue_after=refusal_wait(m, f.now) if stall else None,
    )


def _conflict(obj: ObjectState, f: Facts, start: tuple[Action, ...], message: str) -> Plan:
    """The name is not this object's: stalled, and the name is not recorded as ours."""
    extra = {"jobName": None, "submitTime": None}
    return Plan(start + status_write(obj, f, st.stalled("Conflict", message), warn=True, extra=extra))


def _absent(obj: ObjectState, f: Facts, name: str, start: tuple[Action, ...]) -> Plan:
    m = f.memory
    if m.name == name and m.submit is Outcome.LANDED and f.snapshot_time < m.landed_at:
        return Plan(start, job=name, wait_snapshot=True)  # not in a snapshot taken after it yet
    if obj.status.get("submitted") or (m.name == name and m.submit is Outcome.LANDED):
        message = (
            f"job {name} is not in JuliaRun: it was deleted outside Kubernetes; "
            "delete and re-create this object to run it again"
        )
        return Plan(start + status_write(obj, f, st.stalled("JobMissing", message), warn=True), job=name)
    stall = spec_stall(obj, f)
    if stall:
        # A refused submit did not land: the recorded name goes, so that no later look (after
        # a restart, with this memory gone) can take a job of that name for ours.
        forget = {"jobName": None, "submitTime": None} if name != obj.default_name else {}
        return Plan(
            start + status_write(obj, f, st.stalled(*stall), warn=True, extra=forget),
            job=name,
            requeue_after=refusal_wait(m, f.now),
        )
    wait = landing_wait(obj, f, name)
    if wait > 0:
        conditions = st.waiting(
            "Pending",
            "WaitingForEarlierSubmit",
            f"an earlier submitJob of {name} may still land; looking again in {wait:.0f} s",
        )
        return Plan(start + status_write(obj, f, conditions), job=name, requeue_after=wait)
    if name != obj.default_name and f.snapshot_time < obj.created + 1:
        # A chosen name may be taken already: look at JuliaRun as it is since the object
        # exists (creationTimestamp has whole seconds), not at an older picture.
        return Plan(start, job=name, wait_snapshot=True)
    actions: list[Action] = list(start)
    if name != obj.default_name:  # a name that does not prove itself is recorded first
        actions += status_write(
            obj,
            f,
            st.submitting(name),
            force=True,
            extra={
                "jobName": name,
                "submitted": False,
                "submitTime": st.iso(f.now),
                "connection": f.connection,
            },
        )
    return Plan(tuple(actions) + submit_actions(obj, f, name), job=name, wait_snapshot=True)


def _holder(obj: ObjectState, claimed_by: str) -> str:
    """Who holds the name, as this object's people may be told: another namespace's object
    names are not theirs to read."""
    namespace, _, name = claimed_by.partition("/")
    return (
        f"held by JuliaRunJob {name}"
        if namespace == obj.namespace
        else "held by an object of another namespace"
    )
