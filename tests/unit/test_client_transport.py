"""The client's transport rules, checked before anything reaches the network: plain http,
proxies from the environment, request size, URL credentials, and the token file."""

from __future__ import annotations

import logging
import os
import time
from contextlib import suppress
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from juliarun_dev.gen.spec import item_overhead
from juliarun_operator.juliarun import (
    Client,
    Context,
    InsecureTransport,
    Job,
    JuliaRunError,
    RequestTooLarge,
    RetryPolicy,
    TokenFile,
    TransportError,
    public_url,
)
from juliarun_operator.juliarun import jobtypes as jt
from juliarun_operator.juliarun import redact as rd
from juliarun_operator.juliarun.client import MAX_REQUEST_LINE, is_loopback

TOKEN = "unit-s3cret-token"
JOB = Job("JuliaBatch", "hello")
ONE = RetryPolicy(attempts=1)


class NoNetwork(requests.Session):
    """A session that records what it would send and never sends it."""

    def __init__(self):
        super().__init__()
        self.sent: list[str] = []

    def get(self, url, params=None, **kwargs):
        self.sent.append(requests.Request("GET", url, params=params).prepare().url)
        raise requests.ConnectionError("Connection refused (no network in unit tests)")


# --- plain http -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://juliarunremote-svc.juliarun:80", "http://10.0.0.7", "http://juliarun.example.com/base/"]
)
def test_plain_http_to_another_host_is_refused_before_sending(url):
    session = NoNetwork()
    client = Client(Context(url=url, token=TOKEN), session=session, retry=ONE)
    with pytest.raises(InsecureTransport) as err:
        client.list_jobs()
    assert "JULIARUN_ALLOW_INSECURE_HTTP" in str(err.value) and session.sent == []


@pytest.mark.parametrize("url", ["ftp://jr.example/", "file:///etc/passwd", "jr.example:80", "http://"])
def test_other_schemes_and_hostless_urls_are_refused(url):
    session = NoNetwork()
    with pytest.raises(InsecureTransport):
        Client(Context(url=url, token=TOKEN), session=session, retry=ONE).get_system_status()
    assert session.sent == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.9.9.9",
        "http://localhost:1",
        "http://[::1]:8080",
        "https://jr.example",
    ],
)
def test_https_and_loopback_are_allowed(url):
    session = NoNetwork()
    with pytest.raises(TransportError):  # it got as far as the (fake) network
        Client(Context(url=url, token=TOKEN), session=session, retry=ONE).list_jobs()
    assert len(session.sent) == 1


def test_allowed_plain_http_is_sent_and_warned_about(caplog):
    session = NoNetwork()
    context = Context.from_env(
        {
            "JULIARUN_URL": "http://jr.internal:80",
            "JULIARUN_TOKEN": TOKEN,
            "JULIARUN_ALLOW_INSECURE_HTTP": "true",
        }
    )
    with caplog.at_level(logging.WARNING, logger="juliarun_operator.juliarun.client"):
        client = Client(context, session=session, retry=ONE)
    assert "over plain http" in caplog.text and "http://jr.internal:80" in caplog.text
    with pytest.raises(TransportError):
        client.list_jobs()
    assert len(session.sent) == 1


def test_loopback_detection_needs_no_dns():
    assert is_loopback("127.0.0.1") and is_loopback("LOCALHOST") and is_loopback("::1")
    assert not is_loopback("localhost.example.com") and not is_loopback("10.0.0.1")
    assert not is_loopback("127.0.0.1.nip.io")


# --- proxies ----------------------------------------------------------------------------------


def test_environment_proxies_are_ignored_unless_asked():
    assert Client(Context(url="https://jr.example", token=TOKEN)).session.trust_env is False
    asked = Context.from_env(
        {"JULIARUN_URL": "https://jr.example", "JULIARUN_TOKEN": TOKEN, "JULIARUN_USE_ENV_PROXY": "true"}
    )
    assert asked.use_env_proxy and Client(asked).session.trust_env is True


# --- request size -----------------------------------------------------------------------------


def line_length(url: str) -> int:
    parts = urlsplit(url)
    return len(f"GET {parts.path}?{parts.query} HTTP/1.1")


