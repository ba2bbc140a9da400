"""Secrets and hostile input on the wire, over real HTTP on loopback: redirects, proxies,
error bodies that echo the request line, the request-line limit of a real aiohttp server,
and our server's handling of callers without a valid token."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import threading
import tracemalloc
from http.server import ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import pytest
import requests

from juliarun_operator.emulator import EmulatorConfig, running_emulator
from juliarun_operator.emulator.server import create_app
from juliarun_operator.juliarun import (
    Client,
    Context,
    HTTPError,
    Job,
    Redirected,
    RequestTooLarge,
    RetryPolicy,
)
from juliarun_operator.juliarun.client import MAX_REQUEST_LINE
from juliarun_operator.juliarun.errors import CODE_UNAUTHORIZED

from support.servers import QuietHandler

pytestmark = pytest.mark.integration

TOKEN = "wire-s3cret>>???token"  # base64 with '+', '/' and '=' padding
PASSWORD = "nb-pa$$word/with?chars"
ONE = RetryPolicy(attempts=1)


def token_forms(value: str) -> list[str]:
    raw = value.encode()
    std, safe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    bases = {value, std, std.rstrip("="), safe, safe.rstrip("=")}
    return sorted(
        {f for b in bases for f in (b, quote_plus(b), quote(b, safe=""), quote(b, safe="").lower())}
    )


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets or (TOKEN,):
        for form in token_forms(secret):
            assert form not in text, f"{form!r} in {text!r}"


class Recorder(ThreadingHTTPServer):
    """A loopback server answering every GET with a scripted status, headers and body."""

    daemon_threads = True

    def __init__(self, status=200, headers=None, body='{"code": 0, "data": {}}'):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status, self.headers, self.body = status, headers or {}, body
        self.requests: list[str] = []
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(QuietHandler):
    def do_GET(self):
        srv = self.server
        srv.requests.append(self.requestline)
        self.reply(srv.status, srv.body, srv.headers)


@pytest.fixture
def servers():
    made: list[Recorder] = []

    def make(**kwargs) -> Recorder:
        made.append(Recorder(**kwargs))
        return made[-1]

    yield make
    for s in made:
        s.stop()


# --- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_is_not_followed(servers, status):
    elsewhere = servers()
    origin = servers(
        status=status, headers={"Location": f"{elsewhere.url}/listJobs/?jruntok=stolen&jrunns=x#frag"}
    )
    client = Client(Context(url=origin.url, token=TOKEN, namespace="team"), retry=ONE)
    with pytest.raises(Redirected) as err:
        client.list_jobs()
    message = str(err.value)
    assert f"redirected to {elsewhere.url}/listJobs/" in message and f"HTTP {status}" in message
    assert "stolen" not in message and "jrunns" not in message and "#frag" not in message
    assert len(origin.requests) == 1 and elsewhere.requests == []  # the token went nowhere else


def test_a_relative_redirect_names_the_full_place(servers):
    origin = servers(status=302, headers={"Location": "/login?next=%2FlistJobs%2F%3Fjruntok%3Dabc"})
    with pytest.raises(Redirected) as err:
        Client(Context(url=origin.url, token=TOKEN), retry=ONE).list_jobs()
    assert err.value.location == f"{origin.url}/login" and "abc" not in str(err.value)


# --- proxies -----------------------------------------------------------------------------------


def test_environment_proxy_is_ignored_unless_asked(servers, monkeypatch):
    """A proxy sees the whole URL, token included: it is used only when asked for."""
    target, proxy = servers(), servers()
    for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    Client(Context(url=target.url, token=TOKEN, namespace="team"), retry=ONE).list_jobs()
    assert len(target.requests) == 1 and proxy.requests == []
    # The control: asked to, requests does send it through the proxy.
    asked = Context.from_env(
        {
            "JULIARUN_URL": target.url,
            "JULIARUN_TOKEN": TOKEN,
            "JULIARUN_NAMESPACE": "team",
            "JULIARUN_USE_ENV_PROXY": "true",
        }
    )
    Client(asked, retry=ONE).list_jobs()
    assert len(proxy.requests) == 1 and proxy.requests[0].startswith(f"GET {target.url}/listJobs/?")


# --- error bodies that echo the request ------------------------------------------------------


@pytest.mark.parametrize("status", [400, 502])
def test_an_echoed_request_line_leaves_no_secret_in_the_error(status, caplog):
    """The emulator's echo fault puts the whole request line (jruntok and passwd in it) in
    the error page; the client's exception, and the log, keep none of it."""
    with running_emulator(EmulatorConfig(faults={"*": {"echo_rate": 1, "echo_status": status}})) as emu:
        client = Client(
            Context(url=emu.url, token=TOKEN, namespace="team"),
            retry=RetryPolicy(attempts=2, base=0.01, cap=0.01),
        )
        with caplog.at_level(logging.DEBUG), pytest.raises(HTTPError) as err:
            client.submit_job(Job("Notebook", "nb"), run_volume="home", passwd=PASSWORD)
    exc = err.value
    assert exc.status == status and "jruntok=REDACTED" in str(exc) and "passwd=REDACTED" in exc.body
    for text in (str(exc), exc.body, repr(exc), caplog.text):
        assert_no_secret(text, TOKEN, PASSWORD)
    # The control: the body really did carry the token (percent-encoded) before scrubbing.
    with running_emulator(EmulatorConfig(faults={"*": {"echo_rate": 1}})) as emu:
        raw = requests.get(
            f"{emu.url}/listJobs/",
            params={"jruntok": base64.b64encode(TOKEN.encode()).decode(), "jrunns": "team"},
            timeout=5,
        )
    assert raw.status_code == 400 and quote_plus(base64.b64encode(TOKEN.encode()).decode()) in raw.text


