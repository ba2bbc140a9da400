"""The decision for an object being deleted: delete its JuliaRun jobs (each attempt's),
or leave them under `deletionPolicy: Orphan` or `managementPolicy: Observe`, then let the
object go. Pure, no I/O."""

from __future__ import annotations

from ...api import FINALIZER
from . import batch
from . import status as st
from .model import Action, Facts, Kind, ObjectState, Outcome, Plan, delete, event
from .observe import observing
from .rules import landing_wait, ours, status_write


def deleting(obj: ObjectState, f: Facts) -> Plan:
    if FINALIZER not in obj.finalizers:
        return Plan()
    m = f.memory
    done = (Action(Kind.REMOVE_FINALIZER),)
    if observing(obj):  # never a deleteJob: the job was only mirrored
        seen = obj.status.get("jobName")
        message = f"left JuliaRun job {seen} running (managementPolicy Observe)"
        orphaned = event("Normal", "Orphaned", message, seen or "")
        return Plan((orphaned, *done) if seen else done)
    name = obj.status.get("jobName") or m.name or (None if obj.spec.get("jobName") else obj.default_name)
    earlier = [n for n in batch.earlier_names(obj) if n != name and n not in m.deleted_jobs]
    if (name is None or name in m.deleted_jobs) and not earlier:
        return Plan(done)
    if obj.spec.get("deletionPolicy", "Delete") == "Orphan":
        left = ", ".join(n for n in [*earlier, name or ""] if n)
        orphaned = event("Normal", "Orphaned", f"left JuliaRun job {left} running", name or "")
        return Plan((orphaned, *done))
    if f.snapshot is None:  # JuliaRun cannot be looked at: only what surely was never sent lets go
        if never_sent(obj, f):
            return Plan(done)
        return Plan(job=name, wait_snapshot=True)
    for old in earlier:  # earlier attempts: each was submitted, recorded, and is ours
        if f.snapshot.get(old) is not None:
            return _delete(obj, f, old, name)
    if name is None or name in m.deleted_jobs:
        return Plan(done)
    if f.snapshot.get(name) is not None:
        if ours(obj, f, name):
            return _delete(obj, f, name, name)
        return Plan(done)  # not ours (a conflict): nothing of ours to delete
    if m.name == name and m.submit is Outcome.LANDED and f.snapshot_time < m.landed_at:
        return Plan(job=name, wait_snapshot=True)
    wait = landing_wait(obj, f, name)
    if wait > 0:  # deleting now would leak a submit that lands later
        return Plan(job=name, requeue_after=wait)
    return Plan(done)


def _delete(obj: ObjectState, f: Facts, job: str, name: str | None) -> Plan:
    """deleteJob; after a refusal, the object says so (the controller paces the retries)."""
    shown: tuple[Action, ...] = ()
    if f.memory.delete_refusal:
        refused = st.waiting("Deleting", "DeleteRefused", f"{f.memory.delete_refusal}; retrying")
        shown = status_write(obj, f, refused)
    return Plan((*shown, delete(job)), job=name, wait_snapshot=True)


def never_sent(obj: ObjectState, f: Facts) -> bool:
    """Whether no process can have sent a submit for this object: none is recorded, this
    process sent none, and either this process put the finalizer on (it goes on before any
    submit) or the object never had the credentials a submit needs."""
    m = f.memory
    if m.submit is not None or obj.status.get("submitted") or obj.status.get("submitTime"):
        return False
    return m.added_finalizer or (f.no_credentials and not obj.status.get("connection"))
