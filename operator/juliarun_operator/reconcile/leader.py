"""One replica acts: a coordination.k8s.io Lease, held by renewing it, as client-go's leader
election does. The others keep watching (so their registry is warm) and wait; a replica
that stops releases the Lease, so another takes over at once; one that dies is taken over
when its Lease has not been renewed for its duration, as measured by the waiting replica's
own clock (no trust in other clocks).

A replica that stops cleanly says in the Lease whether every submitJob it sent was answered
(`SETTLED_ANNOTATION`); the next holder then need not wait out the landing window for jobs
JuliaRun does not show. Taking the Lease clears the word, so a crash never leaves it behind.

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

from .kube import TIMEOUT, ApiException

log = logging.getLogger("juliarun_operator.leader")
SETTLED_ANNOTATION = "juliarun.dev/sends-settled"


class LeaseElector:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        name: str,
        namespace: str,
        identity: str,
        on_change: Callable[[bool], None],
        duration: int = 15,
    ):
        self.api = kubernetes.client.CoordinationV1Api(api)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.on_change, self.duration = on_change, duration
        self.holding = False
        self.problem = ""  # why the Lease cannot be taken or read, if it cannot
        self._observed: tuple[str | None, object] = (None, None)  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time that record was first seen
        self._renewed = 0.0
        self.inherited_settled = False  # the holder before us stopped with every submit answered

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                holding = self._try()
                self.problem = ""
            except Exception as exc:
                self.problem = f"Lease {self.namespace}/{self.name}: {getattr(exc, 'reason', None) or exc}"
                log.warning("%s", self.problem)
                # Keep acting only while our last renewal is surely still valid.
                holding = self.holding and time.monotonic() - self._renewed < self.duration * 2 / 3
            self._set(holding)
            stop.wait(self.duration / 3 if holding else 2.0)

    def release(self, settled: bool) -> None:
        """Stop acting and hand the Lease back, once this process sends nothing more;
        `settled`: every submitJob it sent was answered."""
        if self.holding:
            self._set(False)
            self._release(settled)

    def _set(self, holding: bool) -> None:
        if holding != self.holding:
            self.holding = holding
            self.on_change(holding)

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def _try(self) -> bool:
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=TIMEOUT)
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
            try:
                self.api.create_namespaced_lease(self.namespace, body, _request_timeout=TIMEOUT)
            except ApiException as exc2:
                if exc2.status == 409:
                    return False  # another replica created it first
                raise
            log.info("took Lease %s/%s (created it)", self.namespace, self.name)
            self._renewed = time.monotonic()
            self.inherited_settled = False  # a process without the Lease may have acted before
            return True
        spec = lease.spec or kubernetes.client.V1LeaseSpec()
        lease.spec = spec
        record = (spec.holder_identity, spec.renew_time)
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        mine = spec.holder_identity == self.identity
        expired = time.monotonic() - self._observed_at > (spec.lease_duration_seconds or self.duration)
        if spec.holder_identity and not mine and not expired:
            return False
        if not mine:
            meta = lease.metadata = lease.metadata or kubernetes.client.V1ObjectMeta()
            annotations = meta.annotations or {}
            # Only a released Lease carries the word of its last holder; an expired one, none.
            word = annotations.get(SETTLED_ANNOTATION)
            self.inherited_settled = not spec.holder_identity and word == "true"
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
        try:  # resourceVersion makes this fail if another replica wrote the Lease meanwhile
            self.api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self._renewed = time.monotonic()
        return True

    def _release(self, settled: bool) -> None:
        """Hand the Lease back, so that another replica need not wait for it to expire."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=TIMEOUT)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                if settled:
                    meta = lease.metadata = lease.metadata or kubernetes.client.V1ObjectMeta()
                    meta.annotations = {**(meta.annotations or {}), SETTLED_ANNOTATION: "true"}
                self.api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=TIMEOUT)
                log.info("released Lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)
