"""Exceptions of the JuliaRun client.

Messages are built from parts that should not hold a secret (operation, status, the
server's reason), and every message and kept body is scrubbed all the same (`redact`):
a server or proxy may echo the request line, token and password included, into its reply.
"""

from __future__ import annotations

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
    """No answer: the connection failed or timed out."""


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
