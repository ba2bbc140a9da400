"""Performs a plan's actions for one object, in order, and keeps what they teach: the
written bodies (in the registry) and what JuliaRun answered (in the object's `Memory`).

It never touches the queue: it returns what happened (`Result`), and the controller alone
decides when the object is looked at again. A refused or unanswered JuliaRun call stops
the plan. Every send (JuliaRun or Kubernetes) first asks the fence whether this replica
may send at all.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ...api import FINALIZER
from ...juliarun import Job, JuliaRunError
from ...juliarun.errors import ApiError, Blame, HTTPError, blame
from ...juliarun.redact import cut
from .. import decision as d
from ..adapters.kube import ApiException, KubeAPI
from ..adapters.metrics import Metrics
from ..decision.mapping import SecretReader, job_params
from ..decision.model import Publication
from ..decision.observe import observing
from .breaker import Unavailable, Why
from .connections import Connection
from .published import Published
from .registry import Body, Registry
from .routing import tenants_server

log = logging.getLogger("juliarun_operator")
CONFLICT_RETRY = 0.05  # seconds: a status write refused as stale waits for the newer body
MAX_LOGGED = 500  # characters of a tenant's server's refusal in the operator's log


class Next(enum.Enum):
    """What the controller does with the object after a plan (the metrics' outcome)."""

    DONE = "ok"  # the plan ran: looked at again when something changes, or as the plan says
    AGAIN = "again"  # decide again at once: what the plan did changes the decision
    AFTER = "requeue"  # nothing went wrong for this object (busy, breaker, a stale body): after `delay`
    RETRY = "retry"  # it failed for this object: again on the object's own backoff
    PARKED = "parked"  # every call slot of its connection was taken: handed back when one frees


class Result(NamedTuple):
    next: Next
    delay: float = 0.0
    reason: str = ""  # RETRY: what failed, for the log


DONE = Result(Next.DONE)


class ObserveViolation(RuntimeError):
    """A plan asked to move JuliaRun for an Observe object: nothing was sent."""


class NotSent(Exception):
    """A write this replica may not send (it does not hold the Lease): nothing was sent."""


@dataclass
class Executor:
    kube: KubeAPI
    registry: Registry
    metrics: Metrics
    secret_value: SecretReader
    fence: Callable[[], bool]
    log_lines_on_completion: int = 20
    published: Published | None = None  # the Services, EndpointSlices and Secrets last seen

    def execute(
        self, body: Body, obj: d.ObjectState, memory: d.Memory, conn: Connection | None, plan: d.Plan
    ) -> Result:
        """Perform the plan's actions in order."""
        try:
            return self._execute(body, obj, memory, conn, plan)
        except NotSent:
            return Result(Next.AFTER, 1.0)
        except ApiException as exc:
            if exc.status == 409:  # a write refused as stale (resourceVersion): decide on the newer body
                self._refresh(obj)
                return Result(Next.AFTER, CONFLICT_RETRY)
            raise

    def _execute(
        self, body: Body, obj: d.ObjectState, memory: d.Memory, conn: Connection | None, plan: d.Plan
    ) -> Result:
        last_logs: str | None = None  # posted by POST_LOGS, kept by the status write after it
        for action in plan.actions:
            kind = action.kind
            if kind is d.Kind.ADD_FINALIZER or kind is d.Kind.REMOVE_FINALIZER:
                adding = kind is d.Kind.ADD_FINALIZER
                # A removal's answer is not kept: the object may be gone (and forgotten) already.
                written = self.write(
                    "finalizer", self.kube.set_finalizer, body, FINALIZER, adding, keep=adding
                )
                body = written if adding else body
                memory.added_finalizer = memory.added_finalizer or adding
            elif kind is d.Kind.WRITE_STATUS:
                fields = action.status if last_logs is None else {**action.status, "lastLogs": last_logs}
                version = body["metadata"].get("resourceVersion")
                body = self.write("status", self.kube.patch_status, obj.namespace, obj.name, fields, version)
                self.metrics.status_written()
            elif kind is d.Kind.EVENT:
                note = action.note
                if note is not None:
                    self._fence()
                    self.kube.event(body, note.type, note.reason, note.message, time.time())
            elif kind is d.Kind.POST_LOGS:
                last_logs = self.post_logs(body, obj, conn, action.job, action.phase)
                memory.logs_posted, memory.last_logs = action.job, last_logs
            elif kind is d.Kind.PUBLISH or kind is d.Kind.UNPUBLISH:
                if action.publication is not None:
                    outcome = self.publish(obj, kind, action.publication)
                    if outcome is not DONE:
                        return outcome
            elif kind is d.Kind.DELETE_OBJECT:  # batch: ttlSecondsAfterFinished ran out
                self._fence()
                log.info("%s/%s: deleting: ttlSecondsAfterFinished has passed", obj.namespace, obj.name)
                self.kube.delete_object(obj.namespace, obj.name, obj.uid)
            elif conn is None:  # decide asks JuliaRun only where it knows the connection
                raise RuntimeError(f"{kind.value} without a JuliaRun connection")
            else:
                result = self.call(obj, memory, conn, action)
                if result is not DONE:
                    return result
                if kind is d.Kind.DELETE:
                    return Result(Next.AGAIN)
        return DONE

    def _fence(self) -> None:
        if not self.fence():
            raise NotSent("this replica does not hold the Lease")

    def write(self, what: str, fn: Callable[..., Body], *args: Any, keep: bool = True) -> Body:
        """A write to Kubernetes; its answer, newer than what the registry holds, is kept."""
        self._fence()
        try:
            written = fn(*args)
        except ApiException as exc:
            if what == "status" and exc.status != 409:
                self.metrics.status_write_failed()
            self.metrics.kube_error(what, exc.status)
            raise
        if keep:
            self.registry.remember(written)
        return written

    def publish(self, obj: d.ObjectState, kind: d.Kind, p: Publication) -> Result:
        """Create, patch or delete a Service, EndpointSlice or Secret of the object's, in its
        own namespace only. AFTER: what it was decided on was stale (the object is read again
        at the next look). RETRY: the write failed otherwise (the API server's error, a range
        of Service addresses full...): condition Published says so, on the object's backoff."""
        ns, key, what = obj.namespace, (p.resource, p.name), p.resource.value
        if (p.body.get("metadata") or {}).get("namespace", ns) != ns:  # never into another namespace
            raise RuntimeError(f"{what} {p.name} not written: not in the object's namespace {ns}")
        try:
            if kind is d.Kind.UNPUBLISH or p.replace:
                self._fence()
                self.kube.delete_published(p.resource, ns, p.name, p.uid)
                if self.published is not None:
                    self.published.remember(obj.uid, key, None)
            if kind is d.Kind.PUBLISH:
                fn = self.kube.patch_published if p.exists else self.kube.create_published
                args = (p.resource, ns, p.name, p.body) if p.exists else (p.resource, ns, p.body)
                written = self.write(what, fn, *args, keep=False)
                if self.published is not None:
                    self.published.remember(obj.uid, key, written)
        except ApiException as exc:
            if self.published is None:
                raise
            if exc.status not in (403, 404, 409):  # forbidden (RBAC); gone, or there already
                why = f"Kubernetes API: HTTP {exc.status} {exc.reason or ''}".strip()
                self.published.fail(obj.uid, key, why)
                return Result(Next.RETRY, reason=f"{what} {p.name} not written: {why}")
            if exc.status == 403:
                self.published.forbid(obj.uid, key)
            else:
                self.published.stale(obj.uid)
            return Result(Next.AFTER, CONFLICT_RETRY)
        return DONE

    def _refresh(self, obj: d.ObjectState) -> None:
        """The object as it is now, in place of the stale body a write was refused for."""
        try:
            current = self.kube.get_object(obj.namespace, obj.name)
        except ApiException:
            return  # the watch brings it; the next look decides on what is there
        if current is not None:
            self.registry.remember(current)

    def call(self, obj: d.ObjectState, memory: d.Memory, conn: Connection, action: d.Action) -> Result:
        """One JuliaRun call; its outcome goes into `memory`. Anything but DONE stops the plan."""
        job = Job(obj.spec["type"], action.job)
        kind = action.kind
        if observing(obj):  # the decision plans none: a second lock on the one promise Observe makes
            raise ObserveViolation(f"{kind.value} of {action.job} not sent: spec.managementPolicy is Observe")
        before = (memory.name, memory.submit, memory.submit_at)
        try:
            if kind is d.Kind.SUBMIT:  # possibly sent from here on, until JuliaRun answers
                memory.name, memory.submit, memory.submit_at = action.job, d.Outcome.UNKNOWN, time.time()
                conn.call(conn.client.submit_job, job, **action.params)
                # A snapshot asked for before this answer may have been read before the job was there.
                memory.submit, memory.landed_at, memory.params = (
                    d.Outcome.LANDED,
                    time.time(),
                    dict(action.params),
                )
                memory.refusals = 0
            elif kind is d.Kind.SET_SCALE:
                conn.call(conn.client.set_job_scale, job, action.scale)
                memory.scale, memory.scale_at = action.scale, time.time()  # answered: later looks show it
            elif kind is d.Kind.UPDATE:
                conn.call(conn.client.update_job, job, **action.params)
                memory.params = job_params(obj.spec, obj.namespace, self.secret_value)
                memory.refusals = 0
                self._event(obj, "Normal", "Updated", "updated " + ", ".join(sorted(action.params)))
            elif kind is d.Kind.DELETE:
                conn.call(conn.client.delete_job, job, force=True)
                memory.deleted_jobs.add(action.job)
                memory.delete_refusal = ""
                self._event(obj, "Normal", "Deleted", f"deleted JuliaRun job {action.job}")
        except Unavailable as exc:  # nothing was sent: not this object's failure
            memory.name, memory.submit, memory.submit_at = before
            return Result(Next.PARKED) if exc.why is Why.BUSY else Result(Next.AFTER, exc.delay)
        except JuliaRunError as exc:
            whose = blame(exc)
            if whose is Blame.REQUEST:  # refused here, before sending: this object's spec
                memory.name, memory.submit, memory.submit_at = before
                memory.invalid, memory.invalid_generation = str(exc), obj.generation
                return Result(Next.AGAIN)
            if whose is Blame.REFUSED:  # an answer: the request reached JuliaRun and was refused
                return self.refused(obj, memory, action, exc)
            # No answer: a submit may still land, so look (the snapshot) before acting again.
            log.info("%s/%s: %s %s: %s", obj.namespace, obj.name, kind.value, action.job, exc)
            return Result(Next.AFTER, conn.breaker.retry_delay())
        return DONE

    def refused(self, obj: d.ObjectState, memory: d.Memory, action: d.Action, exc: JuliaRunError) -> Result:
        why = told(obj, action.kind.value, action.job, exc)
        reason = f"JuliaRun refused {action.kind.value} of {action.job}: {why}"
        if action.kind is d.Kind.DELETE:
            if reason != memory.delete_refusal:  # said once; the retries that follow are counted
                log.warning("%s/%s: %s", obj.namespace, obj.name, reason)
            memory.delete_refusal = reason
            return Result(Next.RETRY, reason=reason)
        memory.refusals, memory.refused_at = memory.refusals + 1, time.time()
        if action.kind is d.Kind.SUBMIT:
            # Did not land. Decided again at once, so that the status says so (and a recorded
            # name goes) before anything else: until then only this process's memory knows,
            # and a restart in between would take a stranger's job of that name for ours.
            # Whether the name is taken (a conflict) a later snapshot tells; the decision
            # paces the next try (refusal_wait).
            memory.submit, memory.refusal, memory.refused_generation = (
                d.Outcome.REFUSED,
                reason,
                obj.generation,
            )
            return Result(Next.AGAIN)
        memory.update_refusal, memory.update_refused_generation = reason, obj.generation
        return Result(Next.AGAIN)

    def _event(self, obj: d.ObjectState, etype: str, reason: str, message: str) -> None:
        self._fence()
        self.kube.event(obj_body(obj), etype, reason, message, time.time())

    def post_logs(
        self, body: Body, obj: d.ObjectState, conn: Connection | None, name: str, phase: str
    ) -> str:
        count = self.log_lines_on_completion
        try:
            if conn is None:
                raise Unavailable("no connection", 0.0, Why.BREAKER)
            lines = str(conn.call(conn.client.tail_job, Job(obj.spec["type"], name), count=count))
        except Unavailable as exc:
            lines = f"(logs unavailable: {exc})"
        except JuliaRunError as exc:
            trouble = conn.problem if conn and blame(exc) is Blame.CONNECTION else None
            lines = f"(logs unavailable: {trouble or told(obj, 'tailJob', name, exc)})"
        etype = "Normal" if phase == "Completed" else "Warning"
        self._fence()
        self.kube.event(
            body, etype, phase, f"job {name} {phase.lower()}; last log lines:\n{lines}", time.time()
        )
        # The lasting copy: this line outlives the object and its Event in the platform's log store.
        # Bounded, and one line (repr): a job's output cannot forge lines of the operator's log.
        log.info(
            "%s/%s (uid %s): JuliaRun job %s ended: %s; last log lines: %r",
            obj.namespace,
            obj.name,
            obj.uid,
            name,
            phase,
            lines[-4096:],
        )
        return lines[-4096:]  # a status field: bounded


def told(obj: d.ObjectState, what: str, job: str, exc: JuliaRunError) -> str:
    """What the object's status and Events say of a refused call: the administrator's
    JuliaRun's reason as it gave it; of a server the tenant named, its kind alone. Nothing
    of that server's reply goes where the tenant reads (it may be any service on an allowed
    host); the reply goes to the operator's log, scrubbed, bounded and on one line."""
    if not tenants_server(obj):
        return str(exc.reason) if isinstance(exc, ApiError) else str(exc)
    reply = exc.reason if isinstance(exc, ApiError) else exc.body if isinstance(exc, HTTPError) else exc
    where = f"{obj.namespace}/{obj.name}"
    log.warning(
        "%s: %s of %s refused by the tenant's JuliaRun: %r", where, what, job, cut(str(reply), MAX_LOGGED)
    )
    if isinstance(exc, HTTPError):
        return f"the credentialsRef server answered HTTP {exc.status} (its reply is in the operator's log)"
    return "the credentialsRef server answered with an error (its reply is in the operator's log)"


def obj_body(obj: d.ObjectState) -> Body:
    return {"metadata": {"name": obj.name, "namespace": obj.namespace, "uid": obj.uid}}
