"""The JuliaRun client: every call of JuliaRunClient.jl, in Python, on requests.

A `Context` holds where and who (URL, token, namespace, time-outs, TLS); a `Client` holds a
session and makes one method per remote call, returning typed values. The token is
base64-encoded into the `jruntok` query parameter as the Julia client does; since URLs
carry it, nothing here puts a URL with its query into an error or a log line, and every
token and password is registered with `redact` so no echo of one survives either.

Transport rules, because the token rides in the URL: redirects are never followed (the
token would go to the new place); proxy settings of the environment are ignored unless
`use_env_proxy`; plain http to a host other than loopback is refused unless
`allow_insecure_http` (then logged as a warning); a request line longer than a server
reads (`max_request_line`, aiohttp's 8,190 bytes) is refused before sending.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from . import jobtypes
from .encoding import check_job_name, encode_params
from .errors import (
    ApiError,
    HTTPError,
    InsecureTransport,
    InvalidResponse,
    JuliaRunError,
    ParameterError,
    Redirected,
    RequestTooLarge,
    TransportError,
)
from .redact import install_secret_filter, register_secret

log = logging.getLogger(__name__)
install_secret_filter()

DEFAULT_URL = "http://juliarunremote-svc.juliarun:80"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TOKEN_FILE = SERVICE_ACCOUNT_DIR / "token"
DEFAULT_NAMESPACE_FILE = SERVICE_ACCOUNT_DIR / "namespace"
DEFAULT_TIMEOUT = 60.0  # the Julia client's read and connect time-outs
# aiohttp's default limit on a request line (method, path, query, version): every parameter
# travels in the query, so this bounds a whole request. nginx's default buffer is 8 KiB.
MAX_REQUEST_LINE = 8190
TRUE_WORDS = ("1", "true", "yes")

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
class Job:
    """A job as JuliaRun addresses it: its type and its name."""

    type: str
    name: str

    def __post_init__(self) -> None:
        jobtypes.job_type(self.type)


@dataclass(frozen=True)
class JobStatus:
    completed: bool
    workers_succeeded: int
    workers_started: int
    created: bool
    notebook: bool


@dataclass(frozen=True)
class JobScale:
    running: int
    requested: int


@dataclass(frozen=True)
class JobInfo:
    name: str
    type: str
    status: JobStatus
    scale: JobScale
    endpoints: list[str]


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, for repeatable calls."""

    attempts: int = 3
    base: float = 0.2
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))  # noqa: S311 (retry jitter, not secrets)


