"""JuliaRun's view, fetched by one loop per connection, and the operator's own housekeeping.

`SnapshotLoop`: one thread per connection, so a slow or broken JuliaRun delays only the
objects that use it. One getAllJobInfo per sync interval; sooner while objects wait for
JuliaRun to move (the gap after one: ten times what it took, within 0.2 to 1 s), every
second while a job is watched closely (a running batch job), never while the connection's
breaker is open. Only objects whose entry changed are woken: a pass costs work in
proportion to what changed, not to the number of objects.

`Housekeeper`: metrics, idle connections, the periodic full resync, and the probes, which
answer from the operator's own loops and never from a tenant's server.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from ...juliarun import JuliaRunError
from .breaker import Unavailable
from .connections import Connection
from .controller import Controller
from .registry import Key

log = logging.getLogger("juliarun_operator.sync")
# Seconds from the end of one snapshot of a connection to the next while objects wait: ten
# times what the last one took, so snapshots take little of the time, but never more than
# 1 s (Ready within 2 s of JuliaRun showing a job; 10,000 jobs: 1 s) nor less than 0.2 s.
GAP_MIN, GAP_MAX, GAP_PER_FETCH = 0.2, 1.0, 10.0
WATCH_GAP = 1.0  # seconds between snapshots while a job is watched closely
SERVED_CHECK = 5.0  # seconds between looks at whether the API server serves JuliaRunJobs
LIVENESS = 60.0  # seconds without a housekeeping round, or without a finished object while some wait


def gap(fetch_seconds: float) -> float:
    """Seconds from one snapshot to the next while objects wait for JuliaRun."""
    return min(GAP_MAX, max(GAP_MIN, GAP_PER_FETCH * fetch_seconds))


class SnapshotLoop:
    """One connection's snapshots, in a thread of its own, until it or the operator stops."""

    def __init__(self, controller: Controller, conn: Connection):
        self.ctl, self.conn, self.config = controller, conn, controller.config
        self.last_fetch = 0.0  # monotonic end of the last snapshot
        self.last_health = 0.0
        self.last_problem = ""
        self.rounds = 0  # snapshots taken: tests and metrics wait on it

    def run(self, stop: threading.Event) -> None:
        conn = self.conn
        while not stop.is_set() and not conn.closed:
            conn.wanted.clear()  # a snapshot wanted from here on ends the wait below
            wait = 1.0
            if self.ctl.acting:
                try:
                    wait = self.tick()
                except Exception:  # the loop must outlive any one bad round
                    log.exception("snapshot round failed")
            conn.wanted.wait(min(max(wait, 0.05), 1.0))

    def due(self, now: float) -> float:
        """When the next snapshot is due (monotonic); 0: none is wanted."""
        conn = self.conn
        due = self.last_fetch + self.config.sync_interval
        if conn.want_at:
            due = min(due, max(conn.want_at, self.last_fetch + gap(conn.fetch_seconds)))
        if conn.watched:
            due = min(due, self.last_fetch + max(WATCH_GAP, gap(conn.fetch_seconds)))
        if not conn.healthy:
            due = max(due, conn.breaker.open_until)
        return due

    def tick(self) -> float:
        """One round; seconds until the next is due."""
        keys = self.ctl.registry.users_of(self.conn)
        if not keys and not self.conn.waiters:
            return 1.0
        if time.monotonic() >= self.due(time.monotonic()):
            try:
                self.fetch(keys)
            finally:  # the gap counts from its end: a slow snapshot is not followed at once
                self.last_fetch = time.monotonic()
                self.rounds += 1
        return self.due(time.monotonic()) - time.monotonic()

    def fetch(self, keys: list[Key]) -> None:
        conn = self.conn
        previous = conn.snapshot
        try:
            snapshot = conn.fetch()
        except (Unavailable, JuliaRunError):
            snapshot = None
        now = time.monotonic()
        if snapshot is not None and now - self.last_health >= self.config.health_interval:
            self.last_health = now
            with contextlib.suppress(Unavailable, JuliaRunError):  # the breaker counts it
                conn.system_up = bool(conn.read(conn.client.get_system_status))
        woken: set[Key] = set()
        problem = conn.problem
        if problem != self.last_problem:
            self.last_problem = problem
            woken.update(keys)  # every object shows the connection's state
        # Without a snapshot, waiters wait on: they are told when a fetch gets through.
        if snapshot is not None:
            woken |= conn.take_waiters()
            if previous is None:
                woken.update(keys)
            else:
                # An unchanged entry is the very same JobInfo (the client's memo): `is` says so at once.
                changed = {
                    n
                    for n in snapshot.keys() | previous.keys()
                    if snapshot.get(n) is not previous.get(n) and snapshot.get(n) != previous.get(n)
                }
                woken |= self.ctl.registry.routed(changed)
        self.ctl.wake(woken)


