"""Exceptions of the JuliaRun client.

Messages are built from parts that should not hold a secret (operation, status, the
server's reason), and every message and kept body is scrubbed all the same (`redact`):
a server or proxy may echo the request line, token and password included, into its reply.

`blame(exc)` says whose a failure is (the request's, the connection's, or a refusal of
this request by a server that answered): what a caller's breaker should count.
"""

from __future__ import annotations

import enum

from .redact import cut, redact

# Error codes of this project's JuliaRun-compatible server. The real server's codes are not
# public; callers that must be sure (is this job gone?) confirm with listJobs.
CODE_INTERNAL = 1
CODE_UNAUTHORIZED = 2
CODE_INVALID_PARAMETER = 3
CODE_NO_SUCH_JOB = 4
CODE_JOB_EXISTS = 5
CODE_INJECTED_FAULT = 99

MAX_SHOWN = 200  # characters of a reply shown in a message
MAX_BODY = 4096  # characters of a reply kept on an exception


class JuliaRunError(Exception):
    """Base of every error raised by the JuliaRun client."""

    def __init__(self, message: str, operation: str | None = None):
        super().__init__(redact(message))
        self.operation = operation


class ParameterError(JuliaRunError, ValueError):
    """A job parameter is unknown, missing or of the wrong type; nothing was sent."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class ApiError(JuliaRunError):
    """JuliaRun answered with a non-zero code: `reason` is its explanation (scrubbed, cut)."""

    def __init__(self, operation: str, code: int, reason: object):
        shown = cut(str(reason), MAX_SHOWN)
        super().__init__(f"{operation}: JuliaRun error {code}: {shown}", operation)
        self.code = code
        self.reason = (
            reason if isinstance(reason, (bool, int, float, type(None))) else cut(str(reason), MAX_BODY)
        )


class HTTPError(JuliaRunError):
    """JuliaRun answered with an HTTP status outside 200-206.

    `body` is the response body scrubbed and cut to MAX_BODY characters; the message shows
    its first MAX_SHOWN.
    """

    def __init__(self, operation: str, status: int, body: str, *, message: str | None = None):
        self.body = cut(body, MAX_BODY)
        shown = cut(self.body, MAX_SHOWN)
        super().__init__(message or f"{operation}: HTTP {status}: {shown}", operation)
        self.status = status


class Redirected(HTTPError):
    """JuliaRun answered with a redirect (3xx). Never followed: the token would go along.

    `location` is where it pointed, without userinfo, query or fragment.
    """

    def __init__(self, operation: str, status: int, location: str):
        super().__init__(
            operation,
            status,
            "",
            message=(
                f"{operation}: HTTP {status}: JuliaRun redirected to {location or '(no Location)'}; "
                "redirects are not followed (the token would go along): set the URL it points to"
            ),
        )
        self.location = location


class TransportError(JuliaRunError):
    """No complete answer: the connection failed, a socket operation timed out, or the
    answer was not complete within the call's deadline (`Context.call_deadline`)."""


class InsecureTransport(JuliaRunError):
    """The URL would send the token where it must not go (plain http to another host, a
    scheme other than http/https); nothing was sent."""


class RequestTooLarge(ParameterError):
    """The request line would exceed what a JuliaRun server reads; nothing was sent.

    `param` is the largest parameter (the one to shorten), `size` the request line's length.
    """

    def __init__(self, message: str, param: str | None, size: int):
        super().__init__(message, param)
        self.size = size


class InvalidResponse(JuliaRunError):
    """An answer that is not the {"code", "data"} envelope, or data of the wrong shape."""

    def __init__(self, operation: str, problem: str, body: str = ""):
        super().__init__(f"{operation}: invalid response: {problem}", operation)
        self.body = cut(body, MAX_BODY)


class ResponseTooLarge(InvalidResponse):
    """An answer larger than `Context.max_response_bytes`: refused while reading (or at
    once, when its Content-Length says so), so no such body is ever held in memory.

    `limit` is the cap, `declared` the Content-Length (None if the server sent none), `read`
    the bytes taken in before stopping (at most the cap plus one read chunk).
    """

    def __init__(self, operation: str, limit: int, *, declared: int | None = None, read: int = 0):
        said = f"Content-Length {declared:,}" if declared is not None else f"stopped after {read:,} bytes"
        super().__init__(operation, f"the answer is larger than the {limit:,}-byte cap ({said})")
        self.limit, self.declared, self.read = limit, declared, read


# --- whose failure is it ------------------------------------------------------------------------


class Blame(enum.Enum):
    """Whose a failed call is, decided by what the outcome means (never by a JuliaRun error
    code: those are the server's, and ours are only the emulator's).

    REQUEST: refused here, before anything was sent (a bad or too long parameter, a URL that
        must not get the token). Sending it again cannot help; it is the caller's request.
    CONNECTION: no usable answer: no connection, no complete answer within the deadline,
        HTTP 5xx, a redirect, an answer that cannot be read or is over the byte cap, a
        credential that is refused or cannot be read. Every request on the connection would
        meet it: what a connection's breaker counts.
    REFUSED: the server read this request and refused it (a JuliaRun error code, or an HTTP
        4xx about the request's content). The connection works; the request is the caller's.
    """

    REQUEST = "request"
    CONNECTION = "connection"
    REFUSED = "refused"


# 4xx statuses that refuse who is asking or how fast, not what was asked: every request on
# the connection would get them, so they are the connection's.
CONNECTION_4XX = frozenset(
    {
        401,  # Unauthorized: the connection's token
        403,  # Forbidden: the token or the client's address, not this request's content
        407,  # Proxy Authentication Required
        408,  # Request Timeout: the server gave up waiting on the connection
        421,  # Misdirected Request: this URL reaches the wrong server
        429,  # Too Many Requests: the server asks the whole connection to slow down
    }
)


def blame(exc: BaseException) -> Blame:
    """Whose failure `exc` is (see Blame). Anything that is not a JuliaRunError, or one not
    listed here, is the connection's: nothing shows it was the request's."""
    if isinstance(exc, (ParameterError, InsecureTransport)):  # RequestTooLarge is a ParameterError
        return Blame.REQUEST
    if isinstance(exc, ApiError):
        return Blame.REFUSED
    if (
        isinstance(exc, HTTPError)
        and not isinstance(exc, Redirected)
        and 400 <= exc.status < 500
        and exc.status not in CONNECTION_4XX
    ):
        return Blame.REFUSED
    return Blame.CONNECTION
