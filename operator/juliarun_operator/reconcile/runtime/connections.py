"""JuliaRun connections: one client, one job snapshot and one breaker per connection.

Objects that share a URL, JuliaRun namespace and token share a `Connection`. Its snapshot
(one getAllJobInfo) serves every object. While a connection fails, its breaker refuses
calls locally until the backoff expires; then one caller makes a single trial call, and
the others follow only if it succeeds. So JuliaRun sees at most one call per backoff
delay (1 s, doubling to 60 s) per connection while it is down, however many objects wait.
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
from dataclasses import dataclass
from typing import Any

from ...juliarun import Client, Context, JobInfo, JuliaRunError, RetryPolicy
from ...juliarun.client import SnapshotMemo
from ...juliarun.errors import ApiError

Observe = Callable[[str, str, float], None]


class Unavailable(Exception):
    """JuliaRun is failing for this connection; retry after `delay` seconds."""

    def __init__(self, message: str, delay: float):
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class Backoff:
    """Exponential, capped, with jitter so that callers do not retry in step."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)


class Breaker:
    """Closed while calls succeed; open for a backoff after a failure; then half-open:
    one trial call, whose outcome closes it or opens it again for a longer backoff."""

    def __init__(self, backoff: Backoff):
        self.backoff = backoff
        self._lock = threading.Lock()
        self.failures = 0
        self.open_until = 0.0
        self.trial = False  # a trial call is out
        self.last_error = ""

    def admit(self) -> None:
        """Return if a call may go out now; raise Unavailable (with a jittered delay) if not."""
        now = time.monotonic()
        with self._lock:
            if self.failures == 0:
                return
            if now >= self.open_until and not self.trial:
                self.trial = True
                return
            wait = max(self.open_until - now, 0.0) + random.uniform(0.1, 1.0)  # noqa: S311 (jitter)
            raise Unavailable(self.last_error or "JuliaRun unavailable", wait)

    def failed(self, message: str) -> None:
        with self._lock:
            self.failures += 1
            self.trial = False
            self.last_error = message
            self.open_until = time.monotonic() + self.backoff.delay(self.failures)

    def succeeded(self) -> None:
        with self._lock:
            self.failures, self.trial, self.last_error = 0, False, ""

    def retry_delay(self) -> float:
        with self._lock:
            return max(self.open_until - time.monotonic(), 0.0) + random.uniform(0.1, 1.0)  # noqa: S311 (jitter)


class Connection:
    """A JuliaRun connection shared by every object that uses it."""

    def __init__(
        self,
        context: Context,
        *,
        backoff: Backoff = Backoff(),
        observe: Observe | None = None,
        ca_file: str | None = None,
        pool_size: int = 16,
        wanted: threading.Event | None = None,
    ):
        self.context = context
        # The operator retries at its own level; one attempt per call keeps rates countable.
        self.client = Client(context, retry=RetryPolicy(attempts=1), observe=observe, pool_size=pool_size)
        self.breaker = Breaker(backoff)
        self.ca_file = ca_file
        self.snapshot: dict[str, JobInfo] | None = None
        self._memo = SnapshotMemo()  # the poller's thread alone uses it
        self.snapshot_time = 0.0  # wall time the snapshot's request was sent
        self.system_up = True
        self.last_used = time.monotonic()
        self._lock = threading.Lock()
        self.waiters: set[tuple[str, str]] = set()  # objects that want the next snapshot
        self.want_at = 0.0  # monotonic time a snapshot is wanted by (0: at the interval)
        self.wanted = wanted or threading.Event()  # set when want_at moves earlier: wakes the poller
        self.fetch_seconds = 0.0  # how long the last snapshot took, answer parsed

    @property
    def healthy(self) -> bool:
        return self.breaker.failures == 0

    @property
    def problem(self) -> str:
        if not self.healthy:
            return f"JuliaRun unreachable: {self.breaker.last_error}"
        if not self.system_up:
            return "JuliaRun reports it is not connected to a compute cluster"
        return ""

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a client method through the breaker. An answer from JuliaRun (ApiError), even
        a refusal, shows that JuliaRun works; everything else counts as a failure."""
        self.breaker.admit()
        self.last_used = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except ApiError:
            self.breaker.succeeded()
            raise
        except JuliaRunError as exc:
            self.breaker.failed(str(exc))
            raise
        self.breaker.succeeded()
        return result

    def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A call that only reads: a refusal (ApiError) leaves us without JuliaRun's view, so
        it counts as a failure of the connection, whatever its code."""
        try:
            return self.call(fn, *args)
        except ApiError as exc:
            self.breaker.failed(str(exc))
            raise

    def fetch(self) -> dict[str, JobInfo]:
        """A new snapshot (the poller's)."""
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

    def take_waiters(self) -> set[tuple[str, str]]:
        with self._lock:
            waiters, self.waiters, self.want_at = self.waiters, set(), 0.0
            return waiters

    def close(self) -> None:
        self.client.close()
        if self.ca_file:
            with contextlib.suppress(OSError):
                os.unlink(self.ca_file)


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str
    namespace: str
    ca: str | None = None

    def key(self) -> tuple[str, str, str, str]:
        digest = hashlib.sha256(self.token.encode()).hexdigest()
        ca_digest = hashlib.sha256(self.ca.encode()).hexdigest() if self.ca else ""
        return (self.url, self.namespace, digest, ca_digest)


class Connections:
    """The default connection, and one per distinct credentials Secret content.

    A connection that no object used for `idle` seconds is closed and its CA file removed,
    so rotated tokens and moved URLs leave nothing behind. (The default connection's token
    file is read again by the client when it changes.)
    """

    def __init__(
        self,
        default: Context,
        *,
        backoff: Backoff = Backoff(),
        observe: Observe | None = None,
        idle: float = 300.0,
        pool_size: int = 16,
    ):
        # pool_size: as many connections as workers may call at once; a smaller pool opens
        # and drops a connection per call beyond it.
        self._backoff, self._observe, self._pool_size = backoff, observe, pool_size
        self.wanted = threading.Event()  # any connection's want_at moved earlier
        self.default = Connection(
            default, backoff=backoff, observe=observe, pool_size=pool_size, wanted=self.wanted
        )
        self._by_key: dict[tuple[str, str, str, str], Connection] = {}
        self._lock = threading.Lock()
        self.idle = idle

    def get(self, credentials: Credentials | None) -> Connection:
        if credentials is None:
            return self.default
        with self._lock:
            conn = self._by_key.get(credentials.key())
            if conn is None:
                verify: bool | str = True
                ca_file = None
                if credentials.ca:  # requests wants a CA bundle as a file; removed on close
                    with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as f:
                        f.write(credentials.ca)
                    verify = ca_file = f.name
                base = self.default.context
                context = Context(
                    url=credentials.url,
                    token=credentials.token,
                    namespace=credentials.namespace,
                    verify=verify,
                    connect_timeout=base.connect_timeout,
                    read_timeout=base.read_timeout,
                )
                conn = Connection(
                    context,
                    backoff=self._backoff,
                    observe=self._observe,
                    ca_file=ca_file,
                    pool_size=self._pool_size,
                    wanted=self.wanted,
                )
                self._by_key[credentials.key()] = conn
            conn.last_used = time.monotonic()
            return conn

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
            conn.close()
