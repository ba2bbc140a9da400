"""A JuliaRun that misbehaves, on loopback, for the noisy-neighbour tests: it answers every
request slowly (a byte at a time), hugely (more bytes than any answer needs), or by echoing
the request line back (as a careless proxy would). It records what it was sent, so a test can
wait on its counter instead of sleeping."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Self

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"


class Loopback:
    """A TCP server on 127.0.0.1 (a free port) that serves each connection in a thread of its
    own with `serve(conn)`, until `stop`; the base of the servers here and in the tests."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def start(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class Misbehaving(Loopback):
    """`mode`: "trickle" (one byte per `pause` seconds, forever), "huge" (`huge_bytes` of an
    endless JSON string at loopback speed), "echo" (a 500 whose body is the request line)."""

    def __init__(self, mode: str, pause: float = 1.0, huge_bytes: int = 1 << 30):
        super().__init__()
        self.mode, self.pause, self.huge_bytes = mode, pause, huge_bytes
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []  # request lines, as received
        self.sent_bytes = 0

    def serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                line = conn.makefile("rb").readline(65536).decode("latin-1").strip()
                with self.lock:
                    self.requests.append(line)
                if self.mode == "trickle":
                    self._trickle(conn)
                elif self.mode == "huge":
                    self._huge(conn)
                else:
                    body = line.encode()
                    head = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"
                    conn.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            except OSError:
                pass  # the client gave up: as it should

    def _trickle(self, conn: socket.socket) -> None:
        answer = OK_HEAD + b"Content-Length: 30\r\n\r\n" + b'{"code": 0, "data": {}}       '
        for byte in answer:
            if self.stopping.wait(self.pause):
                return
            conn.sendall(bytes([byte]))
            self.sent_bytes += 1
        while not self.stopping.wait(self.pause):  # then hold the connection open
            pass

    def _huge(self, conn: socket.socket) -> None:
        conn.sendall(OK_HEAD + b"\r\n" + b'{"code": 0, "data": "')
        chunk = b"x" * (1 << 20)
        sent = 0
        while sent < self.huge_bytes and not self.stopping.is_set():
            conn.sendall(chunk)
            sent += len(chunk)
            self.sent_bytes += len(chunk)


@contextmanager
def misbehaving(mode: str, **options: float) -> Iterator[Misbehaving]:
    server = Misbehaving(mode, **options).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


class Recorder(Loopback):
    """A TCP relay on loopback in front of a JuliaRun: what passes through is forwarded as is,
    and the operation of every request (`GET /<operation>/...`) is recorded, so a test can
    tell what one of several clients of the same JuliaRun sent."""

    def __init__(self, target_port: int):
        super().__init__()
        self.target_port = target_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.operations: list[str] = []

    def serve(self, conn: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=self._pump, args=(server, conn, False), daemon=True).start()
        self._pump(conn, server, True)

    def count(self, *operations: str) -> int:
        return sum(1 for op in list(self.operations) if op in operations)

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        pending = b""
        try:
            while data := source.recv(65536):
                if requests:  # every request is a GET without a body: its line starts "GET /op/"
                    pending += data
                    *lines, pending = pending.split(b"\r\n")
                    self.operations += [
                        line.split(b"/")[1].decode() for line in lines if line.startswith(b"GET /")
                    ]
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers with `reply`."""

    def reply(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        payload = body.encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass
