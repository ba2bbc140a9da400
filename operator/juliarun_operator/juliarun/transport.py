"""How a JuliaRun call travels: a GET with every parameter in the query, the token
base64-encoded into `jruntok`, retries for the calls that may be repeated.

Transport rules, because the token rides in the URL: redirects are never followed (the
token would go to the new place); proxy settings of the environment are ignored unless
`use_env_proxy`; plain http to a host other than loopback is refused unless
`allow_insecure_http` (then logged as a warning); a request line longer than a server
reads (`max_request_line`, aiohttp's 8,190 bytes) is refused before sending. Nothing here
puts a URL with its query into an error or a log line.
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

from . import jobtypes
from .context import Context, TokenFile, public_url
from .encoding import check_job_name
from .errors import (
    HTTPError,
    InsecureTransport,
    JuliaRunError,
    ParameterError,
    RequestTooLarge,
    TransportError,
)
from .model import Job
from .redact import register_secret
from .responses import unwrap

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
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
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
        attempts = self.retry.attempts if operation in REPEATABLE else 1
        for attempt in range(attempts):
            try:
                return self._attempt(operation, url, query)
            except (TransportError, HTTPError) as exc:
                retryable = isinstance(exc, TransportError) or exc.status >= 500
                if not retryable or attempt + 1 >= attempts:
                    raise
                delay = self.retry.delay(attempt)
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

    def _attempt(self, operation: str, url: str, query: dict[str, str]) -> Any:
        started = time.monotonic()
        outcome = "ok"
        try:
            response = self._send(operation, url, query)
            return unwrap(operation, response)
        except JuliaRunError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            if self.observe:
                self.observe(operation, outcome, time.monotonic() - started)

    def _send(self, operation: str, url: str, query: dict[str, str]) -> requests.Response:
        ctx = self.context
        try:
            return self.session.get(
                url,
                params=query,
                verify=ctx.verify,
                allow_redirects=False,
                timeout=(ctx.connect_timeout, ctx.read_timeout),
            )
        except requests.Timeout:
            error = TransportError(
                f"{operation}: no answer from {public_url(ctx.url)} within the time-out", operation
            )
        except requests.exceptions.SSLError:
            error = TransportError(f"{operation}: TLS handshake with {public_url(ctx.url)} failed", operation)
        except requests.ConnectionError as exc:
            error = TransportError(
                f"{operation}: cannot reach {public_url(ctx.url)}: {_reason(exc)}", operation
            )
        except requests.RequestException as exc:
            error = TransportError(f"{operation}: request failed: {type(exc).__name__}", operation)
        # Raised outside the except blocks: the requests exception (which holds the URL and
        # so the token) must not ride along as __context__.
        raise error


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
