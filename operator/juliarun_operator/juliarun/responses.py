"""Reading JuliaRun's answers: the `{code, data}` envelope and the status and scale tuples,
with InvalidResponse (never a bare TypeError) for anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests

from .context import public_url
from .errors import ApiError, HTTPError, InvalidResponse, Redirected
from .model import JobScale, JobStatus


def unwrap(operation: str, response: requests.Response) -> Any:
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
