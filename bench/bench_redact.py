"""What scrubbing secrets costs: `redact` per message, and per log record through the
record factory, by number of registered secrets.

    .venv/bin/python bench/bench_redact.py        # results: bench/RESULTS-redact.md
"""

from __future__ import annotations

import logging
import platform
import secrets
import time

from juliarun_operator.juliarun import redact as rd

MESSAGE = (
    "submitJob: HTTP 502: 502 Bad Gateway (injected fault): cannot handle "
    "'GET /submitJob/Notebook/?jruntok=REDACTED&jrunns=team-a&name=nb-4f2a HTTP/1.1'"
)
TRACEBACK = "Traceback (most recent call last):\n" + '  File "x.py", line 1, in f\n    g()\n' * 80


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    print(f"Python {platform.python_version()}, {platform.machine()}")
    print(
        "| registered secrets | register one more (ms) | redact 160-char message (us) "
        "| redact 3.6 KB traceback (us) | log record, factory installed (us) |"
    )
    print("|---|---|---|---|---|")
    logger = logging.getLogger("bench.redact")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.INFO)
    plain = per_call(lambda: logger.info("call %s failed: %s", "submitJob", MESSAGE), 20_000)
    rd.install_secret_filter()
    for count in (0, 16, 1024):
        rd.forget_secrets()
        for _ in range(count):
            rd.register_secret(secrets.token_urlsafe(24))
        message = per_call(lambda: rd.redact(MESSAGE), 5_000)
        trace = per_call(lambda: rd.redact(TRACEBACK), 500)
        record = per_call(lambda: logger.info("call %s failed: %s", "submitJob", MESSAGE), 5_000)
        register = per_call(lambda: rd.register_secret(secrets.token_urlsafe(24)), 20) / 1000
        print(f"| {count} | {register:.2f} | {message:.0f} | {trace:.0f} | {record:.0f} |")
    print(f"\nThe same log call without the factory: {plain:.1f} us.")


if __name__ == "__main__":
    main()
