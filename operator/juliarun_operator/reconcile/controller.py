"""Carries out what `decide.reconcile` decides, one object at a time, and records it.

Events only say which object to look at: the watch feeds `track`, which keeps the latest
body of every object and queues its key; workers take keys, gather the facts (the
connection's snapshot, the checked parameters), ask `decide.reconcile` and perform its
actions. One object's failure (its Secret, its status write, JuliaRun's answer to it) is
that object's alone: it is queued again after its own backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..juliarun import Job, JuliaRunError, ParameterError
from ..juliarun.errors import ApiError
from . import decide as d
from .connections import Backoff, Connection, Connections, Unavailable
from .kube import ApiException, Kube
from .mapping import job_params
from .metrics import Metrics
from .registry import Body, Key, Registry, key_of
from .routing import Routing
from .secrets import SecretCache
from .workqueue import WorkQueue

log = logging.getLogger("juliarun_operator")


@dataclass
class Config:
    sync_interval: float = 10.0
    health_interval: float = 30.0
    submit_landing_window: float = 30.0  # seconds a server may still apply an abandoned submit
    credentials_ttl: float = 60.0  # seconds a Secret is used before it is read again
    resync_interval: float = 300.0  # seconds between full passes over every object
    workers: int = 16
    log_lines_on_completion: int = 20
    namespaces: list[str] = field(default_factory=list)  # watched; empty: all
    # May adopt unclaimed jobs and name jobs outside their own prefix; None: every namespace.
    adopt_namespaces: frozenset[str] | None = frozenset()
    check_url: Callable[[str], str] | None = None  # a tenant's JuliaRun URL -> why refused ("" ok)
    # namespace -> a Secret of the administrator's (in `own_namespace`) with the connection
    # that namespace uses instead of the default: its JuliaRun identity and namespace.
    namespace_connections: dict[str, str] = field(default_factory=dict)
    own_namespace: str = "default"
    backoff: Backoff = field(default_factory=Backoff)


class Controller:
    def __init__(self, config: Config, kube: Kube, connections: Connections, metrics: Metrics):
        self.config, self.kube, self.connections, self.metrics = config, kube, connections, metrics
        self.registry = Registry()
        self.memory: dict[str, d.Memory] = {}  # by uid
        self.failures: dict[Key, int] = {}
        self.lock = threading.Lock()  # for `memory`
        self.routing = Routing(
            config, connections, SecretCache(kube.read_secret_data, config.credentials_ttl, config.backoff)
        )
        self.queue = WorkQueue()
        self.acting = False
        self.acting_since = 0.0
        self.last_done = time.monotonic()

    # --- the registry, fed by the watch -----------------------------------------------------

    def track(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        moved, forgotten = self.registry.update(event_type, body)
        if forgotten:
            self._forget(key_of(forgotten), forgotten)
        elif moved and self.acting:
            self.queue.add(key_of(body))

    def _forget(self, key: Key, body: Body) -> None:
        self.failures.pop(key, None)
        self.memory.pop(body["metadata"].get("uid", ""), None)

    def replace_all(self, bodies: list[Body]) -> None:
        for body in self.registry.replace_all(bodies):
            self._forget(key_of(body), body)

    def keys(self) -> list[Key]:
        return self.registry.keys()

    # --- acting ----------------------------------------------------------------------------

    def set_acting(self, acting: bool) -> None:
        if acting == self.acting:
            return
        if acting:
            log.info("acting: this replica now calls JuliaRun and writes status")
            self.acting_since = time.time()
            self.acting = True
            try:
                self.replace_all(self.kube.list_objects(self.config.namespaces)[0])
            except Exception as exc:
                log.warning("listing JuliaRunJobs failed (the watch still feeds them): %s", exc)
            for key in self.keys():
                self.queue.add(key)
        else:
            log.warning("not acting: another replica holds the lease")
            self.acting = False
            with self.lock:
                self.memory.clear()  # what another replica does meanwhile is not in it

    def run_workers(self, stop: threading.Event) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._work, args=(stop,), name=f"reconcile-{i}", daemon=True)
            for i in range(self.config.workers)
        ]
        for t in threads:
            t.start()
        return threads

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                if self.acting:
                    self._handle(key)  # type: ignore[arg-type]
            finally:
                self.queue.done(key)
                self.last_done = time.monotonic()

    def _handle(self, key: Key) -> None:
        try:
            outcome = self.process(key)
        except Exception as exc:  # one object's failure is that object's alone
            failures = self.failures[key] = self.failures.get(key, 0) + 1
            delay = self.config.backoff.delay(failures)
            log.warning("%s/%s: %s; retrying in %.0f s", *key, _describe(exc), delay)
            self.metrics.reconciled("reconcile", "error")
            self.queue.add_after(key, delay)
            return
        self.failures.pop(key, None)
        self.metrics.reconciled("reconcile", outcome)

    # --- one object --------------------------------------------------------------------------

    def process(self, key: Key) -> str:
        for _ in range(3):  # again at once only after a deletion JuliaRun confirmed
            body = self.registry.get(key)
            if body is None:
                return "gone"
            obj = d.ObjectState.of(body)
            memory = self.memory.setdefault(obj.uid, d.Memory())
            conn, facts = self._facts(key, obj, memory)
            plan = d.reconcile(obj, facts)
            if plan.job:
                self.registry.route(plan.job, key, conn)
            again = self._execute(key, body, obj, memory, conn, plan)
            if not again:
                if plan.wait_snapshot and conn is not None:
                    conn.wait_for_snapshot(key, d.SNAPSHOT_WAIT)
                elif plan.wait_snapshot:  # no connection yet (its Secret): the cache paces the reads
                    self.queue.add_after(key, 3.0)
                if plan.requeue_after:
                    self.queue.add_after(key, plan.requeue_after)
                return plan.actions[-1].kind.value if plan.actions else "unchanged"
        return "again"

    def _facts(self, key: Key, obj: d.ObjectState, memory: d.Memory) -> tuple[Connection | None, d.Facts]:
        now = time.time()
        params, invalid = None, ""
        try:
            params = job_params(obj.spec, obj.namespace, self.routing.secret_value)
        except (ParameterError, ValueError) as exc:
            invalid = str(exc)
        conn, problem, no_credentials = self.routing.connection(obj)
        if conn is not None:
            problem = problem or conn.problem
        name = obj.status.get("jobName") or memory.name or obj.spec.get("jobName") or obj.default_name
        holder = self.registry.holder(name)
        claimed_by = f"{holder[0]}/{holder[1]}" if holder and holder != key else ""
        adopt_ns = self.config.adopt_namespaces
        trusted = adopt_ns is None or obj.namespace in adopt_ns
        ctx = conn.context if conn else self.connections.default.context
        return conn, d.Facts(
            now=now,
            memory=memory,
            connection=self.routing.wanted(obj),
            params=params,
            invalid=invalid,
            unavailable=problem,
            snapshot=conn.snapshot if conn else None,
            snapshot_time=conn.snapshot_time if conn else 0.0,
            landing=ctx.connect_timeout + ctx.read_timeout + 1 + self.config.submit_landing_window,
            acting_since=self.acting_since,
            claimed_by=claimed_by,
            no_credentials=no_credentials,
            adopt_allowed=trusted and not claimed_by,
            trusted=trusted,
        )

    def _execute(
        self,
        key: Key,
        body: Body,
        obj: d.ObjectState,
        memory: d.Memory,
        conn: Connection | None,
        plan: d.Plan,
    ) -> bool:
        """Perform the plan's actions in order; True to decide again at once."""
        for action in plan.actions:
            kind = action.kind
            if kind is d.Kind.ADD_FINALIZER or kind is d.Kind.REMOVE_FINALIZER:
                adding = kind is d.Kind.ADD_FINALIZER
                # A removal's answer is not kept: the object may be gone (and forgotten) already.
                written = self._write(
                    "finalizer", self.kube.set_finalizer, body, d.FINALIZER, adding, keep=adding
                )
                body = written if adding else body
                memory.added_finalizer = memory.added_finalizer or adding
            elif kind is d.Kind.WRITE_STATUS:
                body = self._write("status", self.kube.patch_status, obj.namespace, obj.name, action.value)
                self.metrics.status_written()
            elif kind is d.Kind.EVENT:
                self.kube.event(body, action.value, action.reason, action.message, time.time())
            elif kind is d.Kind.POST_LOGS:
                self._post_logs(body, obj, conn, action.job, action.value)
                memory.logs_posted = True
            elif conn is None:  # decide asks JuliaRun only where it knows the connection
                raise RuntimeError(f"{kind.value} without a JuliaRun connection")
            else:
                if not self._call(key, obj, memory, conn, action):
                    return False
                if kind is d.Kind.DELETE:
                    return True
        return False

    def _write(self, what: str, fn: Callable[..., Body], *args: Any, keep: bool = True) -> Body:
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

    def _call(
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
                memory.submit, memory.params = d.Outcome.LANDED, dict(action.value)
                memory.refusals = 0
            elif kind is d.Kind.SET_SCALE:
                memory.scale, memory.scale_at = action.value, time.time()
                conn.call(conn.client.set_job_scale, job, action.value)
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
                memory.deleted = True
                self.kube.event(
                    obj_body(obj), "Normal", "Deleted", f"deleted JuliaRun job {action.job}", time.time()
                )
        except ApiError as exc:  # an answer: the request reached JuliaRun and was refused
            self._refused(key, obj, memory, conn, action, exc)
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

    def _refused(
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

    def _post_logs(
        self, body: Body, obj: d.ObjectState, conn: Connection | None, name: str, phase: str
    ) -> None:
        count = self.config.log_lines_on_completion
        try:
            if conn is None:
                raise Unavailable("no connection", 0.0)
            lines = conn.call(conn.client.tail_job, Job(obj.spec["type"], name), count=count)
        except (Unavailable, JuliaRunError) as exc:
            lines = f"(logs unavailable: {exc})"
        etype = "Normal" if phase == "Completed" else "Warning"
        self.kube.event(
            body, etype, phase, f"job {name} {phase.lower()}; last log lines:\n{lines}", time.time()
        )


def obj_body(obj: d.ObjectState) -> Body:
    return {"metadata": {"name": obj.name, "namespace": obj.namespace, "uid": obj.uid}}


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"Kubernetes API: HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
