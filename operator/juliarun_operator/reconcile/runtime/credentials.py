"""Secrets the operator reads (credentials, notebook passwords), cached by what they hold
and by what went wrong: a Secret that works is read again after a TTL, so that a rotated
token is in use within it; one that is missing or unreadable is remembered as such and
read again with backoff, so that no object retries it in a loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..adapters.kube import SecretProblem
from .connections import Backoff

Reader = Callable[[str, str, bool], dict[str, str]]  # (namespace, name, must be marked)


class SecretCache:
    def __init__(self, read: Reader, ttl: float, backoff: Backoff, max_entries: int = 10_000):
        self._read, self.ttl, self.backoff, self.max_entries = read, ttl, backoff, max_entries
        self._lock = threading.Lock()
        # (namespace, name) -> (valid until, data or the problem, failures so far)
        self._entries: dict[tuple[str, str, bool], tuple[float, dict[str, str] | SecretProblem, int]] = {}

    def get(self, namespace: str, name: str, marked: bool = True) -> dict[str, str]:
        """A Secret's data; `marked`: only if its owner marked it for the operator (a tenant's)."""
        key, now = (namespace, name, marked), time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry and entry[0] > now:
            return _value(entry[1])
        failures = entry[2] if entry else 0
        try:
            value: dict[str, str] | SecretProblem = self._read(namespace, name, marked)
            entry = (now + self.ttl, value, 0)
        except SecretProblem as exc:
            value = exc
            entry = (now + self.backoff.delay(failures + 1), value, failures + 1)
        with self._lock:
            if len(self._entries) >= self.max_entries:  # expired ones go first
                for k in [k for k, e in self._entries.items() if e[0] <= now]:
                    del self._entries[k]
            self._entries[key] = entry
        return _value(value)

    def __len__(self) -> int:
        return len(self._entries)


def _value(value: dict[str, str] | SecretProblem) -> dict[str, str]:
    if isinstance(value, SecretProblem):
        raise value
    return value
