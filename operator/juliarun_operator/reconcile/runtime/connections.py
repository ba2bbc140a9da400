"""JuliaRun connections, a compartment each: one client, one snapshot loop, one breaker and
one cap on calls under way per connection.

Objects that share a URL, JuliaRun namespace and token share a `Connection`. Its snapshot
(one getAllJobInfo) serves every object. Only the connection's own failures (no answer,
time-outs, 5xx, unreadable answers) open its breaker (breaker.py); a request refused
before sending, or an answer refusing one object's write, is that object's. While the
breaker is open, calls are refused locally until the backoff expires; then one caller
makes a single trial call, and the others follow only if it succeeds. So JuliaRun sees at
most one call per backoff delay (1 s, doubling to 60 s) per connection while it is down,
however many objects wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ...juliarun import Client, Context, JobInfo, JuliaRunError, RetryPolicy
from ...juliarun.client import SnapshotMemo
from ...juliarun.errors import ApiError, Blame, TransportError, blame
from .breaker import Backoff, Breaker, Unavailable, Why, trouble

Observe = Callable[[str, str, float], None]
Key = tuple[str, str]  # an object's (namespace, name)


def always() -> bool:
    return True


class Connection:
    """A JuliaRun connection shared by every object that uses it: a compartment of its own.

    Its breaker counts only the connection's failures (`blame`); at most `max_calls` calls
    are under way at once (a slow JuliaRun holds that many workers, never all); its snapshot
    is taken by a loop of its own (poller.SnapshotLoop); every call first asks `fence`
    whether this replica may send at all.
    """

    def __init__(
        self,
        context: Context,
        *,
        backoff: Backoff = Backoff(),  # noqa: B008 (a frozen dataclass)
        observe: Observe | None = None,
        pool_size: int = 16,
        max_calls: int = 8,
        fence: Callable[[], bool] = always,
        on_slot: Callable[[Key], object] = lambda key: None,
    ):
        self.context = context
        # The operator retries at its own level; one attempt per call keeps rates countable.
        self.client = Client(context, retry=RetryPolicy(attempts=1), observe=observe, pool_size=pool_size)
        self.breaker = Breaker(backoff)
        self.fence = fence
        self._slots = threading.BoundedSemaphore(max_calls)
        self._parked: dict[Key, None] = {}  # objects waiting for a call slot, oldest first
        self.on_slot = on_slot  # hands a parked object back when a slot frees
        self.snapshot: dict[str, JobInfo] | None = None
        self._memo = SnapshotMemo()  # the snapshot loop's thread alone uses it
        self.snapshot_time = 0.0  # wall time the snapshot's request was sent
        self.system_up = True
        self.last_used = time.monotonic()
        self._lock = threading.Lock()
        self.waiters: set[tuple[str, str]] = set()  # objects that want the next snapshot
        self.watched: set[tuple[str, str]] = set()  # objects whose job is watched closely (running batch)
        self.want_at = 0.0  # monotonic time a snapshot is wanted by (0: at the interval)
        self.wanted = threading.Event()  # set when want_at moves earlier: wakes the snapshot loop
        self.fetch_seconds = 0.0  # how long the last snapshot took, answer parsed
        self.closed = False
        self.ca_key = ""  # the digest of its CA bundle, if it has one (Connections' file)

    @property
    def healthy(self) -> bool:
        return self.breaker.failures == 0

    @property
    def problem(self) -> str:
        """The connection's trouble, worded the same for every object that uses it."""
        if not self.healthy:
            return self.breaker.describe()
        if not self.system_up:
            return "JuliaRun reports it is not connected to a compute cluster"
        return ""

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a client method through the fence, the breaker and the connection's call cap.

        Unavailable: nothing was sent. Otherwise the client's error, counted on the breaker
        only where it is the connection's (`blame`)."""
        return self._send(fn, args, kwargs, capped=True)

    def _send(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], capped: bool
    ) -> Any:
        if not self.fence():
            raise Unavailable("this replica does not hold the Lease", 1.0, Why.FENCED)
        self.breaker.admit()
        if capped and not self._slots.acquire(timeout=0.05):
            self.breaker.answered()  # a trial call that never went out
            raise Unavailable(
                "as many JuliaRun calls as this connection allows are under way",
                random.uniform(0.2, 0.5),  # noqa: S311 (jitter)
                Why.BUSY,
            )
        self.last_used = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except JuliaRunError as exc:
            if blame(exc) is Blame.CONNECTION:
                self.breaker.failed(trouble(exc))
            elif isinstance(exc, ApiError):
                self.breaker.succeeded()  # an answer: JuliaRun works
            else:
                self.breaker.answered()
            raise
        except OSError as exc:  # the client could not even try (a CA file gone): the connection's
            self.breaker.failed(f"cannot send ({type(exc).__name__})")
            raise TransportError(f"cannot send to JuliaRun: {type(exc).__name__}") from None
        finally:
            if capped:
                self._slots.release()
                self._unpark()
        self.breaker.succeeded()
        return result

    def park(self, key: Key) -> None:
        """`key` found every call slot taken (Why.BUSY): handed back (`on_slot`) as soon as one
        frees, oldest first, rather than on a timer (at 10,000 objects timed retries made
        14,000 extra looks, each holding a worker). Every release hands one back, and a slot
        freed while `key` was being parked is seen here: none waits for a release that came."""
        with self._lock:
            self._parked[key] = None
        if self._slots.acquire(blocking=False):
            self._slots.release()
            self._unpark()

    def _unpark(self) -> None:
        with self._lock:
            key = next(iter(self._parked), None)
            if key is None:
                return
            del self._parked[key]
        self.on_slot(key)

    def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """The snapshot loop's call: any failure, a refusal too, leaves us without JuliaRun's
        view, so it counts as a failure of the connection, whatever its code. Outside the call
        cap (the loop is one thread, so one call more at most): workers busy submitting must
        not starve the snapshot that tells them what landed."""
        try:
            return self._send(fn, args, {}, capped=False)
        except JuliaRunError as exc:
            if blame(exc) is not Blame.CONNECTION:  # the connection's are counted already
                self.breaker.failed(trouble(exc))
            raise

    def fetch(self) -> dict[str, JobInfo]:
        """A new snapshot (the snapshot loop's)."""
        sent, started = time.time(), time.monotonic()
        snapshot: dict[str, JobInfo] = self.read(self.client.get_all_job_info, self._memo)
        with self._lock:
            self.snapshot, self.snapshot_time = snapshot, sent
            self.fetch_seconds = time.monotonic() - started
        return snapshot

    def wait_for_snapshot(self, key: tuple[str, str], soon: float) -> None:
        """Ask for a snapshot within `soon` seconds and to be told when it comes."""
        with self._lock:
            self.waiters.add(key)
            due = time.monotonic() + soon
            if not self.want_at or due < self.want_at:
                self.want_at = due
                self.wanted.set()

    def watch(self, key: tuple[str, str], closely: bool) -> None:
        """While any object is watched closely, snapshots come every second (batch jobs
        running: their end shows within 2 s); only changed entries wake their objects."""
        with self._lock:
            if closely:
                if key not in self.watched:
                    self.watched.add(key)
                    self.wanted.set()
            else:
                self.watched.discard(key)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self.waiters.discard(key)
            self.watched.discard(key)
            self._parked.pop(key, None)

    def take_waiters(self) -> set[tuple[str, str]]:
        with self._lock:
            waiters, self.waiters, self.want_at = self.waiters, set(), 0.0
            return waiters

    def close(self) -> None:
        self.closed = True
        self.wanted.set()  # its loop ends
        with self._lock:
            parked, self._parked = list(self._parked), {}
        for key in parked:  # no call of this connection will free a slot for them
            self.on_slot(key)
        self.client.close()


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str = field(repr=False)
    namespace: str
    ca: str | None = field(default=None, repr=False)

    def key(self) -> tuple[str, str, str, str]:
        digest = hashlib.sha256(self.token.encode()).hexdigest()
        return (self.url, self.namespace, digest, ca_digest(self.ca))


