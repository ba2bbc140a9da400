"""Bulkheads in the client's transport: a deadline on the whole call and a byte cap on the
answer, against a server on loopback that answers slowly, hugely or not at all; and whose
fault each failure is (`blame`), which a connection's breaker counts by."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from juliarun_operator.juliarun import (
    ApiError,
    Client,
    Context,
    HTTPError,
    InsecureTransport,
    InvalidResponse,
    Job,
    JuliaRunError,
    ParameterError,
    Redirected,
    RequestTooLarge,
    RetryPolicy,
    TransportError,
)
from juliarun_operator.juliarun.body import READ_CHUNK
from juliarun_operator.juliarun.errors import CONNECTION_4XX, Blame, ResponseTooLarge, blame

from support.servers import Loopback

TOKEN = "deadline-s3cret-token"
SECRETS = (TOKEN, base64.b64encode(TOKEN.encode()).decode())
ONE = RetryPolicy(attempts=1)
DEADLINE = 0.5
MARGIN = 0.5  # the watchdog cuts at the deadline; this is what a loaded machine may add
PAUSE = 0.1  # between two bytes of a trickle
CAP = 1 << 20
GOOD = b'{"code": 0, "data": true}'

Action = Callable[["Scripted", socket.socket], bool]  # True: keep the connection for the next


class Scripted(Loopback):
    """A raw HTTP/1.1 server on loopback: each request gets the next action of `script`,
    then a good answer. Counts connections, requests, bytes sent and hang-ups seen."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Action] = []
        self.requests = self.sent = self.hung_up = 0
        self._lock = self.lock

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.sent += len(data)

    def trickle(self, conn: socket.socket, data: bytes) -> None:
        """`data` a byte per PAUSE, until the server stops or the client hangs up."""
        for byte in data:
            if self.stopping.wait(PAUSE):
                return
            self.send(conn, bytes([byte]))

    def serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as requests:
            try:
                while requests.readline(65536):
                    while requests.readline(65536) not in (b"\r\n", b"\n", b""):
                        pass  # the headers
                    with self._lock:
                        self.requests += 1
                        action = self.script.pop(0) if self.script else good
                    if not action(self, conn):
                        return
            except OSError:
                with self._lock:
                    self.hung_up += 1


def peak_memory(call: Callable[[], object]) -> tuple[BaseException | None, int]:
    """The error `call` raised (None if none) and the peak of memory allocated meanwhile."""
    tracemalloc.start()
    try:
        error, _ = timed(call)
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def good(server: Scripted, conn: socket.socket) -> bool:
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(GOOD) + GOOD)
    return True


def trickled_head(server: Scripted, conn: socket.socket) -> bool:
    server.trickle(conn, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000)
    return False


def trickled_body(server: Scripted, conn: socket.socket) -> bool:
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
    server.trickle(conn, b'{"code": 0, "data": "' + b"a" * 9_000)
    return False


def silent(server: Scripted, conn: socket.socket) -> bool:
    server.stopping.wait()
    return False


def endless(head: bytes, chunk: bytes = b"x" * (1 << 16)) -> Action:
    def act(server: Scripted, conn: socket.socket) -> bool:
        server.send(conn, head)
        while not server.stopping.is_set():
            server.send(conn, chunk)
        return False

    return act


def raw(answer: bytes, *, keep: bool = True) -> Action:
    def act(server: Scripted, conn: socket.socket) -> bool:
        server.send(conn, answer)
        return keep

    return act


def status(code: int, body: bytes = b"no") -> Action:
    def act(server: Scripted, conn: socket.socket) -> bool:
        server.send(conn, b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (code, len(body)) + body)
        return True

    return act


@pytest.fixture
def server() -> Iterator[Scripted]:
    srv = Scripted().start()
    yield srv
    srv.stop()


def client_of(server: Scripted, scheme: str = "http", **context: object) -> Client:
    # Socket time-outs far beyond the deadline: only the deadline can end these calls.
    options: dict = {"connect_timeout": 10, "read_timeout": 10, "call_deadline": DEADLINE, **context}
    return Client(
        Context(url=server.url(scheme), token=TOKEN, namespace="team-a", verify=False, **options), retry=ONE
    )


def wait_until(what: str, check: Callable[[], bool], timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(JuliaRunError) as err:
        call()
    return err.value, time.monotonic() - started


def assert_no_secret(exc: BaseException) -> None:
    assert not any(secret in str(exc) for secret in SECRETS)


# --- the deadline ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [trickled_head, trickled_body, silent],
    ids=["status line and headers a byte at a time", "body a byte at a time", "never answers"],
)
def test_a_slow_answer_ends_at_the_deadline_and_the_next_call_gets_a_new_connection(server, action):
    client = client_of(server)
    server.script = [action]
    error, took = timed(client.get_system_status)
    assert isinstance(error, TransportError) and blame(error) is Blame.CONNECTION
    assert f"no complete answer from {server.url()} within {DEADLINE:g} s" in str(error)
    assert DEADLINE - 0.05 <= took < DEADLINE + MARGIN
    assert_no_secret(error)
    assert client.get_system_status() is True  # the pool gives a working connection
    assert server.connections == 2  # a new one: the cut one was not put back
    if action is not silent:  # it wrote on: its next byte met the closed socket
        wait_until("the server to see the hang-up", lambda: server.hung_up == 1)


def test_a_tls_handshake_never_answered_ends_at_the_deadline(server):
    server.script = [silent]  # it takes the ClientHello for a request and never answers
    error, took = timed(client_of(server, "https").list_jobs)
    assert isinstance(error, TransportError) and f"within {DEADLINE:g} s" in str(error)
    assert DEADLINE - 0.05 <= took < DEADLINE + MARGIN


def test_the_deadline_covers_every_attempt_of_a_repeatable_call(server):
    client = replace_retry(client_of(server), RetryPolicy(attempts=5, base=0.01, cap=0.02))
    server.script = [trickled_head] * 5
    error, took = timed(client.list_jobs)  # repeatable: retried, yet within one deadline
    assert isinstance(error, TransportError) and took < DEADLINE + MARGIN


def replace_retry(client: Client, retry: RetryPolicy) -> Client:
    client.retry = retry
    return client


def test_concurrent_calls_each_keep_their_own_deadline(server):
    """Slow and good answers at once on one client: the slow ones end at their deadline,
    and no cut reaches a connection another thread is using."""
    client = client_of(server)
    server.script = [trickled_head, good] * 4
    outcomes: list[tuple[bool, float]] = []

    def call() -> None:
        started = time.monotonic()
        try:
            ok = client.get_system_status()
        except TransportError:
            ok = False
        outcomes.append((ok, time.monotonic() - started))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 2 * MARGIN)
    assert sorted(ok for ok, _ in outcomes) == [False] * 4 + [True] * 4
    assert all(took < DEADLINE + MARGIN for _, took in outcomes)


def test_an_answer_in_time_is_not_cut_later_on_its_pooled_connection(server):
    """The first call's deadline passes while the next call uses the same kept-alive
    connection: the watchdog must not cut the connection the first call gave back."""
    client = client_of(server, call_deadline=0.2)
    assert client.get_system_status() is True

    def late_but_in_time(srv: Scripted, conn: socket.socket) -> bool:
        srv.stopping.wait(0.4)  # past the first call's deadline
        return good(srv, conn)

    server.script = [late_but_in_time]
    client.context = replace(client.context, call_deadline=3.0)
    assert client.get_system_status() is True
    assert server.connections == 1 and server.requests == 2


def test_good_answers_keep_their_connection_alive(server):
    client = client_of(server)
    for _ in range(5):
        assert client.get_system_status() is True
    assert server.connections == 1 and server.requests == 5


def test_the_default_deadline_is_connect_plus_read_timeout():
    context = Context(url="http://127.0.0.1:9", token=TOKEN, connect_timeout=3, read_timeout=4)
    assert context.deadline() == 7
    assert replace(context, read_timeout=10).deadline() == 13  # follows the time-outs
    assert replace(context, call_deadline=1.5).deadline() == 1.5
    env = {"JULIARUN_URL": "http://127.0.0.1:9", "JULIARUN_TOKEN": TOKEN}
    given = Context.from_env(env, call_deadline=2.5, max_response_bytes=9)
    assert given.deadline() == 2.5 and given.max_response_bytes == 9
    with pytest.raises(ValueError, match="call_deadline"):
        Context(call_deadline=0)


# --- the byte cap ---------------------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_refused_before_reading(server):
    client = client_of(server, max_response_bytes=CAP)
    server.script = [endless(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (50 * CAP))]
    error, took = timed(client.get_all_job_info)
    assert isinstance(error, ResponseTooLarge) and isinstance(error, InvalidResponse)
    assert error.declared == 50 * CAP and error.read == 0 and error.body == ""
    assert f"larger than the {CAP:,}-byte cap (Content-Length {50 * CAP:,})" in str(error)
    assert blame(error) is Blame.CONNECTION and took < DEADLINE
    assert client.get_system_status() is True and server.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",  # a body that lasts until the close
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["no length", "chunked"],
)
def test_an_endless_body_is_cut_at_the_cap_without_filling_memory(server, head):
    client = client_of(server, max_response_bytes=CAP, call_deadline=5.0)
    # For chunked, one chunk of 64 KiB (hex 10000) after another.
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n" if b"chunked" in head else b"x" * (1 << 16)
    server.script = [endless(head, chunk)]
    error, peak = peak_memory(client.get_all_job_info)
    assert isinstance(error, ResponseTooLarge) and error.declared is None
    assert CAP < error.read <= CAP + READ_CHUNK  # what was taken in: the cap and one chunk
    assert peak < 3 * CAP  # the cap, one chunk, and the join of the parts at most
    assert client.get_system_status() is True and server.connections == 2


def test_a_compressed_answer_is_capped_as_decoded(server):
    """A few KiB of gzip that would inflate to 64 MiB stop at the cap."""
    bomb = gzip.compress(b'{"code": 0, "data": "' + b"0" * (64 * CAP), compresslevel=9)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    client = client_of(server, max_response_bytes=CAP, call_deadline=5.0)
    server.script = [raw(head + bomb)]
    error, peak = peak_memory(client.get_all_job_info)
    assert len(bomb) < CAP and isinstance(error, ResponseTooLarge)
    assert peak < 3 * CAP


