"""Secrets the operator reads (credentials, notebook passwords), cached by what they hold
and by what went wrong: a Secret that works is read again after a TTL, so that a rotated
token is in use within it; one that is missing or unreadable is remembered as such and
read again with backoff, so that no object retries it in a loop.

The cache is bounded by the operator, not by tenants: only the keys a caller uses are kept,
each at most MAX_SECRET_VALUE bytes (adapters/kube.py), and past `max_bytes` in all the
oldest entries go (expired ones first).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..adapters.kube import SecretProblem
from .breaker import Backoff

# (namespace, name, must be marked, keys) -> the keys' values
Reader = Callable[[str, str, bool, tuple[str, ...]], dict[str, str]]
Entry = tuple[float, dict[str, str] | SecretProblem, int]  # (valid until, data or problem, failures)


def _size(value: dict[str, str] | SecretProblem) -> int:
    return 256 + (sum(len(k) + len(v) for k, v in value.items()) if isinstance(value, dict) else 0)


class SecretCache:
    def __init__(self, read: Reader, ttl: float, backoff: Backoff, max_bytes: int = 32 * 1024 * 1024):
        self._read, self.ttl, self.backoff, self.max_bytes = read, ttl, backoff, max_bytes
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, bool, tuple[str, ...]], Entry] = {}  # oldest first
        self.bytes = 0

    def get(self, namespace: str, name: str, keys: tuple[str, ...], marked: bool = True) -> dict[str, str]:
        """A Secret's `keys` (those present); `marked`: only if its owner marked it for the
        operator (a tenant's)."""
        key, now = (namespace, name, marked, keys), time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry and entry[0] > now:
            return _value(entry[1])
        failures = entry[2] if entry else 0
        try:
            value: dict[str, str] | SecretProblem = self._read(namespace, name, marked, keys)
            entry = (now + self.ttl, value, 0)
        except SecretProblem as exc:
            value = exc
            entry = (now + self.backoff.delay(failures + 1), value, failures + 1)
        with self._lock:
            self._drop(key)
            self._entries[key] = entry
            self.bytes += _size(value)
            if self.bytes > self.max_bytes:
                self._evict(now)
        return _value(value)

    def _drop(self, key: tuple[str, str, bool, tuple[str, ...]]) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= _size(old[1])

    def _evict(self, now: float) -> None:
        """Expired entries first, then the oldest, until the cache fits its budget."""
        for key in [k for k, e in self._entries.items() if e[0] <= now]:
            self._drop(key)
        while self.bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)


def _value(value: dict[str, str] | SecretProblem) -> dict[str, str]:
    if isinstance(value, SecretProblem):
        raise value
    return value