def submit_with_script_of(length: int) -> NoNetwork:
    session = NoNetwork()
    client = Client(
        Context(url="http://127.0.0.1:9", token=TOKEN, namespace="team-a"), session=session, retry=ONE
    )
    with suppress(TransportError):  # NoNetwork refuses every request; only what was sent matters
        client.submit_job(JOB, run_volume="v", start_script="s" * length)
    return session


def test_a_request_over_the_limit_is_refused_naming_the_parameter():
    session = NoNetwork()
    client = Client(
        Context(url="http://127.0.0.1:9", token=TOKEN, namespace="team-a"), session=session, retry=ONE
    )
    with pytest.raises(RequestTooLarge) as err:
        client.submit_job(JOB, run_volume="v", start_script="println(1)\n" * 900)
    assert err.value.param == "start_script" and err.value.size > MAX_REQUEST_LINE
    assert "parameter start_script (startScript in a JuliaRunJob)" in str(err.value) and "8,190" in str(
        err.value
    )
    assert session.sent == []


def test_the_limit_is_exact():
    # Find the script length whose request line is exactly the limit.
    probe = submit_with_script_of(100)
    fits = 100 + MAX_REQUEST_LINE - line_length(probe.sent[0])
    assert line_length(submit_with_script_of(fits).sent[0]) == MAX_REQUEST_LINE
    with pytest.raises(RequestTooLarge):
        Client(
            Context(url="http://127.0.0.1:9", token=TOKEN, namespace="team-a"), session=NoNetwork(), retry=ONE
        ).submit_job(JOB, run_volume="v", start_script="s" * (fits + 1))


def test_a_huge_token_is_named_as_the_token():
    client = Client(Context(url="http://127.0.0.1:9", token="t" * 9000), session=NoNetwork(), retry=ONE)
    with pytest.raises(RequestTooLarge) as err:
        client.list_jobs()
    assert "the token (jruntok)" in str(err.value) and "t" * 50 not in str(err.value)


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=300).filter(lambda s: "\x00" not in s), st.text(min_size=1, max_size=40))
def test_the_size_counted_is_the_size_sent(script, namespace):
    """The length the client checks is the length requests puts on the wire, whatever the text."""
    session = NoNetwork()
    client = Client(
        Context(
            url="http://127.0.0.1:9/base/",
            token=TOKEN,
            namespace=namespace,
            max_request_line=line_length("http://x/?") + 10_000,
        ),
        session=session,
        retry=ONE,
    )
    with suppress(TransportError):
        client.submit_job(JOB, run_volume="v", start_script=script)
    (url,) = session.sent
    sent = line_length(url)
    tight = Client(
        Context(url="http://127.0.0.1:9/base/", token=TOKEN, namespace=namespace, max_request_line=sent - 1),
        session=NoNetwork(),
        retry=ONE,
    )
    with pytest.raises(RequestTooLarge) as err:
        tight.submit_job(JOB, run_volume="v", start_script=script)
    assert err.value.size == sent


# --- URL credentials ---------------------------------------------------------------------------


def test_url_credentials_are_never_printed():
    context = Context(url="https://alice:pa55w0rd-x@jr.example:8443/base?x=1", token=TOKEN)
    assert "pa55w0rd-x" not in context.describe() and "alice" not in context.describe()
    assert "jr.example:8443/base" in context.describe()
    assert "pa55w0rd-x" not in repr(context) and TOKEN not in repr(context)
    client = Client(context, session=NoNetwork(), retry=ONE)
    with pytest.raises(TransportError) as err:
        client.list_jobs()
    assert "pa55w0rd-x" not in str(err.value) and "alice" not in str(err.value)
    assert "pa55w0rd-x" not in repr(client)
    # Registered: any other message that carries it is scrubbed too.
    assert "pa55w0rd-x" not in rd.redact("the password is pa55w0rd-x")


def test_public_url():
    assert public_url("https://u:p@h:1/p/?jruntok=x#f") == "https://h:1/p/"
    assert public_url("http://[::1]:8080/") == "http://[::1]:8080/"


# --- the token file -----------------------------------------------------------------------------