class Housekeeper:
    """The operator's own loop: a snapshot loop per connection started, metrics, idle
    connections closed, the periodic resync; and the probes, answered from memory."""

    def __init__(
        self, controller: Controller, start: Callable[[str, Callable[[threading.Event], None]], None]
    ):
        self.ctl = controller
        self.config = controller.config
        self._start = start  # start(thread name, target): a thread that runs until the stop event
        self.loops: dict[int, SnapshotLoop] = {}
        self._lock = threading.Lock()
        self.heartbeat = time.monotonic()
        self.next_resync = time.monotonic() + self.config.resync_interval
        self.next_housekeeping = 0.0
        self.crd: str | None = None  # the uid of the CRD served at the last look ("": none; None: not looked)
        self.next_served_check = 0.0
        self.on_served_again: Callable[[], None] = lambda: None  # the wiring watches it anew

    def add(self, conn: Connection) -> SnapshotLoop:
        """The connection's snapshot loop, started once."""
        with self._lock:
            loop = self.loops.get(id(conn))
            if loop is None or loop.conn is not conn:
                loop = self.loops[id(conn)] = SnapshotLoop(self.ctl, conn)
                self._start(f"juliarun-snapshots-{len(self.loops)}", loop.run)
            return loop

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.heartbeat = time.monotonic()
            if self.ctl.acting:
                try:
                    self.tick()
                except Exception:  # the loop must outlive any one bad round
                    log.exception("housekeeping round failed")
            stop.wait(1.0)

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.next_housekeeping:
            self.next_housekeeping = now + self.config.sync_interval
            self.ctl.metrics.set_phases(self.ctl.registry.phases())
            users = self.ctl.registry.users()
            in_use = [c for c in self.ctl.connections.all() if id(c) in users]
            self.ctl.metrics.set_unavailable(sum(1 for c in in_use if c.problem))
            self.ctl.connections.tidy()
            live = {id(c) for c in self.ctl.connections.all()}
            with self._lock:
                for cid in [c for c in self.loops if c not in live]:
                    del self.loops[cid]  # closed: its loop has ended
        if now >= self.next_resync:
            self.next_resync = now + self.config.resync_interval
            self.ctl.resync()
        if now >= self.next_served_check:
            self.next_served_check = now + SERVED_CHECK
            crd = self.ctl.kube.serving()
            if crd is None or crd == self.crd:
                return
            if not crd:
                log.warning("the JuliaRunJob resource is not served (its CRD is gone): waiting for it")
            elif self.crd is not None:  # gone and back, or deleted and created again between looks
                log.warning("the JuliaRunJob resource is served again (its CRD was created anew)")
                self.on_served_again()
            self.crd = crd

    # --- probes: answered from memory, at once ---------------------------------------------

    def health(self) -> tuple[bool, str]:
        """Alive while the operator's own loops go round: housekeeping, and the workers getting
        through the queue. A tenant's slow or broken JuliaRun never makes it so."""
        now = time.monotonic()
        late = now - self.heartbeat
        if late > LIVENESS:
            return False, f"housekeeping loop stuck for {late:.0f} s"
        queued = len(self.ctl.queue)
        idle = now - self.ctl.last_done
        if queued and idle > LIVENESS * 5:
            return False, f"no object handled for {idle:.0f} s while {queued} wait"
        return True, f"housekeeping ran {late:.1f} s ago; {queued} objects queued"

    def ready(self) -> tuple[bool, str]:
        """Ready when the default connection answers; tenants' connections are counted, never
        named (their URLs and errors are theirs)."""
        if not self.ctl.acting:
            return True, "standby: another replica acts"
        default = self.ctl.connections.default
        if default.problem:
            return False, f"default connection: {default.problem}"
        users = self.ctl.registry.users()
        tenants = [c for c in self.ctl.connections.all() if c is not default and id(c) in users]
        failing = sum(1 for c in tenants if c.problem)
        return True, f"default connection up; {len(tenants)} tenant connection(s), {failing} failing"
