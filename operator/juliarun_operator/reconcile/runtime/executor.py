"""Performs a plan's actions for one object, in order, and keeps what they teach: the
written bodies (in the registry) and what JuliaRun answered (in the object's `Memory`).
A refused or unanswered JuliaRun call stops the plan and says when to look again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...api import FINALIZER
from ...juliarun import Job, JuliaRunError
from ...juliarun.errors import ApiError
from .. import decision as d
from ..adapters.kube import ApiException
from ..decision.mapping import job_params
from .connections import Connection, Unavailable
from .registry import Body, Key

if TYPE_CHECKING:
    from .controller import Controller

log = logging.getLogger("juliarun_operator")


class Executor:
    def __init__(self, controller: Controller):
        c = controller
        self.config, self.kube, self.metrics, self.registry = c.config, c.kube, c.metrics, c.registry
        self.queue, self.routing, self.failures = c.queue, c.routing, c.failures

    def execute(
        self,
        key: Key,
        body: Body,
        obj: d.ObjectState,
        memory: d.Memory,
        conn: Connection | None,
        plan: d.Plan,
    ) -> bool:
        """Perform the plan's actions in order; True to decide again at once."""
        last_logs: str | None = None  # posted by POST_LOGS, kept by the status write after it
        for action in plan.actions:
            kind = action.kind
            if kind is d.Kind.WRITE_STATUS and last_logs is not None:
                action = action._replace(value={**action.value, "lastLogs": last_logs})
            if kind is d.Kind.ADD_FINALIZER or kind is d.Kind.REMOVE_FINALIZER:
                adding = kind is d.Kind.ADD_FINALIZER
                # A removal's answer is not kept: the object may be gone (and forgotten) already.
                written = self.write(
                    "finalizer", self.kube.set_finalizer, body, FINALIZER, adding, keep=adding
                )
                body = written if adding else body
                memory.added_finalizer = memory.added_finalizer or adding
            elif kind is d.Kind.WRITE_STATUS:
                body = self.write("status", self.kube.patch_status, obj.namespace, obj.name, action.value)
                self.metrics.status_written()
            elif kind is d.Kind.EVENT:
                self.kube.event(body, action.value, action.reason, action.message, time.time())
            elif kind is d.Kind.POST_LOGS:
                last_logs = self.post_logs(body, obj, conn, action.job, action.value)
                memory.logs_posted, memory.last_logs = action.job, last_logs
            elif kind is d.Kind.DELETE_OBJECT:  # batch: ttlSecondsAfterFinished ran out
                log.info("%s/%s: deleting: ttlSecondsAfterFinished has passed", obj.namespace, obj.name)
                self.kube.delete_object(obj.namespace, obj.name, action.value)
            elif conn is None:  # decide asks JuliaRun only where it knows the connection
                raise RuntimeError(f"{kind.value} without a JuliaRun connection")
            else:
                if not self.call(key, obj, memory, conn, action):
                    return False
                if kind is d.Kind.DELETE:
                    return True
        return False

    def write(self, what: str, fn: Callable[..., Body], *args: Any, keep: bool = True) -> Body:
        """A write to Kubernetes; its answer, newer than what the registry holds, is kept."""
        try:
            written = fn(*args)
        except ApiException as exc:
            if what == "status":
                self.metrics.status_write_failed()
            self.metrics.kube_error(what, exc.status)
            raise
        if keep:
            self.registry.remember(written)
        return written

    def call(
        self, key: Key, obj: d.ObjectState, memory: d.Memory, conn: Connection, action: d.Action
    ) -> bool:
        """One JuliaRun call; its outcome goes into `memory`. False stops the plan."""
        job = Job(obj.spec["type"], action.job)
        kind = action.kind
        before = (memory.name, memory.submit, memory.submit_at)
        try:
            if kind is d.Kind.SUBMIT:  # possibly sent from here on, until JuliaRun answers
                memory.name, memory.submit, memory.submit_at = action.job, d.Outcome.UNKNOWN, time.time()
                conn.call(conn.client.submit_job, job, **action.value)
                # A snapshot asked for before this answer may have been read before the job was there.
                memory.submit, memory.landed_at, memory.params = (
                    d.Outcome.LANDED,
                    time.time(),
                    dict(action.value),
                )
                memory.refusals = 0
            elif kind is d.Kind.SET_SCALE:
                conn.call(conn.client.set_job_scale, job, action.value)
                memory.scale, memory.scale_at = action.value, time.time()  # answered: later looks show it
            elif kind is d.Kind.UPDATE:
                conn.call(conn.client.update_job, job, **action.value)
                memory.params = job_params(obj.spec, obj.namespace, self.routing.secret_value)
                memory.refusals = 0
                self.kube.event(
                    obj_body(obj),
                    "Normal",
                    "Updated",
                    "updated " + ", ".join(sorted(action.value)),
                    time.time(),
                )
            elif kind is d.Kind.DELETE:
                conn.call(conn.client.delete_job, job, force=True)
                memory.deleted_jobs.add(action.job)
                self.kube.event(
                    obj_body(obj), "Normal", "Deleted", f"deleted JuliaRun job {action.job}", time.time()
                )
        except ApiError as exc:  # an answer: the request reached JuliaRun and was refused
            self.refused(key, obj, memory, conn, action, exc)
            return False
        except Unavailable as exc:  # the breaker kept the call here: nothing was sent
            memory.name, memory.submit, memory.submit_at = before
            self.queue.add_after(key, exc.delay)
            return False
        except JuliaRunError as exc:  # no answer: a submit may still land, so look before acting again
            log.info("%s/%s: %s %s: %s", obj.namespace, obj.name, kind.value, action.job, exc)
            self.queue.add_after(key, conn.breaker.retry_delay())
            return False
        return True

    def refused(
        self,
        key: Key,
        obj: d.ObjectState,
        memory: d.Memory,
        conn: Connection,
        action: d.Action,
        exc: ApiError,
    ) -> None:
        reason = f"JuliaRun refused {action.kind.value} of {action.job}: {exc.reason}"
        if action.kind is not d.Kind.DELETE:
            memory.refusals, memory.refused_at = memory.refusals + 1, time.time()
        if action.kind is d.Kind.SUBMIT:
            memory.submit, memory.refusal, memory.refused_generation = (
                d.Outcome.REFUSED,
                reason,
                obj.generation,
            )
            conn.wait_for_snapshot(key, 0.0)  # is the name taken (a conflict) or was the spec refused?
        elif action.kind is d.Kind.DELETE:
            failures = self.failures[key] = self.failures.get(key, 0) + 1
            log.warning("%s/%s: %s", obj.namespace, obj.name, reason)
            self.queue.add_after(key, self.config.backoff.delay(failures + 2))
        else:
            memory.update_refusal, memory.update_refused_generation = reason, obj.generation
            self.queue.add(key)

    def post_logs(
        self, body: Body, obj: d.ObjectState, conn: Connection | None, name: str, phase: str
    ) -> str:
        count = self.config.log_lines_on_completion
        try:
            if conn is None:
                raise Unavailable("no connection", 0.0)
            lines = str(conn.call(conn.client.tail_job, Job(obj.spec["type"], name), count=count))
        except (Unavailable, JuliaRunError) as exc:
            lines = f"(logs unavailable: {exc})"
        etype = "Normal" if phase == "Completed" else "Warning"
        self.kube.event(
            body, etype, phase, f"job {name} {phase.lower()}; last log lines:\n{lines}", time.time()
        )
        # The lasting copy: this line outlives the object and its Event in the platform's log store.
        log.info(
            "%s/%s (uid %s): JuliaRun job %s ended: %s; last log lines:\n%s",
            obj.namespace,
            obj.name,
            obj.uid,
            name,
            phase,
            lines,
        )
        return lines[-4096:]  # a status field: bounded


def obj_body(obj: d.ObjectState) -> Body:
    return {"metadata": {"name": obj.name, "namespace": obj.namespace, "uid": obj.uid}}