def test_token_file_is_read_again_when_it_changes(tmp_path):
    path = tmp_path / "token"
    path.write_text("first-token-aaaa\n")
    tokens = TokenFile(path)
    assert tokens.read() == "first-token-aaaa"
    path.write_text("second-token-bbbb\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a coarse clock could hide the write
    assert tokens.read() == "second-token-bbbb"
    assert rd.redact("second-token-bbbb") == "REDACTED"


def test_token_file_rotated_as_kubelet_does(tmp_path):
    """Kubelet's projected volumes: token -> ..data/token, and ..data a symlink swapped atomically."""
    for n, token in ((1, "rotated-token-one"), (2, "rotated-token-two")):
        (tmp_path / f"..v{n}").mkdir()
        (tmp_path / f"..v{n}" / "token").write_text(token)
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "token").symlink_to("..data/token")
    client = Client(
        Context.from_env(
            {"JULIARUN_URL": "http://127.0.0.1:9", "JULIARUN_TOKEN_FILE": str(tmp_path / "token")}
        ),
        session=NoNetwork(),
        retry=ONE,
    )
    assert client.current_token() == "rotated-token-one"
    (tmp_path / "..data_tmp").symlink_to("..v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert client.current_token() == "rotated-token-two"


def test_token_file_that_vanishes_keeps_the_last_token(tmp_path, caplog):
    path = tmp_path / "token"
    path.write_text("kept-token-cccc")
    tokens = TokenFile(path)
    assert tokens.read() == "kept-token-cccc"
    path.unlink()
    with caplog.at_level(logging.WARNING):
        assert tokens.read() == "kept-token-cccc"
    assert "token file" in caplog.text and "kept-token-cccc" not in caplog.text


def test_a_missing_token_file_is_an_error_at_start(tmp_path):
    with pytest.raises(JuliaRunError, match="cannot read"):
        Context.from_env({"JULIARUN_TOKEN_FILE": str(tmp_path / "absent")})


def at_the_bound(lists: str) -> dict:
    """JuliaParBatch parameters that the CRD's size rule counts at exactly its bound, the budget
    spent on one kind of list item at a time (the costliest on the wire per character counted):
    the counting is gen.spec's (item_overhead), the sending the client's."""
    params: dict = {"run_volume": "v", "start_script": "s"}
    spent = 2
    if lists == "variables":
        for key in ("envvars", "worker_envvars"):
            params[key] = {f"V{k}": "" for k in range(jt.MAX_ITEMS)}
            spent += sum(len(n) + item_overhead(jt.ENV) for n in params[key])
    if lists in ("variables", "ports"):
        params["ports"] = {}
        while len(params["ports"]) < jt.MAX_ITEMS:
            name = f"P{len(params['ports'])}"
            if spent + len(name) + item_overhead(jt.PORTS) > jt.MAX_PARAMS_TEXT:
                break
            params["ports"][name] = (65535, 65535)
            spent += len(name) + item_overhead(jt.PORTS)
    if lists == "volumes":
        params["additional_volumes"] = [f"{k:02d}" for k in range(jt.MAX_ITEMS)]
        spent += sum(len(v) + item_overhead(jt.STRING_LIST) for v in params["additional_volumes"])
    params["start_script"] += "s" * (jt.MAX_PARAMS_TEXT - spent)
    return params


@pytest.mark.parametrize("lists", ["variables", "ports", "volumes", "none"])
def test_what_the_crd_admits_is_sent_with_a_service_account_token(lists):
    """The CRD's bound on the parameters (5,120 characters, list items with their quotes and
    separators) leaves room for the rest of the request line: a ServiceAccount token (about
    1 KB; 2,048 characters here), the longest namespace and job name, every other parameter."""
    session = NoNetwork()
    context = Context(url="http://127.0.0.1:9", token="t" * 2048, namespace="n" * 63)
    client = Client(context, session=session, retry=ONE)
    extras = {"cpu": 0.125, "memory": "1023.5Gi", "worker_memory": "1023.5Gi", "worker_cpu": 0.125}
    with suppress(TransportError):  # NoNetwork refuses every request; only that it was tried matters
        client.submit_job(Job("JuliaParBatch", "j" * 63), **at_the_bound(lists), **extras)
    assert len(session.sent) == 1
