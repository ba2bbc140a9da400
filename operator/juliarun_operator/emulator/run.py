"""Running the emulator: in a background thread (tests, benchmarks) or as the CLI command."""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import yaml
from aiohttp import web

from . import faults as fl
from .listeners import address_pool
from .server import EMULATOR, Emulator, EmulatorConfig, create_app, make_runner
from .state import Cluster

_T = TypeVar("_T")


class EmulatorHandle:
    """A server running on its own event loop in a thread; see `running_emulator`."""

    def __init__(self, config: EmulatorConfig, access_log: bool):
        self.app = create_app(config)
        self._runner = make_runner(self.app, access_log)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="juliarun-emulator", daemon=True)
        self._host = config.host
        self.url = ""

    @property
    def emulator(self) -> Emulator:
        return self.app[EMULATOR]

    @property
    def state(self) -> Cluster:
        return self.emulator.cluster

    def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run `fn` on the server's loop, where the state lives, and return its result."""

        async def call() -> _T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result()

    def set_faults(self, config: dict[str, Any]) -> None:
        self._call(self.emulator.faults.set, config)

    def counters(self) -> dict[str, Any]:
        return self._call(lambda: copy.deepcopy(self.emulator.counters()))

    def start(self) -> None:
        self._thread.start()

        async def start() -> int:
            await self._runner.setup()
            site = web.TCPSite(self._runner, self._host, 0)
            await site.start()
            bound: int = self._runner.addresses[0][1]  # (host, port, ...): the port the OS chose
            return bound

        port = asyncio.run_coroutine_threadsafe(start(), self._loop).result()
        self.url = f"http://{_url_host(self._host)}:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextmanager
def running_emulator(
    config: EmulatorConfig | None = None, *, access_log: bool = False
) -> Iterator[EmulatorHandle]:
    """Run the emulator on a free port of `config.host` (its port is ignored) while inside.

    The handle gives `url`, `state` (the Cluster), `set_faults(dict)` and `counters()`.
    Leaving the block stops the server and writes the state file, if there is one.
    """
    handle = EmulatorHandle(config or EmulatorConfig(), access_log)
    try:
        handle.start()
    except BaseException:
        handle.stop()
        raise
    try:
        yield handle
    finally:
        handle.stop()


# --- the command line ---------------------------------------------------------------


def configure_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `emulator` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "emulator",
        help="run a JuliaRun-compatible server for development and tests",
        description="Serve the JuliaRun HTTP API with emulated jobs, for development and tests. "
        "Admin paths (faults, counters, health) are under /_emulator/.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorConfig()
    parser.add_argument("--host", default=defaults.host, help="address to listen on (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=defaults.port, help="port (default %(default)s; 0: any free)"
    )
    parser.add_argument(
        "--auth",
        metavar="FILE",
        help="YAML file: namespace -> list of accepted tokens; without it any non-empty token is accepted",
    )
    parser.add_argument(
        "--create-delay",
        type=float,
        default=defaults.create_delay,
        metavar="SECONDS",
        help="from submit to created (default %(default)s)",
    )
    parser.add_argument(
        "--worker-delay",
        type=float,
        default=defaults.worker_delay,
        metavar="SECONDS",
        help="per worker started or stopped (default %(default)s)",
    )
    parser.add_argument(
        "--run-time",
        type=float,
        default=defaults.run_time,
        metavar="SECONDS",
        help="batch jobs complete this long after creation; 0: run until deleted (default %(default)s)",
    )
    parser.add_argument(
        "--log-interval",
        type=float,
        default=defaults.log_interval,
        metavar="SECONDS",
        help="heartbeat log lines of jobs that run until deleted (default %(default)s)",
    )
    parser.add_argument("--state", metavar="FILE", help="keep the jobs in this JSON file across restarts")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="OP:KIND=VALUE",
        help="inject faults; OP is an operation or '*', KIND one of "
        + ", ".join(fl.KINDS)
        + "; or jobs:PATTERN=FAIL[:COUNT]: fail the jobs whose name matches PATTERN (FAIL one of "
        + ", ".join(fl.FAIL_MODES)
        + "; COUNT submits, default all); or system_status=false. Repeatable.",
    )
    parser.add_argument("--seed", type=int, help="seed of the fault dice")
    parser.add_argument(
        "--code-offset",
        type=int,
        default=0,
        metavar="N",
        help="add N to every error code (the real JuliaRun's codes are not public: "
        "a client that works with any N does not depend on ours)",
    )
    parser.add_argument(
        "--listen-host",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="an address (or CIDR range) for jobs: each job takes one and, while it runs, listens "
        "there on its service ports, answering HTTP with a line naming the job; its endpoints "
        "report that address. Repeatable; default none (jobs report fake 10.x pod IPs)",
    )
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not log requests (the log never holds query strings anyway)",
    )


def load_auth(path: str) -> dict[str, list[str]]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not all(
        isinstance(ns, str) and isinstance(tokens, list) and all(isinstance(t, str) and t for t in tokens)
        for ns, tokens in data.items()
    ):
        raise ValueError(f"{path}: expected a map of namespace -> list of non-empty token strings")
    return data


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    faults: dict[str, Any] = {}
    for flag in args.fault:
        fl.parse_flag(flag, faults)
    for name in ("create_delay", "worker_delay", "run_time", "log_interval"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must not be negative")
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        auth=load_auth(args.auth) if args.auth else None,
        create_delay=args.create_delay,
        worker_delay=args.worker_delay,
        run_time=args.run_time,
        state_file=args.state,
        seed=args.seed,
        faults=faults,
        log_interval=args.log_interval,
        code_offset=args.code_offset,
        listen=tuple(address_pool(args.listen_host)),
    )


def run_command(args: argparse.Namespace) -> int:
    """The `emulator` command: serve until SIGINT or SIGTERM."""
    try:
        config = config_from_args(args)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"juliarun emulator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(_serve(config, not args.no_access_log))
    except (OSError, ValueError) as exc:  # port taken, unreadable state file
        print(f"juliarun emulator: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: EmulatorConfig, access_log: bool) -> None:
    runner = make_runner(create_app(config), access_log)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, config.host, config.port).start()
        port = runner.addresses[0][1]
        print(f"JuliaRun emulator listening on http://{_url_host(config.host)}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
