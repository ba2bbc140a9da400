"""Exceptions of the JuliaRun client.

Every message is built from parts that cannot hold the token (operation, status, the
server's reason): the token only ever lives in the request URL, which no error keeps.
"""

from __future__ import annotations

# Error codes of this project's JuliaRun-compatible server. The real server's codes are not
# public; callers that must be sure (is this job gone?) confirm with listJobs.
CODE_INTERNAL = 1
CODE_UNAUTHORIZED = 2
CODE_INVALID_PARAMETER = 3
CODE_NO_SUCH_JOB = 4
CODE_JOB_EXISTS = 5
CODE_INJECTED_FAULT = 99


class JuliaRunError(Exception):
    """Base of every error raised by the JuliaRun client."""

    def __init__(self, message: str, operation: str | None = None):
        super().__init__(message)
        self.operation = operation


class ParameterError(JuliaRunError, ValueError):
    """A job parameter is unknown, missing or of the wrong type; nothing was sent."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class ApiError(JuliaRunError):
    """JuliaRun answered with a non-zero code: `reason` is its explanation."""

    def __init__(self, operation: str, code: int, reason: object):
        super().__init__(f"{operation}: JuliaRun error {code}: {reason}", operation)
        self.code = code
        self.reason = reason


class HTTPError(JuliaRunError):
    """JuliaRun answered with an HTTP status outside 200-206."""

    def __init__(self, operation: str, status: int, body: str):
        shown = body if len(body) <= 200 else body[:200] + "..."
        super().__init__(f"{operation}: HTTP {status}: {shown}", operation)
        self.status = status
        self.body = body


class TransportError(JuliaRunError):
    """No answer: the connection failed or timed out."""


class InvalidResponse(JuliaRunError):
    """An answer that is not the {"code", "data"} envelope, or data of the wrong shape."""

    def __init__(self, operation: str, problem: str, body: str = ""):
        super().__init__(f"{operation}: invalid response: {problem}", operation)
        self.body = body
