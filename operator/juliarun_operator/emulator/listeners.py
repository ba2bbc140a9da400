"""Emulated jobs that answer: with `--listen-host`, a job gets an address of its own from the
given ones and, while it runs, listens there on each of its service ports, answering any
HTTP request with a line naming the job (so that a Pod can reach it through its Service and
tell which job answered). A job moved (/_emulator/move) listens at its new address."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable

from .jobs import Job
from .lifecycle import is_completed
from .state import Cluster

log = logging.getLogger("juliarun_emulator")
RECONCILE_INTERVAL = 0.2  # seconds between looks at which jobs should listen where
MAX_POOL = 4096  # addresses taken from the --listen-host ranges


def address_pool(entries: Iterable[str]) -> list[str]:
    """The addresses of `--listen-host` entries (addresses or CIDR ranges, in order);
    ValueError names a bad one."""
    pool: list[str] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"--listen-host {entry!r}: not an address or address range") from None
        hosts = [network.network_address] if network.num_addresses == 1 else network.hosts()
        for ip in hosts:
            if len(pool) >= MAX_POOL:
                break
            pool.append(str(ip))
    return pool


def answer(job: Job, port_name: str, ip: str, port: int) -> bytes:
    return f"juliarun-emulator job {job.namespace}/{job.name} port {port_name} at {ip}:{port}\n".encode()


class Listeners:
    """The listening sockets of running jobs, kept in step with the cluster."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.servers: dict[tuple[str, int], tuple[asyncio.Server, bytes]] = {}
        self.failed: set[tuple[str, int]] = set()  # told once that it cannot be bound

    def wanted(self) -> dict[tuple[str, int], bytes]:
        now = self.cluster.clock()
        out: dict[tuple[str, int], bytes] = {}
        for jobs in self.cluster.jobs.values():
            for job in jobs.values():
                if not job.address or now < job.created_at or is_completed(job, now):
                    continue
                for port_name, pair in job.ports().items():
                    out[(job.ip, int(pair[1]))] = answer(job, port_name, job.ip, int(pair[1]))
        return out

    async def reconcile(self) -> None:
        wanted = self.wanted()
        for key in [k for k, (_, text) in self.servers.items() if wanted.get(k) != text]:
            server, _ = self.servers.pop(key)
            server.close()
        for key, text in wanted.items():
            if key in self.servers:
                continue
            try:
                server = await asyncio.start_server(self._handler(text), key[0], key[1], reuse_address=True)
            except OSError as exc:
                if key not in self.failed:
                    log.warning("cannot listen on %s:%d for a job: %s", key[0], key[1], exc.strerror)
                    self.failed.add(key)
                continue
            self.failed.discard(key)
            self.servers[key] = (server, text)
            log.info("job listening on %s:%d", *key)

    def _handler(
        self, text: bytes
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                head = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    + f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n".encode()
                )
                writer.write(head + text)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        return handle

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.reconcile()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONCILE_INTERVAL)
        finally:
            for server, _ in self.servers.values():
                server.close()
            self.servers.clear()
