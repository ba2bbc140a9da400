"""Rules the decision applies in more than one place (live objects, deletion, batch jobs):
whose a job is, when a sent submit can no longer land, how refusals are paced, and the
status write that records a decision. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...api import FINALIZER
from ...juliarun import jobtypes as jt
from . import batch
from . import status as st
from .model import (
    REFUSAL_BACKOFF,
    Action,
    Earlier,
    Facts,
    Memory,
    ObjectState,
    Outcome,
    Plan,
    event,
    set_scale,
    submit,
    write_status,
)


def ours(obj: ObjectState, f: Facts, name: str) -> bool:
    """Whether a job of this name in JuliaRun is this object's."""
    m = f.memory
    if f.claimed_by:
        return False
    if m.name == name and m.submit is Outcome.REFUSED:  # so the job there is someone else's ...
        # ... unless its name proves it ours (the UID's hash): an earlier submit of it landed.
        return batch.derived(obj, name) or (obj.adopt and f.adopt_allowed)
    if m.name == name and m.submit is not None:
        return True
    s = obj.status
    if s.get("jobName") == name and (
        s.get("submitted") or (s.get("submitTime") and not refused_before(obj, f))
    ):
        return True
    return batch.derived(obj, name) or (obj.adopt and f.adopt_allowed)


def intent(obj: ObjectState) -> bool:
    """A name recorded before its submit, whose outcome the status does not show yet."""
    s = obj.status
    return bool(s.get("jobName") and s.get("submitTime") and not s.get("submitted"))


def refused_before(obj: ObjectState, f: Facts) -> bool:
    """The recorded name's submit was refused by the process before this one: it stopped
    settled, which it says of a recorded name only knowing its submit refused (`handover`),
    and the record is older than this process's acting."""
    return intent(obj) and f.earlier.settled and st.parse_time(obj.status["submitTime"]) < f.acting_since


def submit_actions(obj: ObjectState, f: Facts, name: str) -> tuple[Action, ...]:
    params = dict(f.params or {})
    actions = [submit(name, params)]
    job_type = jt.job_type(obj.spec["type"])
    wanted = obj.spec.get("parallelism")
    if wanted is not None and job_type.scalable and params.get("nworkers") != wanted:
        actions.append(set_scale(name, wanted))  # types that take no nworkers
    return tuple(actions)


def handover(
    memories: Iterable[Memory],
    earlier: Earlier,
    acting_since: float,
    now: float,
    landing: float,
    objects: Iterable[tuple[ObjectState, Memory | None]] = (),
) -> Earlier:
    """What a process that stops tells the next one of the submits sent so far: every one
    answered, and every name recorded before its submit and not shown submitted known to be
    refused (settled: the next process takes no job of such a name for the object's, see
    `ours`); or only those of objects created before `until` may still land (a process before
    this one may have sent them, or a recorded name's outcome is not known here); or, with a
    submit of its own unanswered, nothing it can bound (the next one bounds it by when the
    Lease was handed back). `objects`: each object this process knows, with its memory."""
    if any(m.submit is Outcome.UNKNOWN and now < m.submit_at + landing for m in memories):
        return Earlier()
    stop = earlier.stopped_by(acting_since)
    unknown = any(
        intent(o) and not (m and m.name == o.status["jobName"] and m.submit is Outcome.REFUSED)
        for o, m in objects
    )
    if (earlier.settled or now >= stop + landing) and not unknown:
        return Earlier(settled=True)
    return Earlier(until=stop)


def landing_wait(obj: ObjectState, f: Facts, name: str) -> float:
    """Seconds until no earlier submitJob of `name` can still land (0: none can)."""
    m = f.memory
    if m.name == name and m.submit is Outcome.UNKNOWN:
        return m.submit_at + f.landing - f.now
    if m.name == name:
        return 0.0  # this process knows what it sent
    if obj.status.get("jobName") == name and obj.status.get("submitTime"):
        sent = st.parse_time(obj.status["submitTime"])
        if f.earlier.settled and sent < f.acting_since:
            return 0.0  # sent by an earlier process, whose every submit was answered
        return sent + f.landing - f.now
    # The finalizer goes on before any submit: without it, nothing was ever sent. With it
    # (put on by an earlier process, or at creation by the admission policy), an earlier
    # process may have sent the default name if it acted after the object was created.
    # creationTimestamp has whole seconds: an object stamped in the second an earlier
    # process stopped may have been created before it stopped, and counts as such.
    stop = f.earlier.stopped_by(f.acting_since)
    if (
        name == obj.default_name
        and obj.created < stop
        and FINALIZER in obj.finalizers
        and not m.added_finalizer
        and not f.earlier.settled
    ):
        return stop + f.landing - f.now
    return 0.0


def refusal_wait(m: Memory, now: float) -> float:
    """Seconds until a refused request of this generation may be sent again. Whether a
    refusal is final cannot be read from a code we do not know, so it is retried, ever
    more slowly, and shown as Stalled meanwhile; a new generation retries at once."""
    first, cap = REFUSAL_BACKOFF
    return m.refused_at + min(cap, first * 2.0 ** max(0, m.refusals - 1)) - now


def spec_stall(obj: ObjectState, f: Facts) -> tuple[str, str] | None:
    """A refusal of this generation's spec that is not yet due for another try."""
    m = f.memory
    if refusal_wait(m, f.now) <= 0:
        return None
    if m.refused_generation == obj.generation:
        return "SubmitRefused", m.refusal
    if m.update_refused_generation == obj.generation:
        return "UpdateRefused", m.update_refusal
    return None


def status_write(
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
    write = write_status(fields)
    old = st.condition(obj.status, st.READY)
    if warn and (old.get("reason"), old.get("message")) != (c.ready.reason, c.ready.message):
        return (write, event("Warning", c.ready.reason, c.ready.message))
    return (write,)


def unavailable(obj: ObjectState, f: Facts, start: tuple[Action, ...], name: str) -> Plan | None:
    """The plan while the connection is unavailable (None: it is not): wait for a snapshot,
    saying why."""
    if not f.unavailable:
        return None
    reason = "CredentialsUnavailable" if f.no_credentials else "JuliaRunUnavailable"
    waiting = st.waiting(obj.status.get("phase", "Pending"), reason, f.unavailable)
    return Plan(start + status_write(obj, f, waiting, warn=f.no_credentials), job=name, wait_snapshot=True)
