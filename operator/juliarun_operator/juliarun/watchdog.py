"""Cutting a call's sockets at its deadline (the bulkhead rules of transport.py).

requests' time-outs bound each socket operation, not the call, so a watchdog thread shuts
down the socket a call still holds at its deadline; the blocked read returns at once and the
broken connection is closed, never pooled. The watchdog finds the socket through the
connection pool (`BulkheadAdapter`), so a session passed in by the caller keeps only the
checks between chunks.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection


class Watch:
    """One call's deadline, and the sockets it holds that the watchdog cuts when it passes.

    The pool reports the connections the calling thread takes and gives back (`hold`,
    `release`); a connection being opened reports its socket (`connecting`), because TLS
    wraps it into a new object only once the handshake is done, and a handshake the
    server never answers must be cut too. Once expired, whatever is reported is cut at
    once.
    """

    def __init__(self, deadline: float):
        self.deadline = deadline  # time.monotonic()
        self.expired = False
        self.finished = False
        self._lock = threading.Lock()
        self._held: set[object] = set()  # urllib3 connections: their .sock is cut
        self._opening: list[socket.socket] = []  # duplicates, closed once connected

    def hold(self, conn: object) -> None:
        with self._lock:
            if self.expired:
                _cut(getattr(conn, "sock", None))
            self._held.add(conn)

    def release(self, conn: object) -> None:
        with self._lock:
            self._held.discard(conn)

    def connecting(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                _cut(sock)
            elif not self.finished:
                self._opening.append(sock.dup())  # shutdown() acts on the socket, not the fd

    def connected(self) -> None:
        with self._lock:
            for dup in self._opening:
                dup.close()
            self._opening.clear()

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for conn in self._held:
                _cut(getattr(conn, "sock", None))
            for dup in self._opening:
                _cut(dup)

    def finish(self) -> None:
        with self._lock:
            self.finished = True
            self._held.clear()
        self.connected()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def _cut(sock: object) -> None:
    """Shut a socket down from another thread: a read blocked on it returns at once. Not
    close(): its descriptor could be reused while the owner still holds the number."""
    if isinstance(sock, socket.socket):  # not an SSLTransport (TLS in TLS): nothing to cut
        with suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # below SSLSocket's own


class Watchdog:
    """One daemon thread that expires the calls whose deadline has passed."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every call and the thread: for a child process after fork, which has
        neither, and whose copy of the lock may be held by a thread it does not have."""
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, watch: Watch) -> None:
        with self._cond:
            heapq.heappush(self._due, (watch.deadline, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():  # none yet, or lost in a fork
                self._thread = threading.Thread(target=self._run, name="juliarun-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._due and self._due[0][2].finished:  # ended in time: forget it
                    heapq.heappop(self._due)
                if not self._due:
                    self._cond.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                watch = heapq.heappop(self._due)[2]
            watch.expire()


WATCHDOG = Watchdog()
os.register_at_fork(after_in_child=WATCHDOG.reset)
_calling = threading.local()  # .watch: the Watch of the call this thread is making


def current_watch() -> Watch | None:
    return getattr(_calling, "watch", None)


def set_current_watch(watch: Watch | None) -> None:
    """Make `watch` the one of the call this thread is making (None: no call)."""
    _calling.watch = watch


def _connecting(sock: socket.socket) -> socket.socket:
    watch = current_watch()
    if watch is not None:
        watch.connecting(sock)
    return sock


def _connected() -> None:
    watch = current_watch()
    if watch is not None:
        watch.connected()


class _WatchedHTTPConnection(HTTPConnection):
    """Reports its new socket to the call's Watch until it is connected."""

    def _new_conn(self) -> socket.socket:
        return _connecting(super()._new_conn())

    def connect(self) -> None:
        try:
            super().connect()
        finally:
            _connected()


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """Watched as above: its connect() wraps HTTPSConnection's (next in the MRO), handshake
    included, and its _new_conn() is HTTPConnection's, as HTTPSConnection has none."""


# The connection a pool hands out, or takes back, in the thread of a call: that call's.
def _taken(conn: BaseHTTPConnection) -> BaseHTTPConnection:
    watch = current_watch()
    if watch is not None:
        watch.hold(conn)
    return conn


def _given_back(conn: BaseHTTPConnection | None) -> BaseHTTPConnection | None:
    watch = current_watch()
    if watch is not None and conn is not None:
        watch.release(conn)
    return conn


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        return _taken(super()._get_conn(timeout))

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        super()._put_conn(_given_back(conn))


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        return _taken(super()._get_conn(timeout))

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        super()._put_conn(_given_back(conn))


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class BulkheadAdapter(HTTPAdapter):
    """requests' adapter with pools whose connections the watchdog can cut (see Watch)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are their own classes
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager
