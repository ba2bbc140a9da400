"""The JuliaRun client: every call of JuliaRunClient.jl, in Python, on requests.

A `Context` holds where and who (URL, token, namespace, time-outs, TLS); a `Client` holds a
session and makes one method per remote call, returning typed values. The token is
base64-encoded into the `jruntok` query parameter as the Julia client does; since URLs
carry it, nothing here puts a URL into an error or a log line.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import requests

from . import jobtypes
from .encoding import check_job_name, encode_params
from .errors import ApiError, HTTPError, InvalidResponse, JuliaRunError, ParameterError, TransportError
from .redact import install_log_redaction

log = logging.getLogger(__name__)
install_log_redaction()

DEFAULT_URL = "http://juliarunremote-svc.juliarun:80"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TOKEN_FILE = SERVICE_ACCOUNT_DIR / "token"
DEFAULT_NAMESPACE_FILE = SERVICE_ACCOUNT_DIR / "namespace"
DEFAULT_TIMEOUT = 60.0  # the Julia client's read and connect time-outs

# Calls that change nothing, or set an absolute target, may be repeated after an ambiguous
# failure; submitJob and updateJob may not (a lost answer does not mean a lost request).
REPEATABLE = frozenset({
    "getSystemStatus", "listJobs", "getAllJobInfo", "getJobStatus", "getJobScale",
    "getJobEndpoint", "tailJob", "getEncodedURL", "setJobScale", "deleteJob",
})


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
        return random.uniform(0, min(self.cap, self.base * 2 ** attempt))


@dataclass(frozen=True)
class Context:
    """Where JuliaRun is and who we are there. `repr` never shows the token."""

    url: str = DEFAULT_URL
    token: str = field(default="", repr=False)
    namespace: str = "default"
    connect_timeout: float = DEFAULT_TIMEOUT
    read_timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True  # False, True, or the path of a CA bundle

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Context":
        """A context from JULIARUN_* variables, falling back to the in-cluster defaults.

        JULIARUN_URL, JULIARUN_TOKEN (or JULIARUN_TOKEN_FILE), JULIARUN_NAMESPACE,
        JULIARUN_CA_FILE, JULIARUN_INSECURE=true, JULIARUN_TIMEOUT (seconds, connect and
        read). Keyword overrides win (None is ignored).
        """
        env = os.environ if environ is None else environ
        given = {k: v for k, v in overrides.items() if v is not None}
        token_file = given.pop("token_file", None) or env.get("JULIARUN_TOKEN_FILE")
        if "token" not in given:
            if env.get("JULIARUN_TOKEN") and not token_file:
                given["token"] = env["JULIARUN_TOKEN"]
            else:
                given["token"] = _read_text(Path(token_file) if token_file else DEFAULT_TOKEN_FILE,
                                            required=bool(token_file))
        if "namespace" not in given:
            given["namespace"] = env.get("JULIARUN_NAMESPACE") or _read_text(
                DEFAULT_NAMESPACE_FILE, required=False) or "default"
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
        return f"JuliaRun namespace {self.namespace} at {self.url}"


def _read_text(path: Path, *, required: bool) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        if required:
            raise JuliaRunError(f"cannot read {path}: {exc.strerror}") from None
        return ""


def current_job(environ: Mapping[str, str] | None = None) -> Job:
    """The job this process runs in (`self()` of the Julia client), from JRUN_TYPE/JRUN_NAME."""
    env = os.environ if environ is None else environ
    try:
        return Job(env["JRUN_TYPE"], env["JRUN_NAME"])
    except KeyError as exc:
        raise JuliaRunError(f"not inside a JuliaRun job: {exc.args[0]} is not set") from None


class Client:
    """One method per JuliaRun call. Thread-safe as far as requests' Session is."""

    def __init__(self, context: Context, *, retry: RetryPolicy = RetryPolicy(),
                 session: requests.Session | None = None, pool_size: int = 10,
                 observe: Callable[[str, str, float], None] | None = None):
        self.context = context
        self.retry = retry
        if session is None:
            session = requests.Session()
            # One kept-alive connection per concurrent caller, not requests' 10.
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
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
            return {name: JobInfo(name, info["type"], _status(info["status"]),
                                  _scale(info["scale"]), list(info["endpoint"]))
                    for name, info in data.items()}
        except (AttributeError, KeyError, TypeError, ValueError):
            raise InvalidResponse("getAllJobInfo", "expected {name: {type, status, scale, endpoint}}") from None

    # --- job-level calls --------------------------------------------------------------

    def get_job_status(self, job: Job) -> JobStatus:
        return _parsed("getJobStatus", _status, self._call("getJobStatus", job))

    def get_job_scale(self, job: Job) -> JobScale:
        return _parsed("getJobScale", _scale, self._call("getJobScale", job))

    def set_job_scale(self, job: Job, parallelism: int) -> bool:
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 0:
            raise ParameterError(f"parallelism: expected a non-negative integer, got {parallelism!r}",
                                 "parallelism")
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
        self._call("submitJob", job, encode_params(job.type, params))

    def update_job(self, job: Job, **params: Any) -> None:
        """Change some parameters of a submitted job (only those given are sent)."""
        self._call("updateJob", job, encode_params(job.type, params, partial=True))

    def get_encoded_url(self, job: Job, port: int) -> str:
        data = self._call("getEncodedURL", job, {"port": str(port)})
        if not isinstance(data, str):
            raise InvalidResponse("getEncodedURL", "expected a string")
        return data

    def wait_for_workers(self, job: Job, count: int, *, timeout: float = 300.0,
                         interval: float = 1.0) -> JobScale:
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

    def _query(self, job: Job | None, extra: Mapping[str, str]) -> dict[str, str]:
        token = base64.b64encode(self.context.token.encode()).decode()
        query = {"jruntok": token, "jrunns": self.context.namespace}
        if job is not None:
            query["name"] = check_job_name(job.name)
        for key, value in extra.items():
            if key in query:  # a parameter may never override the connection's own
                raise ParameterError(f"parameter {key!r} is reserved", key)
            query[key] = value
        return query

    def _call(self, operation: str, job: Job | None = None,
              extra: Mapping[str, str] | None = None) -> Any:
        path = f"/{operation}/" if job is None else f"/{operation}/{job.type}/"
        url = self.context.url.rstrip("/") + path
        query = self._query(job, extra or {})
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
            return self.session.get(url, params=query, verify=ctx.verify,
                                    timeout=(ctx.connect_timeout, ctx.read_timeout))
        except requests.Timeout:
            error = TransportError(f"{operation}: no answer from {ctx.url} within the time-out", operation)
        except requests.exceptions.SSLError:
            error = TransportError(f"{operation}: TLS handshake with {ctx.url} failed", operation)
        except requests.ConnectionError as exc:
            error = TransportError(f"{operation}: cannot reach {ctx.url}: {_reason(exc)}", operation)
        except requests.RequestException as exc:
            error = TransportError(f"{operation}: request failed: {type(exc).__name__}", operation)
        # Raised outside the except blocks: the requests exception (which holds the URL and
        # so the token) must not ride along as __context__.
        raise error


def _reason(exc: requests.ConnectionError) -> str:
    """A short cause for a connection error, without the URL that carries the token."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Connection reset",
                   "Temporary failure in name resolution", "No route to host",
                   "RemoteDisconnected", "Connection aborted"):
        if marker in text:
            return marker.lower()
    return "connection failed"


def _unwrap(operation: str, response: requests.Response) -> Any:
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


def _parsed(operation: str, parse: Callable[[Any], Any], data: Any) -> Any:
    try:
        return parse(data)
    except (TypeError, ValueError):
        raise InvalidResponse(operation, f"unexpected data {data!r:.80}") from None
