"""The emulator's request handlers: JuliaRun's API paths and the admin paths.

API calls answer HTTP 200 with `{"code", "data"}` whatever goes wrong inside JuliaRun, as
the real server does; only a path that names no operation gets HTTP 404. The token is
checked first: a call without a valid one is answered without being counted, without
fault dice and without storing anything. Admin paths live under /_emulator/ and take no
token: the emulator is a test tool for loopback use.

Nothing here logs a query string: it carries the token.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ..juliarun import jobtypes as jt
from ..juliarun.decoding import decode_params
from ..juliarun.encoding import check_job_name
from ..juliarun.errors import CODE_INJECTED_FAULT, CODE_INVALID_PARAMETER, ParameterError
from . import faults as fl
from .jobs import STREAMS, Refused
from .service import EMULATOR, Emulator

log = logging.getLogger("juliarun_operator.emulator")

# --- the API ------------------------------------------------------------------------


def _envelope(code: int, data: Any) -> web.Response:
    return web.Response(text=json.dumps({"code": code, "data": data}), content_type="application/json")


def _int_param(query: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = query.get(name)
    if text is None:
        if default is None:
            raise Refused(CODE_INVALID_PARAMETER, f"missing parameter {name}")
        return default
    if not text.isdigit() or not text.isascii():
        raise Refused(
            CODE_INVALID_PARAMETER, f"parameter {name}: expected a non-negative integer, got {text!r}"
        )
    return int(text)


def _context_call(emu: Emulator, op: str, namespace: str) -> Any:
    if op == "getSystemStatus":
        return emu.faults.system_status
    if op == "listJobs":
        return emu.cluster.list_jobs(namespace)
    return emu.cluster.all_job_info(namespace)


def _job_call(
    emu: Emulator, op: str, namespace: str, job_type: str, query: Mapping[str, str], host: str
) -> Any:
    cluster = emu.cluster
    if job_type not in jt.JOB_TYPES:
        raise Refused(
            CODE_INVALID_PARAMETER,
            f"unknown job type {job_type!r}: expected one of " + ", ".join(jt.JOB_TYPES),
        )
    name = query.get("name")
    if name is None:
        raise Refused(CODE_INVALID_PARAMETER, "missing parameter name")
    try:
        check_job_name(name)
        if op == "submitJob":
            rule = emu.faults.job_failure(name)
            cluster.submit(
                namespace, name, job_type, decode_params(job_type, query), fail=rule["fail"] if rule else ""
            )
            if rule:
                emu.faults.used(rule)
            emu.changed()
            return None
        if op == "updateJob":
            cluster.update(namespace, name, job_type, decode_params(job_type, query, partial=True))
            emu.changed()
            return None
    except ParameterError as exc:
        raise Refused(CODE_INVALID_PARAMETER, str(exc)) from None
    if op == "getJobStatus":
        return cluster.status(namespace, name, job_type)
    if op == "getJobScale":
        return cluster.scale(namespace, name, job_type)
    if op == "getJobEndpoint":
        return cluster.endpoints(namespace, name, job_type)
    if op == "setJobScale":
        done = cluster.set_scale(namespace, name, job_type, _int_param(query, "parallelism"))
        emu.changed()
        return done
    if op == "deleteJob":
        force = query.get("force", "false")
        if force not in ("true", "false"):
            raise Refused(CODE_INVALID_PARAMETER, f"parameter force: expected true or false, got {force!r}")
        done = cluster.delete(namespace, name, job_type, force == "true")
        emu.changed()
        return done
    if op == "tailJob":
        stream = query.get("stream")
        if stream is not None and stream not in STREAMS:
            raise Refused(
                CODE_INVALID_PARAMETER, f"parameter stream: expected stdout or stderr, got {stream!r}"
            )
        return cluster.tail(namespace, name, job_type, _int_param(query, "count", 50), stream)
    # getEncodedURL: the job's port as reached through JuliaRun's router on this host.
    port = cluster.service_port(namespace, name, job_type, _int_param(query, "port"))
    route = base64.urlsafe_b64encode(f"{namespace}/{name}:{port}".encode()).decode().rstrip("=")
    return f"http://{host}/jrun/{route}/"


async def api(request: web.Request) -> web.StreamResponse:
    op = request.match_info["op"]
    job_type = request.match_info.get("job_type")
    if op not in (fl.JOB_OPERATIONS if job_type is not None else fl.CONTEXT_OPERATIONS):
        raise web.HTTPNotFound(text=f"no JuliaRun operation at {request.path}\n")
    emu = request.app[EMULATOR]
    query = request.query
    namespace = query.get("jrunns", "")
    # Before anything is counted or stored: a caller without a valid token costs nothing
    # that stays (2,000 such calls with 2,000 namespaces leave the counters as they were).
    try:
        if not namespace:
            raise Refused(CODE_INVALID_PARAMETER, "missing parameter jrunns (the namespace)")
        emu.check_token(namespace, query.get("jruntok"))
    except Refused as refused:
        return _envelope(refused.code + emu.config.code_offset, refused.reason)
    emu.count(op, namespace, query.get("name") if job_type is not None else None)

    decision = emu.faults.decide(op)
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.hang:
        # the hang ends early when the server stops, so shutdown is never held up
        with suppress(TimeoutError):
            await asyncio.wait_for(emu.stopping.wait(), decision.hang)
    if decision.outcome == fl.DROP:
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing is left to answer on
    if decision.outcome == fl.HTTP_5XX:
        return web.Response(status=503, text="503 Service Unavailable (injected fault)\n")
    if decision.outcome == fl.ECHO:
        # What aiohttp and some proxies do: the request line, token and all, in the error page.
        line = f"{request.method} {request.raw_path} HTTP/{request.version.major}.{request.version.minor}"
        phrase = HTTPStatus(decision.status).phrase
        return web.Response(
            status=decision.status,
            text=f"{decision.status} {phrase} (injected fault): cannot handle {line!r}\n",
        )
    if decision.outcome == fl.MALFORMED:
        return web.Response(text='{"code": 0, "data": [tru', content_type="application/json")
    if decision.outcome == fl.ERROR:
        return _envelope(CODE_INJECTED_FAULT + emu.config.code_offset, f"{op}: injected fault")

    if op == "getAllJobInfo":
        # The answer for thousands of jobs is tens of thousands of fresh containers, which
        # set off collections that walk every job; none of it is cyclic, so skip them.
        with gc_paused():
            return _answer(emu, op, namespace, job_type, query, request.host)
    return _answer(emu, op, namespace, job_type, query, request.host)


def _answer(
    emu: Emulator, op: str, namespace: str, job_type: str | None, query: Mapping[str, str], host: str
) -> web.Response:
    try:
        if job_type is None:
            data = _context_call(emu, op, namespace)
        else:
            data = _job_call(emu, op, namespace, job_type, query, host)
    except Refused as refused:
        return _envelope(refused.code + emu.config.code_offset, refused.reason)
    return _envelope(0, data)


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- admin --------------------------------------------------------------------------


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR].faults.config)


async def put_faults(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR]
    try:
        emu.faults.set(await request.json())
    except (ValueError, json.JSONDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    log.warning("faults set: %s", json.dumps(emu.faults.config))
    return web.json_response(emu.faults.config)


async def delete_faults(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR]
    emu.faults.set({})
    log.warning("faults cleared")
    return web.json_response(emu.faults.config)


async def get_counters(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR].counters())


async def reset_counters(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR]
    emu.reset_counters()
    return web.json_response(emu.counters())


async def complete_jobs(request: web.Request) -> web.Response:
    """POST {"namespace": ..., "names": [...]}: end those batch jobs now; answers when each ended."""
    emu = request.app[EMULATOR]
    try:
        body = await request.json()
        ended = emu.cluster.complete(str(body["namespace"]), [str(n) for n in body["names"]])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        return web.json_response({"error": f"expected {{namespace, names}}: {exc}"}, status=400)
    return web.json_response(ended)


async def move_job(request: web.Request) -> web.Response:
    """POST {"namespace": ..., "name": ..., "address": ...}: the job runs at that address now
    (its endpoints follow); answers its new endpoints."""
    emu = request.app[EMULATOR]
    try:
        body = await request.json()
        address = str(body.get("address") or "")
        if address and not _ADDRESS.match(address):
            raise ValueError(f"address {address!r} is not an IP address or host name")
        endpoints = emu.cluster.move(str(body["namespace"]), str(body["name"]), address)
    except KeyError as exc:
        return web.json_response({"error": f"expected {{namespace, name, address}}: {exc}"}, status=404)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        return web.json_response({"error": f"expected {{namespace, name, address}}: {exc}"}, status=400)
    emu.changed()
    return web.json_response({"endpoints": endpoints})


_ADDRESS = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "jobs": request.app[EMULATOR].cluster.count()})
