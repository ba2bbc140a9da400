"""One replica acts: a coordination.k8s.io Lease, held by renewing it, as client-go's leader
election does. The others keep watching (so their registry is warm) and wait; a replica
that stops releases the Lease, so another takes over at once; one that dies is taken over
when its Lease has not been renewed for its duration, as measured by the waiting replica's
own clock (no trust in other clocks).

A replica that stops cleanly says in the Lease what may still land of the submits sent so
far (`SETTLED_ANNOTATION`): "true", nothing; a time, only submits of objects created before
it (an earlier replica's, whose landing window is not over); "false", its own unanswered
ones. The next holder then need not wait out the landing window for jobs JuliaRun does not
show, or only for those. Taking the Lease clears the word, so a crash never leaves it behind.
After a crash, the API server's time of the Lease's last write (its managedFields entry)
bounds when the replica before stopped acting: an object created later was never seen by
it, and what it sent can no longer land a landing window after that bound. A holder that is
seen to be gone bounds it sooner: an earlier process of this pod (a restarted container)
ended before this one began, and a pod that no longer exists had stopped when it was looked
for (kubelet removes a pod once its containers have stopped).

The official client's `leaderelection` package is not used: it exits the process on bad
settings, works on the global default client, and never releases the Lease on shutdown.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

import kubernetes

from ..decision.model import Earlier
from .kube import ApiException

log = logging.getLogger("juliarun_operator.leader")
SETTLED_ANNOTATION = "juliarun.dev/sends-settled"
FIELD_MANAGER = "juliarun-operator"  # every replica writes the Lease as this manager
# A holder stops acting 2/3 of its duration after it sent its last renewal; the bound allows
# the whole duration, plus the whole seconds the API server's time stamps are cut to.
STOP_MARGIN = 3.0


class LeaseElector:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        name: str,
        namespace: str,
        identity: str,
        on_change: Callable[[bool], None],
        duration: int = 15,
        pod: tuple[str, str] | None = None,
    ):
        self.api = kubernetes.client.CoordinationV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        # (namespace, name) of the pod this process runs in, whose replicas name themselves
        # <pod>_<pid>; None outside a pod, where a holder's name says nothing of a pod.
        self.pod = pod
        self._started = time.time()
        self._gone: tuple[str, float] | None = None  # (holder, a time it had surely stopped by)
        self._looked: tuple[str, bool] | None = None  # (holder, record stale) last looked for
        self.name, self.namespace, self.identity = name, namespace, identity
        self.on_change, self.duration = on_change, duration
        self.holding = False
        self.problem = ""  # why the Lease cannot be taken or read, if it cannot
        self._observed: tuple[str | None, object] = (None, None)  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time that record was first seen
        self._renewed = 0.0
        self.inherited = Earlier()  # what the Lease said of the holder before us when we took it
        # Lease calls end well within the time a holder may go on acting without renewing.
        self._timeout = (min(5.0, duration / 3), duration / 3)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                holding = self._try()
                self.problem = ""
            except Exception as exc:
                self.problem = f"Lease {self.namespace}/{self.name}: {getattr(exc, 'reason', None) or exc}"
                log.warning("%s", self.problem)
                # Keep acting only while our last renewal is surely still valid.
                holding = self.valid()
            self._set(holding)
            stop.wait(self.duration / 3 if holding else 2.0)

    def valid(self) -> bool:
        """Whether this replica may send now: it holds the Lease and its last renewal, by this
        process's own monotonic clock (which runs on while the process is stopped), is recent
        enough that no other replica can have taken it over. Asked right before each send."""
        return self.holding and time.monotonic() - self._renewed < self.duration * 2 / 3

    def release(self, handover: Earlier) -> None:
        """Stop acting and hand the Lease back, once this process sends nothing more;
        `handover`: what may still land of the submits sent so far."""
        if self.holding:
            self._set(False)
            self._release(handover)

    def _set(self, holding: bool) -> None:
        if holding != self.holding:
            self.holding = holding
            self.on_change(holding)

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def _try(self) -> bool:
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = kubernetes.client.V1Lease(
                metadata=kubernetes.client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=kubernetes.client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.duration,
                    acquire_time=self._now(),
                    renew_time=self._now(),
                    lease_transitions=0,
                ),
            )
            sent = time.monotonic()
            try:
                self.api.create_namespaced_lease(
                    self.namespace, body, field_manager=FIELD_MANAGER, _request_timeout=self._timeout
                )
            except ApiException as exc2:
                if exc2.status == 409:
                    return False  # another replica created it first
                raise
            log.info("took Lease %s/%s (created it)", self.namespace, self.name)
            self._renewed = sent
            self.inherited = Earlier()  # a process without the Lease may have acted before
            return True
        spec = lease.spec or kubernetes.client.V1LeaseSpec()
        lease.spec = spec
        record = (spec.holder_identity, spec.renew_time)
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        mine = spec.holder_identity == self.identity
        held_for = time.monotonic() - self._observed_at
        expired = held_for > (spec.lease_duration_seconds or self.duration)
        if spec.holder_identity and not mine and not self.holding:
            self._look_for(spec.holder_identity, stale=held_for > self.duration / 3 + 1)
        if spec.holder_identity and not mine and not expired:
            return False
        gone = self._gone[1] if self._gone and self._gone[0] == spec.holder_identity else None
        earlier = None if self.holding else _earlier(lease, gone)  # taking it: what it says of before
        if not mine:
            meta = lease.metadata = lease.metadata or kubernetes.client.V1ObjectMeta()
            annotations = meta.annotations or {}
            if SETTLED_ANNOTATION in annotations:
                meta.annotations = {k: v for k, v in annotations.items() if k != SETTLED_ANNOTATION}
            spec.acquire_time = self._now()
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            log.info(
                "taking Lease %s/%s from %s", self.namespace, self.name, spec.holder_identity or "nobody"
            )
        spec.holder_identity, spec.renew_time, spec.lease_duration_seconds = (
            self.identity,
            self._now(),
            self.duration,
        )
        sent = time.monotonic()
        try:  # resourceVersion makes this fail if another replica wrote the Lease meanwhile
            self._replace(lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self._renewed = sent
        if earlier is not None:
            self.inherited = earlier
            log.info("the replica before: %s", _describe(earlier))
        return True

    def _look_for(self, holder: str, stale: bool) -> None:
        """Note when `holder` had surely stopped, if it can be seen: once when it is first
        seen holding, once more when it stops renewing."""
        if self.pod is None or self._looked == (holder, stale) or (self._gone and self._gone[0] == holder):
            return
        namespace, mine = self.pod
        pod = holder.rpartition("_")[0]
        if pod == mine:
            self._gone = (holder, self._started)  # an earlier container of this pod
            return
        try:
            self.core.read_namespaced_pod(pod, namespace, _request_timeout=self._timeout)
            self._looked = (holder, stale)  # it is there: look again only when it goes silent
        except ApiException as exc:
            if exc.status != 404:
                log.info("cannot look for the Lease's holder %s: HTTP %s", holder, exc.status)
                return  # the next round looks again
            self._gone = (holder, time.time())
            log.info("the Lease's holder %s: its pod is gone", holder)

    def _replace(self, lease: kubernetes.client.V1Lease) -> None:
        self.api.replace_namespaced_lease(
            self.name, self.namespace, lease, field_manager=FIELD_MANAGER, _request_timeout=self._timeout
        )

    def _release(self, handover: Earlier) -> None:
        """Hand the Lease back, so that another replica need not wait for it to expire."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self._timeout)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                # Said either way: the write's time stamp then bounds when this replica stopped.
                meta = lease.metadata = lease.metadata or kubernetes.client.V1ObjectMeta()
                meta.annotations = {**(meta.annotations or {}), SETTLED_ANNOTATION: _word(handover)}
                self._replace(lease)
                log.info("released Lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)


def _word(handover: Earlier) -> str:
    """SETTLED_ANNOTATION's value for a hand-over; `_earlier` reads it back."""
    if handover.settled:
        return "true"
    return "false" if handover.until is None else _stamp(handover.until)


def _earlier(lease: kubernetes.client.V1Lease, gone: float | None = None) -> Earlier:
    """What a Lease about to be taken says of the replica that held it last; `gone`: a
    time that replica was seen to have stopped by."""
    meta = lease.metadata or kubernetes.client.V1ObjectMeta()
    spec = lease.spec or kubernetes.client.V1LeaseSpec()
    written = [
        e.time.timestamp()
        for e in meta.managed_fields or []
        if e.manager == FIELD_MANAGER and e.time is not None
    ]
    if not written:
        return Earlier(until=gone)  # written by a version that did not name itself
    last = max(written)
    if spec.holder_identity:  # it did not release it: it may have acted until its duration ran out
        until = last + (spec.lease_duration_seconds or 0) + STOP_MARGIN
        return Earlier(until=until if gone is None else min(until, gone))
    # Released: it had stopped before it wrote that (only a release writes no holder).
    word = (meta.annotations or {}).get(SETTLED_ANNOTATION, "")
    if word == "true":
        return Earlier(settled=True, until=last + STOP_MARGIN)
    try:  # a time: only objects created before it may still have a submit landing
        return Earlier(until=min(last + STOP_MARGIN, dt.datetime.fromisoformat(word).timestamp()))
    except ValueError:
        return Earlier(until=last + STOP_MARGIN)


def _describe(earlier: Earlier) -> str:
    if earlier.settled:
        return "stopped with every submit answered"
    if earlier.until is None:
        return "unknown (objects created before now wait the landing window if JuliaRun lacks them)"
    return f"a submit it sent may still land for objects created before {_stamp(earlier.until)}"


def _stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds")