def test_a_compressed_answer_within_the_cap_is_read(server):
    data = {f"job-{i}": {"type": "JuliaBatch", "status": [True, 1, 1, True, False], "scale": [0, 0],
                         "endpoint": []} for i in range(500)}  # fmt: skip
    body = gzip.compress(json.dumps({"code": 0, "data": data}).encode())
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    server.script = [raw(head + body)]
    jobs = client_of(server).get_all_job_info()
    assert len(jobs) == 500 and jobs["job-7"].status.completed


def test_an_answer_exactly_at_the_cap_is_read(server):
    body = b'{"code": 0, "data": "' + b"y" * (CAP - 23) + b'"}'
    assert len(body) == CAP
    server.script = [raw(b"HTTP/1.1 200 OK\r\n\r\n" + body, keep=False)]
    assert len(client_of(server, max_response_bytes=CAP).tail_job(Job("JuliaBatch", "x"))) == CAP - 23


def test_an_error_page_is_read_only_as_far_as_it_is_shown(server):
    client = client_of(server, call_deadline=5.0)
    server.script = [endless(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")]
    error, _ = timed(client.get_system_status)
    assert isinstance(error, HTTPError) and error.status == 502 and error.body.startswith("xxxx")
    assert client.get_system_status() is True


def test_an_encoding_not_asked_for_is_an_unreadable_answer_unless_it_is_an_error_page(server):
    server.script = [
        raw(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc"),
        raw(b"HTTP/1.1 503 Busy\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc"),
    ]
    unreadable, _ = timed(client_of(server).list_jobs)
    assert isinstance(unreadable, InvalidResponse) and "content encoding 'br'" in str(unreadable)
    busy, _ = timed(client_of(server).list_jobs)
    assert isinstance(busy, HTTPError) and busy.status == 503 and busy.body == ""


# --- whose failure is it --------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, kind, whose",
    [
        (status(404), HTTPError, Blame.REFUSED),
        (status(400), HTTPError, Blame.REFUSED),
        (status(409), HTTPError, Blame.REFUSED),
        (status(414), HTTPError, Blame.REFUSED),
        (status(401), HTTPError, Blame.CONNECTION),
        (status(403), HTTPError, Blame.CONNECTION),
        (status(429), HTTPError, Blame.CONNECTION),
        (status(500), HTTPError, Blame.CONNECTION),
        (status(503), HTTPError, Blame.CONNECTION),
        (status(200, b'{"code": 17, "data": "no such job"}'), ApiError, Blame.REFUSED),
        (status(200, b'{"code": 1, "data": "internal"}'), ApiError, Blame.REFUSED),
        (status(200, b"<html>"), InvalidResponse, Blame.CONNECTION),
        (status(299, b"odd"), HTTPError, Blame.CONNECTION),
        (silent, TransportError, Blame.CONNECTION),
    ],
)
def test_blame_of_what_a_server_answers(server, action, kind, whose):
    server.script = [action]
    error, _ = timed(lambda: client_of(server).set_job_scale(Job("JuliaParBatch", "sim"), 2))
    assert type(error) is kind and blame(error) is whose
    assert_no_secret(error)


def test_blame_of_a_redirect(server):
    server.script = [raw(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere/?a=b\r\nContent-Length: 0\r\n\r\n")]
    error, _ = timed(client_of(server).list_jobs)
    assert isinstance(error, Redirected) and blame(error) is Blame.CONNECTION
    assert error.location == f"{server.url()}/elsewhere/"  # resolved, without the query


def test_blame_of_requests_refused_before_sending():
    client = Client(Context(url="http://127.0.0.1:9", token=TOKEN), retry=ONE)
    job = Job("JuliaBatch", "b")
    too_large, _ = timed(lambda: client.submit_job(job, run_volume="v", start_script="s" * 9000))
    bad_param, _ = timed(lambda: client.set_job_scale(job, -1))
    insecure, _ = timed(Client(Context(url="http://jr.example", token=TOKEN), retry=ONE).list_jobs)
    unreachable, _ = timed(client.list_jobs)  # nothing listens on port 9
    assert isinstance(too_large, RequestTooLarge) and blame(too_large) is Blame.REQUEST
    assert isinstance(bad_param, ParameterError) and blame(bad_param) is Blame.REQUEST
    assert isinstance(insecure, InsecureTransport) and blame(insecure) is Blame.REQUEST
    assert isinstance(unreachable, TransportError) and blame(unreachable) is Blame.CONNECTION


def test_blame_of_every_4xx_follows_its_meaning():
    for code in range(400, 500):
        expected = Blame.CONNECTION if code in CONNECTION_4XX else Blame.REFUSED
        assert blame(HTTPError("op", code, "")) is expected, code
    assert blame(JuliaRunError("cannot read the token file")) is Blame.CONNECTION
    assert blame(ResponseTooLarge("op", 10, read=11)) is Blame.CONNECTION
