"""The HTTP side of the emulator: JuliaRun's API paths, the admin paths and persistence.

API calls answer HTTP 200 with `{"code", "data"}` whatever goes wrong inside JuliaRun, as
the real server does; only a path that names no operation gets HTTP 404. The token is
checked first: a call without a valid one is answered without being counted, without
fault dice and without storing anything. Admin paths live under /_emulator/ and take no
token: the emulator is a test tool for loopback use, and says so when told to listen on
another address.

Nothing here logs a query string: it carries the token. The access log records the path.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import hmac
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ..juliarun import jobtypes as jt
from ..juliarun.context import is_loopback
from ..juliarun.encoding import check_job_name, decode_params
from ..juliarun.errors import CODE_INJECTED_FAULT, CODE_INVALID_PARAMETER, CODE_UNAUTHORIZED, ParameterError
from . import faults as fl
from .jobs import STREAMS, Refused, Timing
from .state import Cluster

log = logging.getLogger("juliarun_operator.emulator")
SAVE_DELAY = 0.5  # seconds a state-file write waits so a burst of changes is written once


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    auth: dict[str, list[str]] | None = None  # namespace -> accepted tokens; None: any token
    create_delay: float = 1.0
    worker_delay: float = 0.5
    run_time: float = 10.0
    state_file: str | None = None
    seed: int | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    log_interval: float = 5.0  # heartbeat log lines of jobs that run until deleted
    code_offset: int = 0  # added to every error code: clients must not depend on our codes


class PathAccessLogger(AbstractAccessLogger):
    """Access log without the query string (aiohttp's default `%r` would log the token)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %.4fs", request.remote, request.method, request.path, response.status, time
        )


class Emulator:
    """The cluster plus what the server adds around it: auth, faults, counters, the file."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] | None = None):
        self.config = config
        timing = Timing(config.create_delay, config.worker_delay, config.run_time, config.log_interval)
        self.cluster = Cluster(timing, clock) if clock else Cluster(timing)
        self.faults = fl.Faults(config.faults, config.seed)
        self.auth = (
            {ns: [t.encode() for t in tokens] for ns, tokens in config.auth.items()}
            if config.auth is not None
            else None
        )
        self.operations: dict[str, int] = {}
        self.job_calls: dict[str, dict[str, dict[str, int]]] = {}
        self.stopping = asyncio.Event()
        self._saved_version = 0
        self._save_timer: asyncio.TimerHandle | None = None
        if config.state_file and os.path.exists(config.state_file):
            try:
                with open(config.state_file, encoding="utf-8") as f:
                    self.cluster.load_dict(json.load(f))
            except ValueError as exc:
                raise ValueError(f"state file {config.state_file}: {exc}") from None
            self._saved_version = self.cluster.version

    # --- counters -------------------------------------------------------------------

    def count(self, operation: str, namespace: str, name: str | None) -> None:
        self.operations[operation] = self.operations.get(operation, 0) + 1
        if name is not None:
            per_job = self.job_calls.setdefault(namespace, {}).setdefault(name, {})
            per_job[operation] = per_job.get(operation, 0) + 1

    def counters(self) -> dict[str, Any]:
        return {"operations": self.operations, "jobs": self.job_calls}

    def reset_counters(self) -> None:
        self.operations, self.job_calls = {}, {}

    # --- auth -----------------------------------------------------------------------

    def check_token(self, namespace: str, encoded: str | None) -> None:
        if not encoded:
            raise Refused(CODE_UNAUTHORIZED, "missing token (jruntok)")
        try:
            token = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(CODE_UNAUTHORIZED, "token (jruntok) is not base64") from None
        if not token:
            raise Refused(CODE_UNAUTHORIZED, "empty token (jruntok)")
        if self.auth is None:
            return
        # Compare against every accepted token so timing says nothing about which matched.
        matched = False
        for accepted in self.auth.get(namespace, ()):
            matched |= hmac.compare_digest(token, accepted)
        if not matched:
            raise Refused(CODE_UNAUTHORIZED, f"token not accepted for namespace {namespace!r}")

    # --- the state file -------------------------------------------------------------

    def changed(self) -> None:
        if self.config.state_file and self._save_timer is None:
            self._save_timer = asyncio.get_running_loop().call_later(SAVE_DELAY, self.save)

    def save(self) -> None:
        self._save_timer = None
        version = self.cluster.version
        if not self.config.state_file or version == self._saved_version:
            return
        path = os.path.abspath(self.config.state_file)
        # Write a sibling temporary file and rename it over: a crash leaves old or new, whole.
        fd, tmp = tempfile.mkstemp(prefix=".emulator-state-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.cluster.to_dict(), f, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        self._saved_version = version

    def close(self) -> None:
        if self._save_timer is not None:
            self._save_timer.cancel()
        self.save()


EMULATOR = web.AppKey("emulator", Emulator)


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


async def _api(request: web.Request) -> web.StreamResponse:
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
        with _gc_paused():
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
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- admin --------------------------------------------------------------------------


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR].faults.config)


async def _put_faults(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR]
    try:
        emu.faults.set(await request.json())
    except (ValueError, json.JSONDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    log.warning("faults set: %s", json.dumps(emu.faults.config))
    return web.json_response(emu.faults.config)


async def _delete_faults(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR]
    emu.faults.set({})
    log.warning("faults cleared")
    return web.json_response(emu.faults.config)


async def _get_counters(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR].counters())


async def _reset_counters(request: web.Request) -> web.Response:
    emu = request.app[EMULATOR]
    emu.reset_counters()
    return web.json_response(emu.counters())


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "jobs": request.app[EMULATOR].cluster.count()})


# --- the application ----------------------------------------------------------------


def exposure_warning(host: str) -> str | None:
    """What listening on `host` exposes, or None for loopback."""
    if is_loopback(host):
        return None
    return (
        f"listening on {host or 'every address'}, not loopback: the admin paths under "
        "/_emulator/ (faults, counters) take no authentication: anyone who reaches this "
        "address can change faults and read counters"
    )


def create_app(config: EmulatorConfig, clock: Callable[[], float] | None = None) -> web.Application:
    """The emulator as an aiohttp application; loads `config.state_file` if it exists."""
    emu = Emulator(config, clock)
    app = web.Application()
    app[EMULATOR] = emu
    app.router.add_get("/_emulator/faults", _get_faults)
    app.router.add_put("/_emulator/faults", _put_faults)
    app.router.add_delete("/_emulator/faults", _delete_faults)
    app.router.add_get("/_emulator/counters", _get_counters)
    app.router.add_post("/_emulator/counters/reset", _reset_counters)
    app.router.add_get("/_emulator/healthz", _healthz)
    app.router.add_get("/{op}/", _api)
    app.router.add_get("/{op}/{job_type}/", _api)

    async def on_startup(app: web.Application) -> None:
        if config.auth is None:
            log.warning("no --auth file: any non-empty token is accepted in any namespace")
        warning = exposure_warning(config.host)
        if warning:
            log.warning("%s", warning)
        if emu.faults.config:
            log.warning("faults set: %s", json.dumps(emu.faults.config))

    async def on_shutdown(app: web.Application) -> None:
        emu.stopping.set()

    async def on_cleanup(app: web.Application) -> None:
        emu.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def make_runner(app: web.Application, access_log: bool = True) -> web.AppRunner:
    """An AppRunner that logs paths only (or nothing), never query strings."""
    if access_log:
        return web.AppRunner(app, access_log_class=PathAccessLogger, shutdown_timeout=5)
    return web.AppRunner(app, access_log=None, shutdown_timeout=5)
