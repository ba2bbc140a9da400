"""The batch status sync: one getAllJobInfo per connection per interval, for all objects.

Each interval it groups the submitted objects by connection, fetches each connection's
snapshot once, and patches the status of only those objects whose view changed. A job
that completes gets its last log lines posted as an Event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

from ..juliarun import Job, JuliaRunError
from ..juliarun import jobtypes as jt
from . import status as st
from .connections import Connection, Unavailable
from .runtime import PAUSE_ANNOTATION, Retry, Runtime

log = logging.getLogger("juliarun_operator.sync")
WRITERS = 8  # concurrent status patches: the API server, not this loop, should set the pace


class Syncer:
    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.stop = threading.Event()
        self.last_tick = time.monotonic()
        self.system_ok: dict[int, tuple[float, bool]] = {}  # id(conn) -> (checked at, up)
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="status")
        self._thread = threading.Thread(target=self._loop, name="juliarun-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        interval = self.rt.config.sync_interval
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.sync_once()
            except Exception:  # the loop must outlive any one bad tick
                log.exception("status sync failed")
            self.last_tick = time.monotonic()
            self.stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def sync_once(self) -> None:
        with self.rt.objects_lock:
            bodies = list(self.rt.objects.values())
        self.rt.metrics.set_phases(Counter((b.get("status") or {}).get("phase", "Pending") for b in bodies))
        # Objects whose submitJob returned before this point; their jobs are in the snapshot
        # fetched below.
        groups: dict[int, tuple[Connection, list[tuple[Mapping[str, Any], tuple]]]] = {}
        for body in bodies:
            view = st.ObjectView.of(body, PAUSE_ANNOTATION)
            applied = self.rt.applied_job(body, view)
            # The body must show the name recorded for the job: an older one (a handler may be
            # ahead of the registry) would bring back conditions the handler has replaced,
            # such as the Conflict an adoption has just ended.
            if view.paused or view.deleting or not applied or view.status.get("jobName") != applied[0]:
                continue
            try:
                conn = self.rt.connection(view)
            except Retry:
                continue  # its Secret is missing: the handlers report that
            groups.setdefault(id(conn), (conn, []))[1].append((body, applied))
        futures = []
        for conn, members in groups.values():
            fetched = time.monotonic()
            snapshot, problem = self._fetch(conn)
            for body, applied in members:
                futures.append(self._pool.submit(self._sync_object, body, applied, snapshot, problem, conn))
                if snapshot is not None and not problem:
                    futures.append(self._pool.submit(self._correct_scale, body, applied[0], snapshot, fetched))
        for future in futures:
            future.result()

    def _fetch(self, conn: Connection) -> tuple[dict | None, str]:
        try:
            snapshot = conn.refresh()
        except (Unavailable, JuliaRunError) as exc:
            return None, f"JuliaRun unreachable: {exc}"
        if not self._system_up(conn):
            return snapshot, "JuliaRun reports it is not connected to a compute cluster"
        return snapshot, ""

    def _system_up(self, conn: Connection) -> bool:
        """getSystemStatus, at most once per health interval per connection."""
        checked, up = self.system_ok.get(id(conn), (0.0, True))
        if time.monotonic() - checked < self.rt.config.health_interval:
            return up
        try:
            up = bool(conn.call(conn.client.get_system_status))
        except (Unavailable, JuliaRunError):
            up = False
        self.system_ok[id(conn)] = (time.monotonic(), up)
        return up

    def _sync_object(self, body: Mapping[str, Any], applied: tuple[str, str | None],
                     snapshot: dict | None, problem: str, conn: Connection) -> None:
        view = st.ObjectView.of(body, PAUSE_ANNOTATION)
        name, digest = applied
        if snapshot is None:
            fields = st.view_of(view, None, reachable=False, problem=problem)
        else:
            fields = st.view_of(view, snapshot.get(name), reachable=not problem, problem=problem)
        if not view.status.get("submitted"):  # the first write after submitJob says so
            fields.update(submitted=True, parametersHash=digest)
        if not st.changed(view.status, fields):
            return
        try:
            self.rt.write_status(body, fields)
        except Exception as exc:  # the object may be gone; the next tick sees the truth
            log.debug("status of %s/%s not written: %s", view.namespace, view.name, exc)
            return
        if fields.get("completed") and not view.status.get("completed"):
            self._post_logs(body, view, conn, name, fields["phase"])

    def _correct_scale(self, body: Mapping[str, Any], name: str, snapshot: dict, fetched: float) -> None:
        """Level-triggered backstop for scale events that were lost (a crash, a change kopf
        folded into another cycle): a running job whose requested scale differs from
        spec.parallelism in a snapshot taken after our last setJobScale gets it again."""
        view = st.ObjectView.of(body, PAUSE_ANNOTATION)
        info = snapshot.get(name)
        wanted = view.spec.get("parallelism")
        job_type = jt.JOB_TYPES.get(view.spec.get("type", ""))
        if info is None or wanted is None or job_type is None or not job_type.scalable \
                or info.status.completed or info.scale.requested == wanted \
                or st.handler_stall(view.status, view.generation) \
                or self.rt.scale_calls.get((view.namespace, view.name), 0.0) >= fetched:
            return
        try:
            self.rt.scale(body, wanted)
        except (Retry, JuliaRunError) as exc:
            log.info("scale of %s/%s not corrected yet: %s", view.namespace, view.name, exc)

    def _post_logs(self, body: Mapping[str, Any], view: st.ObjectView, conn: Connection,
                   name: str, phase: str) -> None:
        count = self.rt.config.log_lines_on_completion
        try:
            lines = conn.call(conn.client.tail_job, Job(view.spec["type"], name), count=count)
        except (Unavailable, JuliaRunError) as exc:
            lines = f"(logs unavailable: {exc})"
        etype = "Normal" if phase == "Completed" else "Warning"
        self.rt.kube.event(body, etype, phase, f"job {name} {phase.lower()}; last log lines:\n{lines}")

    def health(self) -> tuple[bool, str]:
        """Alive while the sync loop keeps ticking."""
        late = time.monotonic() - self.last_tick
        limit = 3 * self.rt.config.sync_interval + 30
        return (late < limit, f"last status sync {late:.1f} s ago")

    def ready(self) -> tuple[bool, str]:
        """Ready when JuliaRun answers on the default connection."""
        conn = self.rt.connections.default
        if not conn.healthy:
            return False, "JuliaRun: " + conn.last_error
        if not self._system_up(conn):
            return False, "JuliaRun: " + (conn.last_error or "system status false")
        return True, "JuliaRun is up"
