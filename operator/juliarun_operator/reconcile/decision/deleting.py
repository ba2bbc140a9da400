"""The decision for an object being deleted: delete its JuliaRun jobs (each attempt's),
or leave them under `deletionPolicy: Orphan`, then let the object go. Pure, no I/O."""

from __future__ import annotations

from ...api import FINALIZER
from . import batch
from .model import Action, Facts, Kind, ObjectState, Outcome, Plan
from .rules import landing_wait, ours


def deleting(obj: ObjectState, f: Facts) -> Plan:
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
        if ours(obj, f, name):
            return Plan((Action(Kind.DELETE, name),), job=name, wait_snapshot=True)
        return Plan(done)  # not ours (a conflict): nothing of ours to delete
    if m.name == name and m.submit is Outcome.LANDED and f.snapshot_time < m.landed_at:
        return Plan(job=name, wait_snapshot=True)
    wait = landing_wait(obj, f, name)
    if wait > 0:  # deleting now would leak a submit that lands later
        return Plan(job=name, requeue_after=wait)
    return Plan(done)