# --- the request-line limit of a real aiohttp server -------------------------------------------


def test_the_client_limit_is_the_limit_of_an_aiohttp_server():
    """At the limit the server reads the request; past it the client refuses before sending.
    The client counts the whole request line (aiohttp's Python parser does); aiohttp's C
    parser counts only the target, so it reads up to 13 bytes more, and no further."""
    with running_emulator(EmulatorConfig()) as emu:
        client = Client(Context(url=emu.url, token=TOKEN, namespace="team"), retry=ONE)
        encoded_token = quote_plus(base64.b64encode(TOKEN.encode()).decode())
        base = len(
            f"GET /submitJob/JuliaBatch/?jruntok={encoded_token}"
            f"&jrunns=team&name=limit&run_volume=v&start_script= HTTP/1.1"
        )
        fits = "s" * (MAX_REQUEST_LINE - base)
        client.submit_job(Job("JuliaBatch", "limit"), run_volume="v", start_script=fits)  # no HTTPError
        assert emu.state.jobs["team"]["limit"].params["start_script"] == fits
        with pytest.raises(RequestTooLarge) as err:
            client.submit_job(Job("JuliaBatch", "limiu"), run_volume="v", start_script=fits + "s")
        assert err.value.param == "start_script" and err.value.size == MAX_REQUEST_LINE + 1
        assert "limiu" not in emu.state.jobs["team"]

        # The control: sent anyway with a target over 8,190 bytes, aiohttp refuses it and
        # echoes the request line, token included, in its error page.
        def raw(script: str) -> requests.Response:
            return requests.get(
                f"{emu.url}/submitJob/JuliaBatch/",
                timeout=5,
                params={
                    "jruntok": base64.b64encode(TOKEN.encode()).decode(),
                    "jrunns": "team",
                    "name": "limiv",
                    "run_volume": "v",
                    "start_script": script,
                },
            )

        assert raw(fits + "s" * 13).status_code == 200
        over = raw(fits + "s" * 14)
        assert over.status_code == 400 and f"jruntok={encoded_token[:20]}" in over.text


# --- our server: no valid token, nothing counted or stored -----------------------------------


def test_calls_without_a_valid_token_leave_counters_and_memory_as_they_were():
    config = EmulatorConfig(auth={"team": [TOKEN]})
    with running_emulator(config) as emu:
        session = requests.Session()

        def burst(n: int, offset: int) -> None:
            for i in range(offset, offset + n):
                token = ["", "%%%", base64.b64encode(f"wrong-{i}".encode()).decode()][i % 3]
                r = session.get(
                    f"{emu.url}/getJobStatus/JuliaBatch/",
                    timeout=5,
                    params={"jruntok": token, "jrunns": f"namespace-{i:05d}", "name": f"job-{i:05d}"},
                )
                assert r.json()["code"] == CODE_UNAUTHORIZED

        before = emu.counters()
        tracemalloc.start()
        try:
            burst(500, 0)  # under tracing too: what the first requests allocate for good
            gc.collect()
            start, _ = tracemalloc.get_traced_memory()
            burst(2000, 10_000)
            gc.collect()
            end, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert emu.counters() == before == {"operations": {}, "jobs": {}, "first_call": {}}
        assert emu.state.jobs == {}
        # Counting them (the old order) grew this by over 1 MB: 2,000 namespaces and names.
        assert end - start < 100_000, f"memory grew by {end - start} bytes"


def test_a_valid_token_is_still_counted():
    with running_emulator(EmulatorConfig(auth={"team": [TOKEN]})) as emu:
        Client(Context(url=emu.url, token=TOKEN, namespace="team"), retry=ONE).list_jobs()
        assert emu.counters()["operations"] == {"listJobs": 1}


@pytest.mark.parametrize(
    "host,warned",
    [
        ("0.0.0.0", True),  # noqa: S104 (the test is that binding all interfaces warns)
        ("::", True),
        ("10.1.2.3", True),
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
    ],
)
def test_listening_beyond_loopback_warns_about_the_admin_paths(host, warned, caplog):
    app = create_app(EmulatorConfig(host=host, auth={}))
    app.freeze()
    with caplog.at_level(logging.WARNING, logger="juliarun_operator.emulator"):
        asyncio.run(app.startup())  # the start-up hooks, without binding the address
    said = "admin paths under /_emulator/" in caplog.text and "no authentication" in caplog.text
    assert said == warned, caplog.text


def test_echo_fault_flags_are_checked():
    from juliarun_operator.emulator import faults as fl

    assert fl.normalise({"*": {"echo_rate": 1, "echo_status": 502}}) == {
        "*": {"echo_rate": 1.0, "echo_status": 502.0}
    }
    for bad in ({"*": {"echo_status": 200}}, {"*": {"echo_status": 404.5}}):
        with pytest.raises(ValueError, match="echo_status"):
            fl.normalise(bad)
    assert json.dumps(fl.normalise({"listJobs": {"echo_rate": 0.5}}))
