"""The decision: from an object and JuliaRun's view of it, what to do. Pure, no I/O.

`reconcile(obj, facts)` reads state, never history: the object's spec and status, the latest
snapshot of the connection's jobs, and what this process itself sent (`Memory`, lost on a
restart, which the landing window covers). Whatever was missed (a crash, a lost event, a
change while paused or while another replica acted) the next call repairs.

A job is this object's only if its name proves it (the default name hashes the object's UID),
this object recorded the name before submitting it, or the object asks to adopt it and the
administrator lets its namespace. An answer from JuliaRun to `submitJob` means the request
reached it: a refused submit did not land, whatever the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..juliarun import jobtypes as jt
from ..juliarun.client import JobInfo
from . import batch
from . import status as st
from .mapping import changed_params, params_digest
from .model import (
    ADOPT_ANNOTATION,
    DEFAULT_CONNECTION,
    FINALIZER,
    PAUSE_ANNOTATION,
    REFUSAL_BACKOFF,
    SNAPSHOT_WAIT,
    Action,
    Facts,
    Kind,
    Memory,
    ObjectState,
    Outcome,
    Plan,
)

__all__ = [
    "ADOPT_ANNOTATION",
    "DEFAULT_CONNECTION",
    "FINALIZER",
    "PAUSE_ANNOTATION",
    "REFUSAL_BACKOFF",
    "SNAPSHOT_WAIT",
    "Action",
    "Facts",
    "Kind",
    "Memory",
    "ObjectState",
    "Outcome",
    "Plan",
    "reconcile",
    "refusal_wait",
]


def reconcile(obj: ObjectState, f: Facts) -> Plan:
    if obj.deleting:
        return _deleting(obj, f)
    start = () if FINALIZER in obj.finalizers else (Action(Kind.ADD_FINALIZER),)
    if obj.paused:
        return Plan(start + _status(obj, f, st.paused()), job=obj.status.get("jobName"))
    if st.finished(obj.status):
        return batch.finished_plan(obj, f, start)
    recorded = obj.status.get("jobName")
    if recorded and obj.status.get("connection", DEFAULT_CONNECTION) != f.connection:
        message = (
            f"job {recorded} was submitted through connection {obj.status.get('connection')}; "
            f"its connection cannot change once submitted (now {f.connection})"
        )
        return Plan(start + _status(obj, f, st.stalled("ConnectionChanged", message)), job=recorded)
    if f.params is None:
        return Plan(start + _status(obj, f, st.stalled("InvalidSpec", f.invalid), warn=True), job=recorded)
    chosen = obj.spec.get("jobName")
    if chosen and not recorded and not f.trusted and not chosen.startswith(f"{obj.namespace}-"):
        message = (
            f"spec.jobName {chosen!r} must start with {obj.namespace}- (the namespace's own "
            "names; the operator's administrator may allow others: ADOPT_NAMESPACES)"
        )
        return Plan(start + _status(obj, f, st.stalled("InvalidSpec", message), warn=True))
    name = recorded or f.memory.name or chosen or obj.default_name
    if f.unavailable:
        reason = "CredentialsUnavailable" if f.no_credentials else "JuliaRunUnavailable"
        waiting = st.waiting(obj.status.get("phase", "Pending"), reason, f.unavailable)
        return Plan(start + _status(obj, f, waiting, warn=f.no_credentials), job=name, wait_snapshot=True)
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


def _submit(obj: ObjectState, f: Facts, name: str) -> tuple[Action, ...]:
    params = dict(f.params or {})
    actions = [Action(Kind.SUBMIT, name, params)]
    job_type = jt.job_type(obj.spec["type"])
    wanted = obj.spec.get("parallelism")
    if wanted is not None and job_type.scalable and params.get("nworkers") != wanted:
        actions.append(Action(Kind.SET_SCALE, name, wanted))  # types that take no nworkers
    return tuple(actions)


def _ours(obj: ObjectState, f: Facts, name: str) -> bool:
    """Whether a job of this name in JuliaRun is this object's."""
    m = f.memory
    if f.claimed_by:
        return False
    if m.name == name and m.submit is Outcome.REFUSED:  # so the job there is someone else's
        return obj.adopt and f.adopt_allowed
    if m.name == name and m.submit is not None:
        return True
    if obj.status.get("jobName") == name and (obj.status.get("submitted") or obj.status.get("submitTime")):
        return True
    return batch.derived(obj, name) or (obj.adopt and f.adopt_allowed)


