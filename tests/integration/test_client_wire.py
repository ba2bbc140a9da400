"""What the client puts on the wire, and how it reads answers, against a recording HTTP server.

The server here is a real HTTP server on loopback that records each request line and plays
back scripted answers, so every byte the client sends can be pinned.
"""

import base64
import json
import logging
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from juliarun_operator.juliarun import (
    ApiError,
    Client,
    Context,
    HTTPError,
    InvalidResponse,
    Job,
    JobScale,
    JobStatus,
    ParameterError,
    RetryPolicy,
    TransportError,
)

from support.servers import QuietHandler

TOKEN = "s3cr3t-token-value"
TOKEN_B64 = base64.b64encode(TOKEN.encode()).decode()
FAST_RETRY = RetryPolicy(attempts=3, base=0.01, cap=0.02)


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lines: list[str] = []
        self.script: list[tuple[int, str]] = []  # answers to give, in order, then `default`
        self.default = (200, json.dumps({"code": 0, "data": None}))

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(QuietHandler):
    def do_GET(self):
        server = self.server
        server.lines.append(self.path)
        status, body = server.script.pop(0) if server.script else server.default
        if status == 0:  # hang up without answering
            self.close_connection = True
            return
        self.reply(status, body)


@pytest.fixture
def server():
    srv = Recorder()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def client(server):
    return Client(Context(url=server.url, token=TOKEN, namespace="team-a", read_timeout=2), retry=FAST_RETRY)


def answer(server, data, code=0, status=200):
    server.default = (status, json.dumps({"code": code, "data": data}))


AUTH = f"jruntok={TOKEN_B64.replace('=', '%3D')}&jrunns=team-a"
JOB = Job("JuliaParBatch", "sim-1")


@pytest.mark.parametrize(
    "call, data, line",
    [
        (lambda c: c.get_system_status(), True, f"/getSystemStatus/?{AUTH}"),
        (lambda c: c.list_jobs(), {}, f"/listJobs/?{AUTH}"),
        (lambda c: c.get_all_job_info(), {}, f"/getAllJobInfo/?{AUTH}"),
        (
            lambda c: c.get_job_status(JOB),
            [False, 0, 0, True, False],
            f"/getJobStatus/JuliaParBatch/?{AUTH}&name=sim-1",
        ),
        (lambda c: c.get_job_scale(JOB), [1, 2], f"/getJobScale/JuliaParBatch/?{AUTH}&name=sim-1"),
        (
            lambda c: c.set_job_scale(JOB, 4),
            True,
            f"/setJobScale/JuliaParBatch/?{AUTH}&name=sim-1&parallelism=4",
        ),
        (lambda c: c.get_job_endpoint(JOB), [], f"/getJobEndpoint/JuliaParBatch/?{AUTH}&name=sim-1"),
        (lambda c: c.delete_job(JOB), True, f"/deleteJob/JuliaParBatch/?{AUTH}&name=sim-1&force=false"),
        (
            lambda c: c.delete_job(JOB, force=True),
            True,
            f"/deleteJob/JuliaParBatch/?{AUTH}&name=sim-1&force=true",
        ),
        (lambda c: c.tail_job(JOB), "", f"/tailJob/JuliaParBatch/?{AUTH}&name=sim-1&count=50"),
        (
            lambda c: c.tail_job(JOB, stream="stderr", count=5),
            "",
            f"/tailJob/JuliaParBatch/?{AUTH}&name=sim-1&count=5&stream=stderr",
        ),
        (
            lambda c: c.get_encoded_url(JOB, 8080),
            "http://r/x",
            f"/getEncodedURL/JuliaParBatch/?{AUTH}&name=sim-1&port=8080",
        ),
        (
            lambda c: c.submit_job(
                JOB,
                run_volume="vol",
                start_script="run.jl",
                nworkers=2,
                cpu=0.5,
                ports={"web": (8080, 80)},
                additional_volumes=["a", "b"],
            ),
            None,
            f"/submitJob/JuliaParBatch/?{AUTH}&name=sim-1&run_volume=vol&start_script=run.jl"
            "&nworkers=2&cpu=0.5&ports=Dict%28%22web%22+%3D%3E+%288080%2C+80%29%29"
            "&additional_volumes=%5B%22a%22%2C+%22b%22%5D",
        ),
        (
            lambda c: c.update_job(JOB, cpu=1, external=True),
            None,
            f"/updateJob/JuliaParBatch/?{AUTH}&name=sim-1&cpu=1.0&external=true",
        ),
    ],
)
def test_request_line_of_every_call(server, client, call, data, line):
    answer(server, data)
    call(client)
    assert server.lines == [line]


