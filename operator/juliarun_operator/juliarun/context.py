"""Where JuliaRun is and who we are there: `Context` (URL, token, namespace, time-outs,
TLS) from arguments or JULIARUN_* variables, `TokenFile` for a token that rotates, and the
URL helpers that keep the token out of what is printed."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import JuliaRunError
from .redact import register_secret

# The client's one logger, whichever of its modules logs: log settings and tests name it.
log = logging.getLogger("juliarun_operator.juliarun.client")

DEFAULT_URL = "http://juliarunremote-svc.juliarun:80"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TOKEN_FILE = SERVICE_ACCOUNT_DIR / "token"
DEFAULT_NAMESPACE_FILE = SERVICE_ACCOUNT_DIR / "namespace"
DEFAULT_TIMEOUT = 60.0  # the Julia client's read and connect time-outs
# aiohttp's default limit on a request line (method, path, query, version): every parameter
# travels in the query, so this bounds a whole request. nginx's default buffer is 8 KiB.
MAX_REQUEST_LINE = 8190
# The emulator's getAllJobInfo takes 150 bytes a job (measured: 2,000 jobs with 32-character
# names, half of them with two endpoints, 300,331 bytes); a 63-character name and four
# endpoints make it about 260. So 32 MiB holds 100,000 such jobs, or 200,000 of the measured
# ones. Parsed (and kept for the next snapshot's memo) an answer takes about seven times its
# size in Python, so a full 32 MiB costs some 230 MB: the most one answer should cost.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
TRUE_WORDS = ("1", "true", "yes")


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
    # The whole call, retries included, status line, headers and body: a server that
    # answers a byte at a time cannot hold it longer. None: connect_timeout + read_timeout.
    call_deadline: float | None = None
    max_response_bytes: int = MAX_RESPONSE_BYTES  # the answer's body, after any decoding

    def __post_init__(self) -> None:
        if self.call_deadline is not None and not self.call_deadline > 0:
            raise ValueError(f"call_deadline must be a positive number of seconds: {self.call_deadline!r}")
        if not self.max_response_bytes > 0:
            raise ValueError(f"max_response_bytes must be positive, not {self.max_response_bytes!r}")
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

    def deadline(self) -> float:
        """Seconds a whole call may take: `call_deadline`, or connect plus read time-out.

        Worked out when asked, so that `dataclasses.replace(context, read_timeout=...)`
        moves a default deadline along."""
        if self.call_deadline is not None:
            return self.call_deadline
        return self.connect_timeout + self.read_timeout

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