def ca_digest(ca: str | None) -> str:
    return hashlib.sha256(ca.encode()).hexdigest() if ca else ""


class Connections:
    """The default connection, and one per distinct credentials Secret content.

    A connection that no object used for `idle` seconds is closed, so rotated tokens and
    moved URLs leave nothing behind. (The default connection's token file is read again by
    the client when it changes.) A CA bundle is written to one file per distinct CA, shared
    by the connections that trust it and removed with the last of them. `on_new` starts a
    new connection's snapshot loop.
    """

    def __init__(
        self,
        default: Context,
        *,
        backoff: Backoff = Backoff(),  # noqa: B008 (a frozen dataclass)
        observe: Observe | None = None,
        idle: float = 300.0,
        pool_size: int = 16,
        max_calls: int = 8,
        fence: Callable[[], bool] = always,
    ):
        # pool_size: as many connections as workers may call at once; a smaller pool opens
        # and drops a connection per call beyond it.
        self._backoff, self._observe, self._pool_size = backoff, observe, pool_size
        self._max_calls, self.fence = max_calls, fence
        self.on_new: Callable[[Connection], object] = lambda conn: None
        self.on_slot: Callable[[Key], object] = lambda key: None  # every connection's parked objects
        self.default = Connection(
            default,
            backoff=backoff,
            observe=observe,
            pool_size=pool_size,
            max_calls=max_calls,
            fence=self._fenced,
            on_slot=self._slot_freed,
        )
        self._by_key: dict[tuple[str, str, str, str], Connection] = {}
        self._ca_files: dict[str, tuple[str, int]] = {}  # CA digest -> (file, connections using it)
        self._lock = threading.Lock()
        self.idle = idle

    def _fenced(self) -> bool:
        return self.fence()  # looked up at each call: the wiring sets it after start-up

    def _slot_freed(self, key: Key) -> None:
        self.on_slot(key)  # looked up at each call, as the fence

    def get(self, credentials: Credentials | None) -> Connection:
        if credentials is None:
            return self.default
        with self._lock:
            conn = self._by_key.get(credentials.key())
            new = conn is None
            if conn is None:
                verify: bool | str = self._ca_file(credentials.ca) if credentials.ca else True
                context = replace(
                    self.default.context,
                    url=credentials.url,
                    token=credentials.token,
                    token_file=None,
                    namespace=credentials.namespace,
                    verify=verify,
                )
                conn = Connection(
                    context,
                    backoff=self._backoff,
                    observe=self._observe,
                    pool_size=self._pool_size,
                    max_calls=self._max_calls,
                    fence=self._fenced,
                    on_slot=self._slot_freed,
                )
                conn.ca_key = ca_digest(credentials.ca)
                self._by_key[credentials.key()] = conn
            conn.last_used = time.monotonic()
        if new:
            self.on_new(conn)
        return conn

    def _ca_file(self, ca: str) -> str:
        """The file of this CA bundle (requests wants a file), written once per CA."""
        digest = ca_digest(ca)
        path, users = self._ca_files.get(digest, ("", 0))
        if not path:
            with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as f:
                f.write(ca)
            path = f.name
        self._ca_files[digest] = (path, users + 1)
        return path

    def _release_ca(self, digest: str) -> None:
        path, users = self._ca_files.get(digest, ("", 0))
        if users > 1:
            self._ca_files[digest] = (path, users - 1)
        elif path:
            del self._ca_files[digest]
            with contextlib.suppress(OSError):
                os.unlink(path)

    def all(self) -> list[Connection]:
        with self._lock:
            return [self.default, *self._by_key.values()]

    def tidy(self) -> None:
        """Close the connections no object has used for `idle` seconds."""
        cutoff = time.monotonic() - self.idle
        with self._lock:
            stale = [k for k, c in self._by_key.items() if c.last_used < cutoff]
            closed = [self._by_key.pop(k) for k in stale]
            for conn in closed:
                if conn.ca_key:
                    self._release_ca(conn.ca_key)
        for conn in closed:
            conn.close()

    def close(self) -> None:
        with self._lock:
            closed = list(self._by_key.values())
            self._by_key.clear()
            for conn in closed:
                if conn.ca_key:
                    self._release_ca(conn.ca_key)
        for conn in [self.default, *closed]:
            conn.close()
