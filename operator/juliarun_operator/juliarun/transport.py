"""How a JuliaRun call travels: a GET with every parameter in the query, the token
base64-encoded into `jruntok`, retries for the calls that may be repeated.

Transport rules, because the token rides in the URL: redirects are never followed (the
token would go to the new place); proxy settings of the environment are ignored unless
`use_env_proxy`; plain http to a host other than loopback is refused unless
`allow_insecure_http` (then logged as a warning); a request line longer than a server
reads (`max_request_line`, aiohttp's 8,190 bytes) is refused before sending. Nothing here
puts a URL with its query into an error or a log line.

Bulkhead rules, because one slow or broken server must not hold its callers: a whole call
(retries, status line, headers, body) ends by `Context.deadline()`, and an answer's body is
read in chunks up to `Context.max_response_bytes`. requests' time-outs bound each socket
operation, not the call, so a watchdog thread cuts the socket a call still holds at its
deadline (watchdog.py); body.py decodes a body within the cap.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3

from . import jobtypes
from .body import ACCEPT_ENCODING, DECODABLE, ERROR_BODY_BYTES, READ_CHUNK, Body, content_length
from .context import Context, TokenFile, public_url
from .encoding import check_job_name
from .errors import (
    HTTPError,
    InsecureTransport,
    JuliaRunError,
    ParameterError,
    RequestTooLarge,
    ResponseTooLarge,
    TransportError,
)
from .model import Job
from .redact import register_secret
from .responses import Answer, unwrap
from .watchdog import WATCHDOG, BulkheadAdapter, Watch, current_watch, set_current_watch

# The client's one logger, whichever of its modules logs: log settings and tests name it.
log = logging.getLogger("juliarun_operator.juliarun.client")


# Calls that change nothing, or set an absolute target, may be repeated after an ambiguous
# failure; submitJob and updateJob may not (a lost answer does not mean a lost request).
REPEATABLE = frozenset(
    {
        "getSystemStatus",
        "listJobs",
        "getAllJobInfo",
        "getJobStatus",
        "getJobScale",
        "getJobEndpoint",
        "tailJob",
        "getEncodedURL",
        "setJobScale",
        "deleteJob",
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, for repeatable calls."""

    attempts: int = 3
    base: float = 0.2
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))  # noqa: S311 (retry jitter, not secrets)