def test_results_are_typed(server, client):
    answer(server, [True, 3, 4, True, False])
    assert client.get_job_status(JOB) == JobStatus(
        completed=True, workers_succeeded=3, workers_started=4, created=True, notebook=False
    )
    answer(server, [2, 4])
    assert client.get_job_scale(JOB) == JobScale(running=2, requested=4)
    answer(
        server,
        {
            "sim-1": {
                "type": "JuliaParBatch",
                "status": [False, 0, 2, True, False],
                "scale": [2, 2],
                "endpoint": ["10.0.0.1:80"],
            }
        },
    )
    info = client.get_all_job_info()["sim-1"]
    assert (info.type, info.scale.running, info.endpoints) == ("JuliaParBatch", 2, ["10.0.0.1:80"])


def test_values_cannot_add_or_change_parameters(server, client):
    client.submit_job(JOB, run_volume="v&jrunns=other&name=evil", start_script="a=b#c")
    query = parse_qsl(urlsplit(server.lines[0]).query)
    assert query.count(("jrunns", "team-a")) == 1 and len([k for k, _ in query if k == "jrunns"]) == 1
    assert dict(query)["run_volume"] == "v&jrunns=other&name=evil"
    assert dict(query)["start_script"] == "a=b#c"


def test_bad_names_and_parameters_send_nothing(server, client):
    with pytest.raises(ParameterError, match="name"):
        client.get_job_status(Job("JuliaBatch", "x&jrunns=other"))
    with pytest.raises(ParameterError, match="start_script"):
        client.submit_job(Job("JuliaBatch", "ok"), run_volume="v")
    assert server.lines == []


def test_api_error_carries_code_and_reason(server, client):
    answer(server, "no such job: sim-1", code=4)
    with pytest.raises(ApiError) as err:
        client.get_job_status(JOB)
    assert (err.value.code, err.value.reason, err.value.operation) == (
        4,
        "no such job: sim-1",
        "getJobStatus",
    )


def test_reads_retry_5xx_then_give_up_with_status_and_body(server, client):
    server.default = (503, "busy")
    with pytest.raises(HTTPError) as err:
        client.list_jobs()
    assert (err.value.status, err.value.body) == (503, "busy")
    assert len(server.lines) == FAST_RETRY.attempts


def test_reads_recover_after_transient_5xx(server, client):
    server.script = [(503, "busy"), (502, "bad gateway")]
    answer(server, {"a": {"type": "JuliaBatch"}})
    assert client.list_jobs() == {"a": "JuliaBatch"}
    assert len(server.lines) == 3


def test_submit_is_never_retried_blindly(server, client):
    server.default = (503, "busy")
    with pytest.raises(HTTPError):
        client.submit_job(JOB, run_volume="v", start_script="s")
    server.script = [(0, "")]
    with pytest.raises(TransportError):
        client.submit_job(JOB, run_volume="v", start_script="s")
    assert len(server.lines) == 2


def test_client_errors_are_not_retried(server, client):
    server.default = (404, "not here")
    with pytest.raises(HTTPError):
        client.list_jobs()
    assert len(server.lines) == 1


@pytest.mark.parametrize(
    "body, problem",
    [
        ("<html>oops</html>", "envelope"),
        (json.dumps({"data": 1}), "envelope"),
        (json.dumps({"code": "0", "data": 1}), "code"),
        (json.dumps({"code": 0, "data": [1]}), "unexpected"),
    ],
)
def test_invalid_responses(server, client, body, problem):
    server.default = (200, body)
    with pytest.raises(InvalidResponse, match=problem):
        client.get_job_scale(JOB)


def test_time_out_and_refused_connection_are_transport_errors(server):
    dead = Client(Context(url="http://127.0.0.1:9", token=TOKEN), retry=FAST_RETRY)
    with pytest.raises(TransportError, match="cannot reach"):
        dead.get_system_status()


def test_token_never_in_errors_reprs_or_logs(server, client, caplog):
    caplog.set_level(logging.DEBUG)
    failures = []
    for status, body in [(500, "x"), (200, "not json"), (200, json.dumps({"code": 2, "data": "bad token"}))]:
        server.default = (status, body)
        with pytest.raises(Exception) as err:
            client.get_system_status()
        failures.append(err)
    dead = Client(Context(url="http://127.0.0.1:9", token=TOKEN, read_timeout=1), retry=FAST_RETRY)
    with pytest.raises(TransportError) as err:
        dead.list_jobs()
    failures.append(err)
    texts = [caplog.text, repr(client), repr(client.context)]
    for failure in failures:
        exc = failure.value
        texts += [str(exc), repr(exc), str(exc.__context__), str(exc.__cause__)]
    joined = "\n".join(texts)
    assert "jruntok=" in caplog.text  # urllib3 did log the request line ...
    assert TOKEN not in joined and TOKEN_B64 not in joined  # ... without the token