def public_url(url: str) -> str:
    """`url` fit to print: without userinfo, query and fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else parts.path


def is_loopback(host: str) -> bool:
    """`host` names this machine: localhost, 127.0.0.0/8 or ::1 (no DNS lookup)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Context:
    """Where JuliaRun is and who we are there. `repr` never shows the token or URL userinfo.

    `token_file`, when set, is read again whenever it changes (a projected ServiceAccount
    token rotates); `token` then holds what was read first. Every token is registered with
    `redact.register_secret`, so no message or log record can carry it.
    """

    url: str = DEFAULT_URL
    token: str = field(default="", repr=False)
    namespace: str = "default"
    connect_timeout: float = DEFAULT_TIMEOUT
    read_timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True  # False, True, or the path of a CA bundle
    token_file: str | None = None
    allow_insecure_http: bool = False  # plain http to a host other than loopback
    use_env_proxy: bool = False  # HTTP(S)_PROXY, NO_PROXY and .netrc of the environment
    max_request_line: int = MAX_REQUEST_LINE

    def __post_init__(self) -> None:
        register_secret(self.token)
        with suppress(ValueError):  # an unparsable URL fails later, with a clear error
            register_secret(urlsplit(self.url).password)

    def __repr__(self) -> str:
        return (
            f"Context(url={public_url(self.url)!r}, namespace={self.namespace!r}, "
            f"token_file={self.token_file!r})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Context:
        """A context from JULIARUN_* variables, falling back to the in-cluster defaults.

        JULIARUN_URL, JULIARUN_TOKEN (or JULIARUN_TOKEN_FILE, re-read when it changes),
        JULIARUN_NAMESPACE, JULIARUN_CA_FILE, JULIARUN_INSECURE=true (no TLS verification),
        JULIARUN_TIMEOUT (seconds, connect and read), JULIARUN_ALLOW_INSECURE_HTTP=true
        (plain http to a host other than loopback), JULIARUN_USE_ENV_PROXY=true (honour
        HTTP(S)_PROXY). Keyword overrides win (None is ignored).
        """
        env = os.environ if environ is None else environ
        given = {k: v for k, v in overrides.items() if v is not None}
        token_file = given.pop("token_file", None) or env.get("JULIARUN_TOKEN_FILE")
        if "token" not in given:
            if env.get("JULIARUN_TOKEN") and not token_file:
                given["token"] = env["JULIARUN_TOKEN"]
            else:
                path = Path(token_file) if token_file else DEFAULT_TOKEN_FILE
                given["token"] = _read_text(path, required=bool(token_file))
                if given["token"]:  # the in-cluster default rotates too
                    given["token_file"] = str(path)
        for name, value in (
            ("allow_insecure_http", env.get("JULIARUN_ALLOW_INSECURE_HTTP")),
            ("use_env_proxy", env.get("JULIARUN_USE_ENV_PROXY")),
        ):
            if name not in given and value:
                given[name] = value.lower() in TRUE_WORDS
        if "namespace" not in given:
            given["namespace"] = (
                env.get("JULIARUN_NAMESPACE")
                or _read_text(DEFAULT_NAMESPACE_FILE, required=False)
                or "default"
            )
        given.setdefault("url", env.get("JULIARUN_URL") or DEFAULT_URL)
        if env.get("JULIARUN_TIMEOUT"):
            given.setdefault("connect_timeout", float(env["JULIARUN_TIMEOUT"]))
            given.setdefault("read_timeout", float(env["JULIARUN_TIMEOUT"]))
        if "verify" not in given:
            if env.get("JULIARUN_CA_FILE"):
                given["verify"] = env["JULIARUN_CA_FILE"]
            elif env.get("JULIARUN_INSECURE", "").lower() in ("1", "true", "yes"):
                given["verify"] = False
        return cls(**given)

    def describe(self) -> str:
        return f"JuliaRun namespace {self.namespace} at {public_url(self.url)}"

    def transport_refusal(self) -> str | None:
        """Why this context must not send its token, or None: a scheme other than http or
        https, no host, or plain http to a host other than loopback unless allowed."""
        try:
            parts = urlsplit(self.url)
            host = parts.hostname
        except ValueError:
            return "the JuliaRun URL cannot be read"
        if parts.scheme not in ("http", "https"):
            return f"the JuliaRun URL must start with https:// or http://, not {parts.scheme or '(none)'}:"
        if not host:
            return "the JuliaRun URL has no host"
        if parts.scheme == "http" and not is_loopback(host) and not self.allow_insecure_http:
            return (
                f"refusing plain http to {public_url(self.url)}: the token would cross the "
                "network unencrypted in the query string; use https://, or let the "
                "administrator allow it (JULIARUN_ALLOW_INSECURE_HTTP=true)"
            )
        return None

    def insecure(self) -> bool:
        """Plain http to a host other than loopback (allowed, or it would be refused)."""
        try:
            parts = urlsplit(self.url)
            return parts.scheme == "http" and not is_loopback(parts.hostname or "")
        except ValueError:
            return False


def _read_text(path: Path, *, required: bool) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        if required:
            raise JuliaRunError(f"cannot read {path}: {exc.strerror}") from None
        return ""


class TokenFile:
    """A token kept in a file, read again when the file changes.

    Kubelet rotates a projected ServiceAccount token by swapping a symlink, so the file's
    identity (inode, mtime, size, followed through links) is what changes. One stat per
    call; a read only on a change. A file that cannot be read keeps the last token (the
    swap is atomic, but a mount may vanish for a moment) and logs a warning.
    """

    def __init__(self, path: str | Path, initial: str = ""):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._token = initial
        register_secret(initial)

    def read(self) -> str:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if not self._token:
                raise JuliaRunError(f"cannot read the token file {self.path}: {exc.strerror}") from None
            log.warning("token file %s: %s; using the token read before", self.path, exc.strerror)
            return self._token
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                token = _read_text(self.path, required=not self._token)
                if token:
                    register_secret(token)
                    if self._stamp is not None and token != self._token:
                        log.info("token file %s changed: using the new token", self.path)
                    self._token, self._stamp = token, stamp
            return self._token


def current_job(environ: Mapping[str, str] | None = None) -> Job:
    """The job this process runs in (`self()` of the Julia client), from JRUN_TYPE/JRUN_NAME."""
    env = os.environ if environ is None else environ
    try:
        return Job(env["JRUN_TYPE"], env["JRUN_NAME"])
    except KeyError as exc:
        raise JuliaRunError(f"not inside a JuliaRun job: {exc.args[0]} is not set") from None


class Client:
    """One method per JuliaRun call. Thread-safe as far as requests' Session is."""

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

    def __repr__(self) -> str:
        return f"<juliarun Client {self.context.describe()}>"

    def close(self) -> None:
        self.session.close()

    # --- context-level calls ----------------------------------------------------------

    def get_system_status(self) -> bool:
        return bool(self._call("getSystemStatus"))

    def list_jobs(self) -> dict[str, str]:
        """Job name -> job type."""
        data = self._call("listJobs")
        try:
            return {name: info["type"] for name, info in data.items()}
        except (AttributeError, KeyError, TypeError):
            raise InvalidResponse("listJobs", "expected {name: {type: ...}}") from None

    def get_all_job_info(self) -> dict[str, JobInfo]:
        data = self._call("getAllJobInfo")
        try:
            return {
                name: JobInfo(
                    name, info["type"], _status(info["status"]), _scale(info["scale"]), list(info["endpoint"])
                )
                for name, info in data.items()
            }
        except (AttributeError, KeyError, TypeError, ValueError):
            raise InvalidResponse(
                "getAllJobInfo", "expected {name: {type, status, scale, endpoint}}"
            ) from None

    # --- job-level calls --------------------------------------------------------------

    def get_job_status(self, job: Job) -> JobStatus:
        return _parsed("getJobStatus", _status, self._call("getJobStatus", job))

    def get_job_scale(self, job: Job) -> JobScale:
        return _parsed("getJobScale", _scale, self._call("getJobScale", job))

    def set_job_scale(self, job: Job, parallelism: int) -> bool:
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 0:
            raise ParameterError(
                f"parallelism: expected a non-negative integer, got {parallelism!r}", "parallelism"
            )
        return bool(self._call("setJobScale", job, {"parallelism": str(parallelism)}))

    def get_job_endpoint(self, job: Job) -> list[str]:
        data = self._call("getJobEndpoint", job)
        if not isinstance(data, list):
            raise InvalidResponse("getJobEndpoint", "expected a list of endpoints")
        return [str(e) for e in data]

    def delete_job(self, job: Job, *, force: bool = False) -> bool:
        return bool(self._call("deleteJob", job, {"force": "true" if force else "false"}))

    def tail_job(self, job: Job, *, stream: str | None = None, count: int = 50) -> str:
        if stream not in (None, "stdout", "stderr"):
            raise ParameterError(f"stream: expected stdout or stderr, got {stream!r}", "stream")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ParameterError(f"count: expected a non-negative integer, got {count!r}", "count")
        query = {"count": str(count)}
        if stream is not None:
            query["stream"] = stream
        data = self._call("tailJob", job, query)
        if not isinstance(data, str):
            raise InvalidResponse("tailJob", "expected a string")
        return data

    def submit_job(self, job: Job, **params: Any) -> None:
        """Submit `job` with its parameters (checked against the job-type table first)."""
        _register_secret_params(params)
        self._call("submitJob", job, encode_params(job.type, params))

    def update_job(self, job: Job, **params: Any) -> None:
        """Change some parameters of a submitted job (only those given are sent)."""
        _register_secret_params(params)
        self._call("updateJob", job, encode_params(job.type, params, partial=True))

    def get_encoded_url(self, job: Job, port: int) -> str:
        data = self._call("getEncodedURL", job, {"port": str(port)})
        if not isinstance(data, str):
            raise InvalidResponse("getEncodedURL", "expected a string")
        return data

    def wait_for_workers(
        self, job: Job, count: int, *, timeout: float = 300.0, interval: float = 1.0
    ) -> JobScale:
        """Poll the job's scale until `count` workers run; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            scale = self.get_job_scale(job)
            if scale.running >= count:
                return scale
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{job.name}: {scale.running} of {count} workers after {timeout:g} s")
            time.sleep(interval)

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
            return _unwrap(operation, response)
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


def _register_secret_params(params: Mapping[str, Any]) -> None:
    for name, value in params.items():
        if (
            name in jobtypes.PARAMETERS
            and jobtypes.PARAMETERS[name].kind == jobtypes.SECRET
            and isinstance(value, str)
        ):
            register_secret(value)


def _unwrap(operation: str, response: requests.Response) -> Any:
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location", "")
        raise Redirected(
            operation, response.status_code, public_url(urljoin(response.url, location)) if location else ""
        )
    if not 200 <= response.status_code <= 206:
        raise HTTPError(operation, response.status_code, response.text)
    try:
        envelope = response.json()
        code, data = envelope["code"], envelope["data"]
    except (ValueError, KeyError, TypeError):
        raise InvalidResponse(operation, "not a {code, data} JSON envelope", response.text) from None
    if not isinstance(code, int) or isinstance(code, bool):
        raise InvalidResponse(operation, f"code is not an integer: {code!r}", response.text)
    if code != 0:
        raise ApiError(operation, code, data)
    return data


def _status(data: Any) -> JobStatus:
    completed, succeeded, started, created, notebook = data
    return JobStatus(bool(completed), int(succeeded), int(started), bool(created), bool(notebook))


def _scale(data: Any) -> JobScale:
    running, requested = data
    return JobScale(int(running), int(requested))


_T = TypeVar("_T")


def _parsed(operation: str, parse: Callable[[Any], _T], data: Any) -> _T:
    try:
        return parse(data)
    except (TypeError, ValueError):
        raise InvalidResponse(operation, f"unexpected data {data!r:.80}") from None