class Transport:
    """Sends JuliaRun calls for a Context: the token in the query, retries of repeatable
    calls, the transport rules above. Client adds one method per call."""

    def __init__(
        self,
        context: Context,
        *,
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
        pool_size: int = 10,
        observe: Callable[[str, str, float], None] | None = None,
    ):
        self.context = context
        self.retry = retry
        if session is None:
            session = requests.Session()
            # One kept-alive connection per concurrent caller, not requests' 10.
            adapter = BulkheadAdapter(pool_connections=1, pool_maxsize=pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            # No HTTP(S)_PROXY, NO_PROXY or .netrc from the environment unless asked: a
            # proxy sees the whole URL, token included.
            session.trust_env = context.use_env_proxy
        self.session = session
        self._token_file = TokenFile(context.token_file, context.token) if context.token_file else None
        self._refusal = context.transport_refusal()
        if self._refusal is None and context.insecure():
            log.warning(
                "JuliaRun at %s over plain http: the token crosses the network unencrypted "
                "(allowed by JULIARUN_ALLOW_INSECURE_HTTP)",
                public_url(context.url),
            )
        # observe(operation, outcome, seconds) after every attempt: a hook for metrics.
        self.observe = observe

    def close(self) -> None:
        self.session.close()

    # --- plumbing ---------------------------------------------------------------------

    def current_token(self) -> str:
        return self._token_file.read() if self._token_file else self.context.token

    def _query(self, job: Job | None, extra: Mapping[str, str]) -> dict[str, str]:
        raw = self.current_token()
        register_secret(raw)  # a token in use stays among the newest registered
        token = base64.b64encode(raw.encode()).decode()
        query = {"jruntok": token, "jrunns": self.context.namespace}
        if job is not None:
            query["name"] = check_job_name(job.name)
        for key, value in extra.items():
            if key in query:  # a parameter may never override the connection's own
                raise ParameterError(f"parameter {key!r} is reserved", key)
            query[key] = value
        return query

    def _call(self, operation: str, job: Job | None = None, extra: Mapping[str, str] | None = None) -> Any:
        if self._refusal:
            raise InsecureTransport(f"{operation}: {self._refusal}", operation)
        path = f"/{operation}/" if job is None else f"/{operation}/{job.type}/"
        url = self.context.url.rstrip("/") + path
        query = self._query(job, extra or {})
        self._check_size(operation, url, query)
        # One deadline for every attempt: what a caller waits is bounded, not each attempt.
        deadline = time.monotonic() + self.context.deadline()
        attempts = self.retry.attempts if operation in REPEATABLE else 1
        for attempt in range(attempts):
            try:
                return self._attempt(operation, url, query, deadline)
            except (TransportError, HTTPError) as exc:
                retryable = isinstance(exc, TransportError) or exc.status >= 500
                if not retryable or attempt + 1 >= attempts:
                    raise
                delay = self.retry.delay(attempt)
                if time.monotonic() + delay >= deadline:
                    raise
                log.debug("%s failed (%s); retrying in %.2f s", operation, exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _check_size(self, operation: str, url: str, query: dict[str, str]) -> None:
        """Refuse a request whose request line a server would not read (nothing is sent).

        requests encodes the query as urlencode does (quote_plus), so this is the length
        that goes on the wire: `GET <path>?<query> HTTP/1.1`.
        """
        limit = self.context.max_request_line
        size = len(f"GET {urlsplit(url).path}?{urlencode(query)} HTTP/1.1".encode())
        if size <= limit:
            return
        sizes = {k: len(urlencode({k: v})) for k, v in query.items()}
        largest = max(sizes, key=lambda k: sizes[k])
        if largest == "jruntok":
            what = "the token (jruntok)"
        elif largest in jobtypes.PARAMETERS:
            what = f"parameter {largest} ({jobtypes.PARAMETERS[largest].field} in a JuliaRunJob)"
        else:
            what = f"parameter {largest}"
        raise RequestTooLarge(
            f"{operation}: the request would be {size:,} bytes, over the {limit:,} a JuliaRun "
            f"server reads in one request line (all parameters travel in the query string); "
            f"{what} takes {sizes[largest]:,} of them: shorten it",
            largest,
            size,
        )

    def _attempt(self, operation: str, url: str, query: dict[str, str], deadline: float) -> Any:
        started = time.monotonic()
        outcome = "ok"
        try:
            return unwrap(operation, self._send(operation, url, query, deadline))
        except JuliaRunError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            if self.observe:
                self.observe(operation, outcome, time.monotonic() - started)

    def _send(self, operation: str, url: str, query: dict[str, str], deadline: float) -> Answer:
        ctx = self.context
        watch = Watch(deadline)
        if watch.remaining() <= 0:
            raise self._late(operation)
        WATCHDOG.arm(watch)
        outer = current_watch()
        set_current_watch(watch)
        error: JuliaRunError
        try:
            try:
                # Neither time-out may outlast the deadline; the watchdog covers what a
                # socket time-out cannot (a byte now and then resets it).
                left = watch.remaining()
                response = self.session.get(
                    url,
                    params=query,
                    headers={"Accept-Encoding": ACCEPT_ENCODING},
                    verify=ctx.verify,
                    allow_redirects=False,
                    timeout=(min(ctx.connect_timeout, left), min(ctx.read_timeout, left)),
                    stream=True,
                )
            except requests.RequestException as exc:
                error = self._late(operation) if watch.expired else _transport_error(operation, ctx.url, exc)
            else:
                try:
                    return self._read(operation, url, response, watch)
                finally:
                    # A body read to its end has already given its connection back to the
                    # pool; one that is not (cap, deadline, error) is closed here, not pooled.
                    response.close()
        finally:
            set_current_watch(outer)
            watch.finish()
        # Raised outside the except blocks: the requests exception (which holds the URL and
        # so the token) must not ride along as __context__.
        raise error

    def _read(self, operation: str, url: str, response: requests.Response, watch: Watch) -> Answer:
        """The body, in chunks, within the deadline and the byte cap."""
        ok = 200 <= response.status_code <= 206
        cap = self.context.max_response_bytes
        limit = cap if ok else min(cap, ERROR_BODY_BYTES)  # of an error, only the start is kept
        declared = content_length(response.headers)
        if ok and declared is not None and declared > cap:
            raise ResponseTooLarge(operation, cap, declared=declared)
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if not ok and encoding not in DECODABLE:  # an error page we cannot read: its status says enough
            return Answer(response.status_code, response.headers, b"", url)
        body = Body(operation, encoding)
        error: JuliaRunError | None = None
        try:
            while body.size <= limit and body.raw <= limit:
                if watch.remaining() <= 0:
                    raise self._late(operation)
                chunk = response.raw.read(READ_CHUNK, decode_content=False)
                if not chunk:
                    break
                body.feed(chunk, limit - body.size + 1)
            else:
                if ok:
                    raise ResponseTooLarge(operation, cap, read=max(body.size, body.raw))
            body.end(complete=ok)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = self._late(operation) if watch.expired else _broken(operation, exc)
        if error is None and watch.expired:  # a cut socket can look like the end of a body
            error = self._late(operation)
        if error is not None:
            raise error
        return Answer(response.status_code, response.headers, body.data(), url)

    def _late(self, operation: str) -> TransportError:
        return TransportError(
            f"{operation}: no complete answer from {public_url(self.context.url)} within "
            f"{self.context.deadline():g} s",
            operation,
        )


def _transport_error(operation: str, url: str, exc: requests.RequestException) -> TransportError:
    if isinstance(exc, requests.Timeout):
        return TransportError(f"{operation}: no answer from {public_url(url)} within the time-out", operation)
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportError(f"{operation}: TLS handshake with {public_url(url)} failed", operation)
    if isinstance(exc, requests.ConnectionError):
        return TransportError(f"{operation}: cannot reach {public_url(url)}: {_reason(exc)}", operation)
    return TransportError(f"{operation}: request failed: {type(exc).__name__}", operation)


def _broken(operation: str, exc: BaseException) -> TransportError:
    """An answer cut off while its body was read, without the exception's text (a URL)."""
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return TransportError(f"{operation}: the answer stopped coming within the time-out", operation)
    return TransportError(f"{operation}: the answer broke off: {type(exc).__name__}", operation)


def _reason(exc: requests.ConnectionError) -> str:
    """A short cause for a connection error, without the URL that carries the token."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "Connection reset",
        "Temporary failure in name resolution",
        "No route to host",
        "RemoteDisconnected",
        "Connection aborted",
    ):
        if marker in text:
            return marker.lower()
    return "connection failed"
