"""Reading JuliaRun's answers: the `{code, data}` envelope and the status and scale tuples,
with InvalidResponse (never a bare TypeError) for anything else."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin

from requests.utils import get_encoding_from_headers

from .context import public_url
from .errors import MAX_BODY, ApiError, HTTPError, InvalidResponse, Redirected
from .model import JobScale, JobStatus


@dataclass(frozen=True)
class Answer:
    """A complete answer, read within the call's deadline and byte cap (transport.py).

    `url` is where the request went, without its query (the token)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def text(self) -> str:
        """The start of the body as text (messages keep no more than MAX_BODY characters),
        in the charset the headers name (HTTP's ISO-8859-1 for text/* without one)."""
        start = self.body[: 4 * MAX_BODY]
        try:
            return start.decode(get_encoding_from_headers(dict(self.headers)) or "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            return start.decode("utf-8", "replace")


def unwrap(operation: str, answer: Answer) -> Any:
    if 300 <= answer.status < 400:
        location = answer.headers.get("Location", "")
        where = public_url(urljoin(answer.url, location)) if location else ""
        raise Redirected(operation, answer.status, where)
    if not 200 <= answer.status <= 206:
        raise HTTPError(operation, answer.status, answer.text())
    try:
        envelope = json.loads(answer.body)  # bytes: UTF-8, -16 or -32, as JSON allows
        code, data = envelope["code"], envelope["data"]
    except (ValueError, KeyError, TypeError):
        raise InvalidResponse(operation, "not a {code, data} JSON envelope", answer.text()) from None
    if not isinstance(code, int) or isinstance(code, bool):
        raise InvalidResponse(operation, f"code is not an integer: {code!r}", answer.text())
    if code != 0:
        raise ApiError(operation, code, data)
    return data


def parse_status(data: Any) -> JobStatus:
    completed, succeeded, started, created, notebook = data
    return JobStatus(bool(completed), int(succeeded), int(started), bool(created), bool(notebook))


def parse_scale(data: Any) -> JobScale:
    running, requested = data
    return JobScale(int(running), int(requested))


_T = TypeVar("_T")


def parsed(operation: str, parse: Callable[[Any], _T], data: Any) -> _T:
    try:
        return parse(data)
    except (TypeError, ValueError):
        raise InvalidResponse(operation, f"unexpected data {data!r:.80}") from None