def _present(obj: ObjectState, f: Facts, name: str, info: JobInfo, start: tuple[Action, ...]) -> Plan:
    if not _ours(obj, f, name):
        if obj.adopt and not f.adopt_allowed:
            why = (
                f"held by {f.claimed_by}"
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
    spec_stall = _spec_stall(obj, f)
    digest = params_digest(params)
    applied = params_digest(m.params) if m.params is not None else obj.status.get("parametersHash")
    if applied is None and obj.generation <= 1:
        applied = digest  # submitted from this very spec by an earlier process
    if not spec_stall and not info.status.completed:
        if applied != digest:
            sent = (
                changed_params(m.params, params, obj.spec["type"])
                if m.params is not None
                else {k: v for k, v in params.items() if k != "nworkers"}
            )
            actions.append(Action(Kind.UPDATE, name, sent))
        if (
            wanted is not None
            and job_type
            and job_type.scalable
            and info.scale.requested != wanted
            and not (m.scale == wanted and m.scale_at >= f.snapshot_time)
        ):
            actions.append(Action(Kind.SET_SCALE, name, wanted))
    conditions = st.from_info(info, job_type, wanted)
    logs = (
        (Action(Kind.POST_LOGS, name, conditions.phase),)
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
    if spec_stall:
        conditions = conditions._replace(
            ready=st.Cond("False", *spec_stall), stalled=st.Cond("True", *spec_stall)
        )
    extra = {
        **st.info_fields(info),
        "jobName": name,
        "submitted": True,
        "parametersHash": digest,
        "connection": f.connection,
        **ended,
    }
    if batch.is_batch(obj):
        extra["attempts"] = batch.attempts(obj.status)
        extra["startTime"] = batch.start_time(obj, f, name)
        if conditions.complete is not None:
            extra["succeeded"] = 1
            extra["completionTime"] = obj.status.get("completionTime") or st.iso(f.now)
    actions += logs
    if not batch.derived(obj, name) and not obj.status.get("submitted") and m.submit is None:
        actions.append(
            Action(
                Kind.EVENT, name, "Normal", reason="Adopted", message=f"adopted existing JuliaRun job {name}"
            )
        )
    writes = _status(obj, f, conditions, extra=extra)
    busy = conditions.reconciling.status == "True" or bool(actions)
    return Plan(
        start + tuple(actions) + writes,
        job=name,
        wait_snapshot=busy,
        requeue_after=refusal_wait(m, f.now) if spec_stall else None,
    )


def _conflict(obj: ObjectState, f: Facts, start: tuple[Action, ...], message: str) -> Plan:
    """The name is not this object's: stalled, and the name is not recorded as ours."""
    extra = {"jobName": None, "submitTime": None}
    return Plan(start + _status(obj, f, st.stalled("Conflict", message), warn=True, extra=extra))


def _absent(obj: ObjectState, f: Facts, name: str, start: tuple[Action, ...]) -> Plan:
    m = f.memory
    if m.name == name and m.submit is Outcome.LANDED and f.snapshot_time < m.submit_at:
        return Plan(start, job=name, wait_snapshot=True)  # not in a snapshot taken after it yet
    if obj.status.get("submitted") or (m.name == name and m.submit is Outcome.LANDED):
        message = (
            f"job {name} is not in JuliaRun: it was deleted outside Kubernetes; "
            "delete and re-create this object to run it again"
        )
        return Plan(start + _status(obj, f, st.stalled("JobMissing", message), warn=True), job=name)
    spec_stall = _spec_stall(obj, f)
    if spec_stall:
        # A refused submit did not land: the recorded name goes, so that no later look (after
        # a restart, with this memory gone) can take a job of that name for ours.
        forget = {"jobName": None, "submitTime": None} if name != obj.default_name else {}
        return Plan(
            start + _status(obj, f, st.stalled(*spec_stall), warn=True, extra=forget),
            job=name,
            requeue_after=refusal_wait(m, f.now),
        )
    wait = _landing_wait(obj, f, name)
    if wait > 0:
        conditions = st.waiting(
            "Pending",
            "WaitingForEarlierSubmit",
            f"an earlier submitJob of {name} may still land; looking again in {wait:.0f} s",
        )
        return Plan(start + _status(obj, f, conditions), job=name, requeue_after=wait)
    if name != obj.default_name and f.snapshot_time < obj.created + 1:
        # A chosen name may be taken already: look at JuliaRun as it is since the object
        # exists (creationTimestamp has whole seconds), not at an older picture.
        return Plan(start, job=name, wait_snapshot=True)
    actions: list[Action] = list(start)
    if name != obj.default_name:  # a name that does not prove itself is recorded first
        actions += _status(
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
    return Plan(tuple(actions) + _submit(obj, f, name), job=name, wait_snapshot=True)


def _landing_wait(obj: ObjectState, f: Facts, name: str) -> float:
    """Seconds until no earlier submitJob of `name` can still land (0: none can)."""
    m = f.memory
    if m.name == name and m.submit is Outcome.UNKNOWN:
        return m.submit_at + f.landing - f.now
    if m.name == name:
        return 0.0  # this process knows what it sent
    if obj.status.get("jobName") == name and obj.status.get("submitTime"):
        return st.parse_time(obj.status["submitTime"]) + f.landing - f.now
    # creationTimestamp has whole seconds: an object stamped in this process's first second
    # was created after it began to act.
    # The finalizer goes on before any submit: without it, nothing was ever sent.
    if (
        name == obj.default_name
        and obj.created + 1 < f.acting_since
        and FINALIZER in obj.finalizers
        and not m.added_finalizer
    ):
        return f.acting_since + f.landing - f.now  # a process before this one may have sent it
    return 0.0


def refusal_wait(m: Memory, now: float) -> float:
    """Seconds until a refused request of this generation may be sent again. Whether a
    refusal is final cannot be read from a code we do not know, so it is retried, ever
    more slowly, and shown as Stalled meanwhile; a new generation retries at once."""
    first, cap = REFUSAL_BACKOFF
    return m.refused_at + min(cap, first * 2.0 ** max(0, m.refusals - 1)) - now


def _spec_stall(obj: ObjectState, f: Facts) -> tuple[str, str] | None:
    """A refusal of this generation's spec that is not yet due for another try."""
    m = f.memory
    if refusal_wait(m, f.now) <= 0:
        return None
    if m.refused_generation == obj.generation:
        return "SubmitRefused", m.refusal
    if m.update_refused_generation == obj.generation:
        return "UpdateRefused", m.update_refusal
    return None


def _deleting(obj: ObjectState, f: Facts) -> Plan:
    if FINALIZER not in obj.finalizers:
        return Plan()
    m = f.memory
    done = (Action(Kind.REMOVE_FINALIZER),)
    name = obj.status.get("jobName") or m.name or (None if obj.spec.get("jobName") else obj.default_name)
    earlier = [n for n in batch.earlier_names(obj) if n != name and n not in m.deleted_jobs]
    if (name is None or name in m.deleted_jobs) and not earlier:
        return Plan(done)
    if obj.spec.get("deletionPolicy", "Delete") == "Orphan":
        left = ", ".join(n for n in [*earlier, name or ""] if n)
        orphaned = Action(
            Kind.EVENT, name or "", "Normal", reason="Orphaned", message=f"left JuliaRun job {left} running"
        )
        return Plan((orphaned, *done))
    if f.snapshot is None:
        if f.no_credentials and not obj.status.get("connection") and m.submit is None:
            return Plan(done)  # never submitted: nothing could be sent without its credentials
        return Plan(job=name, wait_snapshot=True)
    for old in earlier:  # earlier attempts: each was submitted, recorded, and is ours
        if f.snapshot.get(old) is not None:
            return Plan((Action(Kind.DELETE, old),), job=name, wait_snapshot=True)
    if name is None or name in m.deleted_jobs:
        return Plan(done)
    if f.snapshot.get(name) is not None:
        if _ours(obj, f, name):
            return Plan((Action(Kind.DELETE, name),), job=name, wait_snapshot=True)
        return Plan(done)  # not ours (a conflict): nothing of ours to delete
    if m.name == name and m.submit is Outcome.LANDED and f.snapshot_time < m.submit_at:
        return Plan(job=name, wait_snapshot=True)
    wait = _landing_wait(obj, f, name)
    if wait > 0:  # deleting now would leak a submit that lands later
        return Plan(job=name, requeue_after=wait)
    return Plan(done)


def _status(
    obj: ObjectState,
    f: Facts,
    c: st.Conditions,
    *,
    extra: Mapping[str, Any] | None = None,
    warn: bool = False,
    force: bool = False,
) -> tuple[Action, ...]:
    """A status write, if it changes anything; with `warn`, a Warning Event when it is new."""
    fields = {**st.fields(obj.status, obj.generation, st.iso(f.now), c), **(extra or {})}
    if not force and not st.changed(obj.status, fields):
        return ()
    fields["lastSyncTime"] = st.iso(f.now)
    write = Action(Kind.WRITE_STATUS, value=fields)
    old = st.condition(obj.status, st.READY)
    if warn and (old.get("reason"), old.get("message")) != (c.ready.reason, c.ready.message):
        return (write, Action(Kind.EVENT, value="Warning", reason=c.ready.reason, message=c.ready.message))
    return (write,)
