"""The emulator as an aiohttp application: its routes (handlers.py answers them), the
warnings it logs at start-up, and an access log that records paths, never query strings
(they carry the token). The admin paths under /_emulator/ take no token, so listening on
an address other than loopback is warned about.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ..juliarun.context import is_loopback
from .handlers import (
    api,
    complete_jobs,
    delete_faults,
    get_counters,
    get_faults,
    healthz,
    move_job,
    put_faults,
    reset_counters,
)
from .listeners import Listeners
from .service import EMULATOR, Emulator, EmulatorConfig

# run.py and the tests build the app from here; the configuration lives in service.py.
__all__ = ["EMULATOR", "Emulator", "EmulatorConfig", "create_app", "exposure_warning", "make_runner"]

log = logging.getLogger("juliarun_operator.emulator")


class PathAccessLogger(AbstractAccessLogger):
    """Access log without the query string (aiohttp's default `%r` would log the token)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %.4fs", request.remote, request.method, request.path, response.status, time
        )


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
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_put("/_emulator/faults", put_faults)
    app.router.add_delete("/_emulator/faults", delete_faults)
    app.router.add_get("/_emulator/counters", get_counters)
    app.router.add_post("/_emulator/counters/reset", reset_counters)
    app.router.add_get("/_emulator/healthz", healthz)
    app.router.add_post("/_emulator/complete", complete_jobs)
    app.router.add_post("/_emulator/move", move_job)
    app.router.add_get("/{op}/", api)
    app.router.add_get("/{op}/{job_type}/", api)

    listeners: list[asyncio.Task[None]] = []  # the jobs' own sockets (--listen-host)

    async def on_startup(app: web.Application) -> None:
        if config.auth is None:
            log.warning("no --auth file: any non-empty token is accepted in any namespace")
        warning = exposure_warning(config.host)
        if warning:
            log.warning("%s", warning)
        if emu.faults.config:
            log.warning("faults set: %s", json.dumps(emu.faults.config))
        if config.listen:
            listeners.append(asyncio.create_task(Listeners(emu.cluster).run(emu.stopping)))

    async def on_shutdown(app: web.Application) -> None:
        emu.stopping.set()

    async def on_cleanup(app: web.Application) -> None:
        emu.stopping.set()
        for task in listeners:
            await task
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
