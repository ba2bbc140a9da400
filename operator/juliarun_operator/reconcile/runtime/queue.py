"""A work queue keyed by object, in the manner of client-go's: a key is queued at most once,
handled by one worker at a time, and queued again if it changed while being handled; with a
per-item rate limiter for failures (exponential, capped: client-go's
ItemExponentialFailureRateLimiter), reset when the item succeeds."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """Delay before the n-th retry in a row of one item: base * 2**(n-1), at most cap."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * 2.0 ** max(0, failures - 1))


class WorkQueue:
    def __init__(self, rate_limit: RateLimit = RateLimit()) -> None:
        self.rate_limit = rate_limit
        self._failures: dict[Hashable, int] = {}
        self._cond = threading.Condition()
        self._queue: deque[Hashable] = deque()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._later: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self.closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._active)

    def add(self, key: Hashable) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: Hashable) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            return self.add(key)
        with self._cond:
            heapq.heappush(self._later, (time.monotonic() + delay, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: Hashable) -> float:
        """Queue `key` again after its next backoff (one more failure in a row); the delay."""
        with self._cond:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = self.rate_limit.delay(failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        """The item succeeded: its next failure starts the backoff again."""
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float = 1.0) -> Hashable | None:
        """The next key to handle (now the caller's until `done`), or None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.closed:
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    self._add(heapq.heappop(self._later)[2])
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    self._active.add(key)
                    return key
                wait = deadline - now
                if self._later:
                    wait = min(wait, self._later[0][0] - now)
                if wait <= 0:
                    return None
                self._cond.wait(wait)
        return None

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add(key)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
