"""Runs the decision, one object at a time: the work queue, the workers, the facts.

Events only say which object to look at: the watch feeds `track`, which keeps the latest
body of every object and queues its key; a connection's snapshot loop `wake`s the objects
whose entry changed; workers take keys, gather the facts (the connection's snapshot, the
checked parameters), ask `decision.reconcile` and hand its plan to the `Executor`, which
performs the actions and says what happened. The controller alone decides when an object
is looked at again: one object's failure (its Secret, its status write, JuliaRun's answer
to it) is queued again after that object's own backoff (the queue's rate limiter).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...juliarun import ParameterError
from ...juliarun.client import Context, public_url
from .. import decision as d
from ..adapters.kube import ApiException, KubeAPI
from ..adapters.metrics import Metrics
from ..decision import publish as pub
from ..decision.endpoints import Allowed
from ..decision.mapping import SECRET_FIELDS, job_params
from ..decision.rules import handover, ours
from .breaker import Backoff
from .connections import Connection, Connections
from .credentials import SecretCache
from .executor import DONE, Executor, Next, Result
from .published import Published, allowed, parse_ranges
from .queue import RateLimit, WorkQueue
from .registry import Body, Key, Registry, key_of
from .routing import Routing

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
    rate_limit: RateLimit = field(default_factory=RateLimit)  # an object's retries after failures
    max_calls: int = 8  # JuliaRun calls under way at once per connection: a slow one holds no more workers
    # connection (default, Admin/<secret>, Secret/<namespace>/<name>) -> where its jobs'
    # Services may point (published.parse_ranges; a connection not named: nowhere)
    endpoint_ranges: dict[str, Allowed] = field(default_factory=lambda: parse_ranges(()))


class Controller:
    def __init__(self, config: Config, kube: KubeAPI, connections: Connections, metrics: Metrics):
        self.config, self.kube, self.connections, self.metrics = config, kube, connections, metrics
        self.registry = Registry()
        self.memory: dict[str, d.Memory] = {}  # by uid
        self.warned_insecure: set[str] = set()  # uids told that their token travels in plain http
        self.lock = threading.Lock()  # for `memory`
        self.routing = Routing(
            config, connections, SecretCache(kube.read_secret_data, config.credentials_ttl, config.backoff)
        )
        self.queue = WorkQueue(config.rate_limit)
        self.published = Published(kube)
        self.acting = False
        self.acting_since = 0.0
        self.earlier = d.Earlier()
        self.last_done = time.monotonic()
        self.fence: Callable[[], bool] = lambda: self.acting  # the Lease's, where one is held
        connections.on_slot = self._handed_back
        self.executor = Executor(
            kube,
            self.registry,
            metrics,
            self.routing.secret_value,
            lambda: self.fence(),
            config.log_lines_on_completion,
            self.published,
        )

    # --- the registry, fed by the watch -----------------------------------------------------

    def track(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        moved, forgotten = self.registry.update(event_type, body)
        if forgotten:
            self._forget(key_of(forgotten), forgotten)
        elif moved and self.acting:
            self.queue.add(key_of(body))

    def _forget(self, key: Key, body: Body) -> None:
        self.queue.forget(key)
        self.memory.pop(body["metadata"].get("uid", ""), None)
        self.warned_insecure.discard(body["metadata"].get("uid", ""))
        self.published.forget(body["metadata"].get("uid", ""))
        for conn in self.connections.all():
            conn.forget(key)

    def replace_all(self, bodies: list[Body]) -> None:
        for body in self.registry.replace_all(bodies):
            self._forget(key_of(body), body)

    def keys(self) -> list[Key]:
        return self.registry.keys()

    def wake(self, keys: Iterable[Key]) -> None:
        """Objects whose JuliaRun entry (or connection) changed: looked at now."""
        if self.acting:
            for key in keys:
                self.queue.add(key)

    def _handed_back(self, key: Key) -> None:
        """A call slot freed for an object parked on its connection: looked at now."""
        if self.acting:
            self.queue.add(key)

    def resync(self) -> None:
        """A fresh list: forget objects deleted unseen, and look at every object again."""
        try:
            bodies, _ = self.kube.list_objects(self.config.namespaces)
        except Exception as exc:
            log.warning("resync list failed: %s", _describe(exc))
            return
        self.replace_all(bodies)
        self.published.clear()  # what others changed of the published objects shows now
        self.wake(self.keys())

    # --- acting ----------------------------------------------------------------------------

    def set_acting(self, acting: bool, earlier: d.Earlier | None = None) -> None:
        """`earlier`: what the Lease says of the process that acted before this one."""
        if acting == self.acting:
            return
        if acting:
            log.info("acting: this replica now calls JuliaRun and writes status")
            self.acting_since = time.time()
            self.earlier = earlier or d.Earlier()
            self.acting = True
            self.metrics.set_acting(True)
            try:
                self.replace_all(self.kube.list_objects(self.config.namespaces)[0])
            except Exception as exc:
                log.warning("listing JuliaRunJobs failed (the watch still feeds them): %s", _describe(exc))
            self.wake(self.keys())
        else:
            log.warning("not acting: this replica does not hold the Lease")
            self.acting = False
            self.metrics.set_acting(False)
            with self.lock:
                self.memory.clear()  # what another replica does meanwhile is not in it

    def landing(self, ctx: Context) -> float:
        """Seconds a submitJob sent on `ctx` may take to land: its time-outs and the window."""
        return ctx.connect_timeout + ctx.read_timeout + 1 + self.config.submit_landing_window

    def handover(self) -> d.Earlier:
        """What this process, stopping, tells the next one of the submits sent so far."""
        with self.lock:
            memories = dict(self.memory)
        # Each object with its memory: a name recorded before its submit is settled only if refused.
        bodies = [b for b in map(self.registry.get, self.keys()) if b is not None]
        objects = [(o, memories.get(o.uid)) for o in map(d.ObjectState.of, bodies)]
        landing = self.landing(self.connections.default.context)
        return handover(memories.values(), self.earlier, self.acting_since, time.time(), landing, objects)

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
        """One look at an object, and the one place that decides when it is looked at again."""
        try:
            result = self.process(key)
        except Exception as exc:  # one object's failure is that object's alone
            delay = self.queue.add_rate_limited(key)
            log.warning("%s/%s: %s; retrying in %.0f s", *key, _describe(exc), delay)
            self.metrics.reconciled("error")
            return
        if result.next is Next.RETRY:
            delay = self.queue.add_rate_limited(key)
            log.info("%s/%s: %s; retrying in %.0f s", *key, result.reason, delay)
        elif result.next is Next.AFTER:
            self.queue.add_after(key, result.delay)
        elif result.next is Next.PARKED:
            pass  # its connection hands it back (`_handed_back`) when a call slot frees
        else:
            self.queue.forget(key)
        self.metrics.reconciled(result.next.value)

    # --- one object --------------------------------------------------------------------------

    def process(self, key: Key) -> Result:
        for _ in range(3):  # again at once only where what was done changes the decision
            body = self.registry.get(key)
            if body is None:
                return DONE
            obj = d.ObjectState.of(body)
            memory = self.memory.setdefault(obj.uid, d.Memory())
            conn, facts = self._facts(key, obj, memory)
            if conn is not None and conn.context.insecure() and obj.uid not in self.warned_insecure:
                self._warn_insecure(body, conn)
                self.warned_insecure.add(obj.uid)
            plan = self._publishing(obj, facts, d.reconcile(obj, facts))
            if plan.job:
                self.registry.route(plan.job, key, conn)
            if conn is not None:
                conn.watch(key, plan.watch)
            result = self.executor.execute(body, obj, memory, conn, plan)
            if result.next is Next.AGAIN:
                continue
            if result.next is Next.PARKED:
                if conn is None:  # only a connection's calls are capped; never so, but not lost
                    return Result(Next.AFTER, 0.5)
                conn.park(key)
            if result.next is Next.DONE:
                if plan.wait_snapshot and conn is not None:
                    conn.wait_for_snapshot(key, plan.look_within())
                elif plan.wait_snapshot:  # no connection yet (its Secret): the cache paces the reads
                    return Result(Next.AFTER, 3.0)
                if plan.requeue_after:
                    return Result(Next.AFTER, plan.requeue_after)
            return result
        return Result(Next.AFTER, 0.1)  # AGAIN three times: a breather, then on

    def _publishing(self, obj: d.ObjectState, facts: d.Facts, plan: d.Plan) -> d.Plan:
        """The plan with the object's Service, EndpointSlice and Secret kept in step."""
        if not pub.relevant(obj):
            return plan
        found, forbidden = self.published.found(obj, pub.wanted_names(obj), pub.fresh(obj))
        name = plan.job
        known = facts.snapshot is not None and name is not None
        info = facts.snapshot.get(name) if facts.snapshot is not None and name else None
        if (
            info is not None
            and name
            and not (
                info.type == obj.spec.get("type")
                and (obj.status.get("jobName") == name or ours(obj, facts, name))
            )
        ):
            info = None  # not this object's job: nothing of it is published
        where = allowed(self.config.endpoint_ranges, obj, obj.status.get("connection") or facts.connection)
        password = str((facts.params or {}).get("passwd") or "")
        failed = self.published.failures(obj.uid)
        view = pub.View(facts.now, known, info, where, found, password, forbidden, failed)
        return pub.plan(obj, plan, view)

    def _warn_insecure(self, body: Body, conn: Connection) -> None:
        """The administrator allowed plain http beyond loopback: the object's people are told."""
        where = public_url(conn.context.url)
        log.warning(
            "%s/%s: the JuliaRun token travels unencrypted to %s (plain http allowed)",
            body["metadata"]["namespace"],
            body["metadata"]["name"],
            where,
        )
        self.kube.event(
            body,
            "Warning",
            "InsecureTransport",
            f"the JuliaRun connection sends its token over plain http to {where}; "
            "ask the operator's administrator for an https URL",
            time.time(),
        )

    def _facts(self, key: Key, obj: d.ObjectState, memory: d.Memory) -> tuple[Connection | None, d.Facts]:
        now = time.time()
        params, invalid, outside = None, "", False
        try:
            params = job_params(obj.spec, obj.namespace, self.routing.secret_value)
        except (ParameterError, ValueError) as exc:
            invalid = str(exc)
            # A Secret the spec names can be fixed without touching the object: look again.
            outside = getattr(exc, "param", None) in SECRET_FIELDS
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
            invalid_outside=outside,
            unavailable=problem,
            snapshot=conn.snapshot if conn else None,
            snapshot_time=conn.snapshot_time if conn else 0.0,
            landing=self.landing(ctx),
            acting_since=self.acting_since,
            earlier=self.earlier,
            claimed_by=claimed_by,
            no_credentials=no_credentials,
            adopt_allowed=trusted and not claimed_by,
            trusted=trusted,
        )


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"Kubernetes API: HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
