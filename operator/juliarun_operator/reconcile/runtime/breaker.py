"""A connection's circuit breaker, and what it says: `trouble` names a failure the same
for every object that reads it; `Unavailable` is a call not sent, with when to retry.
"""

from __future__ import annotations

import datetime as dt
import enum
import random
import threading
import time
from dataclasses import dataclass

from ...juliarun import JuliaRunError
from ...juliarun.errors import ApiError, HTTPError, InvalidResponse, TransportError


def trouble(exc: JuliaRunError) -> str:
    """What a connection's failure is called where every object that uses it reads it: a
    category, never the request's or the answer's text (those belong to one caller)."""
    if isinstance(exc, TransportError):
        return "transport error (no complete answer)"
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.status}"
    if isinstance(exc, InvalidResponse):
        return "unreadable answer"
    return "refused the snapshot read" if isinstance(exc, ApiError) else type(exc).__name__


class Why(enum.Enum):
    """Why a call was not sent (Unavailable)."""

    BREAKER = "breaker"  # the connection fails: its breaker holds calls back
    BUSY = "busy"  # as many calls as the connection allows are under way
    FENCED = "fenced"  # this replica does not hold a valid Lease


class Unavailable(Exception):
    """The call was not sent: retry after `delay` seconds."""

    def __init__(self, message: str, delay: float, why: Why = Why.BREAKER):
        super().__init__(message)
        self.delay, self.why = delay, why


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
        self.last_error = ""  # a category (`trouble`), the same for every object
        self.since = 0.0  # wall time of the first failure in a row

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
            raise Unavailable(self.describe(), wait)

    def describe(self) -> str:
        since = dt.datetime.fromtimestamp(int(self.since), dt.UTC).isoformat().replace("+00:00", "Z")
        return f"JuliaRun unavailable since {since}: {self.last_error or 'no answer'}"

    def failed(self, category: str) -> None:
        with self._lock:
            if self.failures == 0:
                self.since = time.time()
            self.failures += 1
            self.trial = False
            self.last_error = category
            self.open_until = time.monotonic() + self.backoff.delay(self.failures)

    def succeeded(self) -> None:
        with self._lock:
            self.failures, self.trial, self.last_error = 0, False, ""

    def answered(self) -> None:
        """An answer that says nothing of the connection's health (a refusal, or a request
        refused before sending): a trial it was ends, without closing the breaker."""
        with self._lock:
            if self.trial:
                self.trial = False
                self.open_until = time.monotonic()

    def retry_delay(self) -> float:
        with self._lock:
            return max(self.open_until - time.monotonic(), 0.0) + random.uniform(0.1, 1.0)  # noqa: S311 (jitter)
