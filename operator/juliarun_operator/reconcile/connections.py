"""JuliaRun connections: one client, one job snapshot and one backoff per connection.

Objects that share a URL, JuliaRun namespace and token share a `Connection`. Its snapshot
(one getAllJobInfo) serves every object: the status sync refreshes it once per interval,
and handlers that must know whether a job exists ask for one fetched after they started,
so concurrent handlers share a single call. While a connection is failing, calls through
it are refused locally until its backoff expires: JuliaRun's call rate stays bounded
whatever fails and however many objects want it.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..juliarun import Client, Context, JobInfo, JuliaRunError, RetryPolicy
from ..juliarun.errors import ApiError, HTTPError, TransportError, InvalidResponse


class Unavailable(Exception):
    """JuliaRun is failing for this connection; retry after `delay` seconds."""

    def __init__(self, message: str, delay: float):
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class Backoff:
    """Exponential, capped, with full jitter (the AWS variant: spreads retries apart)."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return random.uniform(ceiling / 2, ceiling)


def outage(exc: Exception) -> bool:
    """Errors that say JuliaRun (or the way to it) is failing, not that a request was wrong."""
    if isinstance(exc, (TransportError, InvalidResponse)):
        return True
    if isinstance(exc, HTTPError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, ApiError) and exc.code in (1, 99)  # internal or injected fault


class Connection:
    """A JuliaRun connection shared by every object that uses it."""

    def __init__(self, context: Context, *, backoff: Backoff = Backoff(),
                 observe: Callable[[str, str, float], None] | None = None):
        self.context = context
        # The operator retries at its own level; one attempt per call keeps rates countable.
        self.client = Client(context, retry=RetryPolicy(attempts=1), observe=observe, pool_size=64)
        self.backoff = backoff
        self._lock = threading.Lock()
        self._fetched = threading.Condition(self._lock)
        self._fetching = False
        self.snapshot: dict[str, JobInfo] | None = None
        self.snapshot_time = 0.0  # monotonic time the snapshot's request started
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""

    @property
    def healthy(self) -> bool:
        return self.failures == 0

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a client method, unless the connection is backing off; record the outcome."""
        now = time.monotonic()
        with self._lock:
            if now < self.retry_at:
                raise Unavailable(self.last_error or "JuliaRun unavailable", self.retry_at - now)
        try:
            result = fn(*args, **kwargs)
        except JuliaRunError as exc:
            if outage(exc):
                self._failed(str(exc))
            raise
        self._succeeded()
        return result

    def _failed(self, message: str) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = message
            self.retry_at = time.monotonic() + self.backoff.delay(self.failures)

    def _succeeded(self) -> None:
        with self._lock:
            self.failures, self.retry_at, self.last_error = 0, 0.0, ""

    def retry_delay(self) -> float:
        return max(self.retry_at - time.monotonic(), self.backoff.delay(max(self.failures, 1)))

    def jobs(self, fresh_after: float | None = None) -> dict[str, JobInfo]:
        """The job snapshot, fetched at or after `fresh_after` (monotonic) if given.

        Concurrent callers wait for one fetch rather than each making their own.
        """
        with self._lock:
            while True:
                if self.snapshot is not None and (fresh_after is None or self.snapshot_time >= fresh_after):
                    return self.snapshot
                if not self._fetching:
                    break
                self._fetched.wait()
            self._fetching = True
        started = time.monotonic()
        try:
            snapshot = self.call(self.client.get_all_job_info)
        finally:
            with self._lock:
                self._fetching = False
                self._fetched.notify_all()
        with self._lock:
            if started >= self.snapshot_time:
                self.snapshot, self.snapshot_time = snapshot, started
            return snapshot

    def refresh(self) -> dict[str, JobInfo]:
        """A snapshot fetched now (for the status sync)."""
        return self.jobs(fresh_after=time.monotonic())


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
    """Connections by credentials: the default one, and those from credential Secrets."""

    def __init__(self, default: Context, *, backoff: Backoff = Backoff(),
                 observe: Callable[[str, str, float], None] | None = None):
        self.default = Connection(default, backoff=backoff, observe=observe)
        self._backoff, self._observe = backoff, observe
        self._by_key: dict[tuple, Connection] = {}
        self._lock = threading.Lock()

    def get(self, credentials: Credentials | None) -> Connection:
        if credentials is None:
            return self.default
        with self._lock:
            conn = self._by_key.get(credentials.key())
            if conn is None:
                verify: bool | str = True
                if credentials.ca:
                    # requests wants a CA bundle as a file.
                    with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as f:
                        f.write(credentials.ca)
                    verify = f.name
                base = self.default.context
                context = Context(url=credentials.url, token=credentials.token,
                                  namespace=credentials.namespace, verify=verify,
                                  connect_timeout=base.connect_timeout, read_timeout=base.read_timeout)
                conn = Connection(context, backoff=self._backoff, observe=self._observe)
                self._by_key[credentials.key()] = conn
            return conn

    def all(self) -> list[Connection]:
        with self._lock:
            return [self.default, *self._by_key.values()]
