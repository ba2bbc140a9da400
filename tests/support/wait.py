"""Waiting on a condition the program exposes, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float = 60.0, interval: float = 0.2) -> T:
    """`check()`'s first truthy value; AssertionError naming `what` after `timeout` seconds.
    An exception in `check` counts as not yet (the thing may not exist yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # not there yet
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}" + (f": {last}" if last else "")
            )
        time.sleep(interval)
