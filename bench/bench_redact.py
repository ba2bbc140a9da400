"""What scrubbing secrets costs: `redact` per message, and per log record through the
record factory, by number of registered secrets.

    .venv/bin/python bench/bench_redact.py        # results: bench/RESULTS-redact.md

To compare with an earlier version of the module, give its file (it is loaded in place of
juliarun.redact before the package is imported):

    git show REV:operator/juliarun_operator/juliarun/redact.py > redact_before.py
    .venv/bin/python bench/bench_redact.py --module redact_before.py
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import logging
import platform
import secrets
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from urllib.parse import quote_plus

MESSAGE = (
    "submitJob: HTTP 502: 502 Bad Gateway (injected fault): cannot handle "
    "'GET /submitJob/Notebook/?jruntok=REDACTED&jrunns=team-a&name=nb-4f2a HTTP/1.1'"
)
TRACEBACK = "Traceback (most recent call last):\n" + '  File "x.py", line 1, in f\n    g()\n' * 80
# ServiceAccount tokens of one cluster share their header (about 100 characters): the
# worst case for an index of the forms' first characters.
HEADER = "eyJhbGciOiJSUzI1NiIsImtpZCI6IlhZWjEyMyJ9."


def jwt() -> str:
    return HEADER + secrets.token_urlsafe(200) + "." + secrets.token_urlsafe(64)


def per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def load(module: str | None) -> ModuleType:
    name = "juliarun_operator.juliarun.redact"
    if module:
        spec = importlib.util.spec_from_file_location(name, module)
        if spec is None or spec.loader is None:
            raise SystemExit(f"--module {module}: not a Python file")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    import juliarun_operator.juliarun  # noqa: F401 (the client installs the record factory)

    return sys.modules[name]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--module", help="a redact.py to measure instead of the installed one")
    rd = load(parser.parse_args().module)
    module = Path(rd.__file__ or rd.__name__).name
    print(f"Python {platform.python_version()}, {platform.machine()}, {module}")
    print(
        "| registered secrets | register one more (ms) | redact 160-char message (us) "
        "| redact 3.6 KB traceback (us) | log record, factory installed (us) "
        "| redact echoed request line with a JWT, JWTs registered (us) |"
    )
    print("|---|---|---|---|---|---|")
    logger = logging.getLogger("bench.redact")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.INFO)
    plain = per_call(lambda: logger.info("call %s failed: %s", "submitJob", MESSAGE), 20_000)
    # In log_scrubbing.py since 2026-12-04; a redact.py from before (--module) has its own.
    install = getattr(rd, "install_secret_filter", None)
    if install is None:
        from juliarun_operator.juliarun.log_scrubbing import install_secret_filter as install
    install()
    for count in (0, 16, 1024):
        rd.forget_secrets()
        for _ in range(count):
            rd.register_secret(secrets.token_urlsafe(24))
        message = per_call(lambda: rd.redact(MESSAGE), 5_000)
        trace = per_call(lambda: rd.redact(TRACEBACK), 500)
        record = per_call(lambda: logger.info("call %s failed: %s", "submitJob", MESSAGE), 5_000)
        register = per_call(lambda: rd.register_secret(secrets.token_urlsafe(24)), 20) / 1000
        rd.forget_secrets()
        tokens = [jwt() for _ in range(max(count, 1))]
        for token in tokens:
            rd.register_secret(token)
        b64 = quote_plus(base64.b64encode(tokens[-1].encode()).decode())
        echo = f"400 Bad Request: b'GET /listJobs/?jruntok={b64}&jrunns=team-a HTTP/1.1'"
        if b64[:40] in rd.redact(echo):
            raise SystemExit("the echoed token was not scrubbed")
        echoed = per_call(partial(rd.redact, echo), 200)
        print(f"| {count} | {register:.2f} | {message:.0f} | {trace:.0f} | {record:.0f} | {echoed:.0f} |")
    print(f"\nThe same log call without the factory: {plain:.1f} us.")


if __name__ == "__main__":
    main()
