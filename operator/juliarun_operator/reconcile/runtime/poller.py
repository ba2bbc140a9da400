"""JuliaRun's view, fetched once per connection: one getAllJobInfo per sync interval, sooner
while objects wait for JuliaRun to move (the gap after one: ten times what it took, within
0.2 to 1 s), never while the connection's breaker is open. Only objects whose
entry changed are queued: a pass costs work in proportion to what changed, not to the
number of objects."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from ...juliarun import JuliaRunError
from .connections import Connection, Unavailable
from .controller import Controller
from .registry import Key

log = logging.getLogger("juliarun_operator.sync")
# Seconds from the end of one snapshot of a connection to the next while objects wait: ten
# times what the last one took, so snapshots take little of the time, but never more than
# 1 s (Ready within 2 s of JuliaRun showing a job; 10,000 jobs: 1 s) nor less than 0.2 s.
GAP_MIN, GAP_MAX, GAP_PER_FETCH = 0.2, 1.0, 10.0
LIVENESS = 60.0  # seconds without a poller round, or without a finished object while some wait


def gap(fetch_seconds: float) -> float:
    """Seconds from one snapshot to the next while objects wait for JuliaRun."""
    return min(GAP_MAX, max(GAP_MIN, GAP_PER_FETCH * fetch_seconds))


class Poller:
    def __init__(self, controller: Controller):
        self.ctl = controller
        self.config = controller.config
        self.heartbeat = time.monotonic()
        self.last_fetch: dict[int, float] = {}
        self.last_health: dict[int, float] = {}
        self.last_problem: dict[int, str] = {}
        self.next_resync = time.monotonic() + self.config.resync_interval
        self.next_housekeeping = 0.0

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set (and `connections.wanted` too, to end the wait at once)."""
        wanted = self.ctl.connections.wanted
        while not stop.is_set():
            self.heartbeat = time.monotonic()
            wanted.clear()  # a snapshot wanted from here on ends the wait below
            wait = 1.0
            if self.ctl.acting:
                try:
                    wait = self.tick()
                except Exception:  # the loop must outlive any one bad round
                    log.exception("snapshot round failed")
            wanted.wait(min(max(wait, 0.05), 1.0))

    def tick(self) -> float:
        now = time.monotonic()
        users = self.ctl.registry.users()
        next_due = now + 1.0
        for conn in self.ctl.connections.all():
            cid = id(conn)
            keys = users.get(cid, [])
            if not keys and not conn.waiters:
                continue
            last = self.last_fetch.get(cid, 0.0)
            due = last + self.config.sync_interval
            if conn.want_at:
                due = min(due, max(conn.want_at, last + gap(conn.fetch_seconds)))
            if not conn.healthy:
                due = max(due, conn.breaker.open_until)
            if now >= due:
                try:
                    self._fetch(conn, keys)
                finally:  # the gap counts from its end: a slow snapshot is not followed at once
                    self.last_fetch[cid] = time.monotonic()
            else:
                next_due = min(next_due, due)
        if now >= self.next_housekeeping:
            self.next_housekeeping = now + self.config.sync_interval
            self._housekeeping(users)
        if now >= self.next_resync:
            self.next_resync = now + self.config.resync_interval
            self.resync()
        return next_due - time.monotonic()

    def _fetch(self, conn: Connection, keys: list[Key]) -> None:
        cid = id(conn)
        previous = conn.snapshot
        try:
            snapshot = conn.fetch()
        except (Unavailable, JuliaRunError):
            snapshot = None
        now = time.monotonic()
        if snapshot is not None and now - self.last_health.get(cid, 0.0) >= self.config.health_interval:
            self.last_health[cid] = now
            with contextlib.suppress(Unavailable, JuliaRunError):  # the breaker counts it
                conn.system_up = bool(conn.read(conn.client.get_system_status))
        queued: set[Key] = set()
        problem = conn.problem
        if problem != self.last_problem.get(cid, ""):
            self.last_problem[cid] = problem
            queued.update(keys)  # every object shows the connection's state
        # Without a snapshot, waiters wait on: they are told when a fetch gets through.
        if snapshot is not None:
            queued |= conn.take_waiters()
            if previous is None:
                queued.update(keys)
            else:
                # An unchanged entry is the very same JobInfo (the client's memo): `is` says so at once.
                changed = {
                    n
                    for n in snapshot.keys() | previous.keys()
                    if snapshot.get(n) is not previous.get(n) and snapshot.get(n) != previous.get(n)
                }
                queued |= self.ctl.registry.routed(changed)
        for key in queued:
            self.ctl.queue.add(key)

    def _housekeeping(self, users: dict[int, list[Key]]) -> None:
        self.ctl.metrics.set_phases(self.ctl.registry.phases())
        in_use = [c for c in self.ctl.connections.all() if id(c) in users]
        self.ctl.metrics.set_unavailable(sum(1 for c in in_use if c.problem))
        self.ctl.connections.tidy()
        live = {id(c) for c in self.ctl.connections.all()}
        for index in (self.last_fetch, self.last_health, self.last_problem):
            for cid in [c for c in index if c not in live]:
                del index[cid]

    def resync(self) -> None:
        """A fresh list: forget objects deleted unseen, and look at every object again."""
        try:
            bodies, _ = self.ctl.kube.list_objects(self.config.namespaces)
        except Exception as exc:
            log.warning("resync list failed: %s", exc)
            return
        self.ctl.replace_all(bodies)
        for key in self.ctl.keys():  # noqa: SIM118 (a method that copies under the lock)
            self.ctl.queue.add(key)

    # --- probes: answered from memory, at once ---------------------------------------------

    def health(self) -> tuple[bool, str]:
        """Alive while the poller goes round and the workers get through the queue."""
        now = time.monotonic()
        late = now - self.heartbeat
        if late > LIVENESS:
            return False, f"snapshot loop stuck for {late:.0f} s"
        idle = now - self.ctl.last_done
        if len(self.ctl.queue) and idle > LIVENESS * 5:
            return False, f"no object handled for {idle:.0f} s while {len(self.ctl.queue)} wait"
        return True, f"snapshot loop ran {late:.1f} s ago; {len(self.ctl.queue)} objects queued"

    def ready(self) -> tuple[bool, str]:
        """Ready when the connections that objects use answer (the default one if none)."""
        if not self.ctl.acting:
            return True, "standby: another replica acts"
        users = self.ctl.registry.users()
        conns = [c for c in self.ctl.connections.all() if id(c) in users] or [self.ctl.connections.default]
        problems = sorted({c.problem for c in conns if c.problem})
        if problems:
            return False, "; ".join(problems)
        return True, f"{len(conns)} JuliaRun connection(s) up"
