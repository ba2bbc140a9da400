"""The emulator over real HTTP: envelopes, errors, auth, namespaces, state file, faults, admin."""

import argparse
import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from juliarun_operator.emulator import EmulatorConfig, configure_parser, running_emulator
from juliarun_operator.juliarun.errors import (
    CODE_INJECTED_FAULT,
    CODE_INVALID_PARAMETER,
    CODE_JOB_EXISTS,
    CODE_NO_SUCH_JOB,
    CODE_UNAUTHORIZED,
)

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
FAST = {"create_delay": 0.05, "worker_delay": 0.05, "run_time": 0.5, "log_interval": 0.1}
BATCH = {"run_volume": "vol", "start_script": "run.jl"}


def fast(**overrides):
    return EmulatorConfig(**{**FAST, **overrides})


class Api:
    """A bare JuliaRun caller: GET with the token and namespace, no client library."""

    def __init__(self, url, namespace="team", token=TOKEN):
        self.url, self.namespace, self.token = url, namespace, token
        self.session = requests.Session()

    def raw(self, path, timeout=5, **query):
        params = {"jruntok": base64.b64encode(self.token.encode()).decode(), "jrunns": self.namespace}
        params.update(query)
        return self.session.get(self.url + path, params=params, timeout=timeout)

    def call(self, op, job_type=None, **query):
        path = f"/{op}/{job_type}/" if job_type else f"/{op}/"
        response = self.raw(path, **query)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"code", "data"}
        return body["code"], body["data"]

    def ok(self, op, job_type=None, **query):
        code, data = self.call(op, job_type, **query)
        assert code == 0, data
        return data


@pytest.fixture
def emulator():
    with running_emulator(fast()) as handle:
        yield handle


@pytest.fixture
def api(emulator):
    return Api(emulator.url)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


# --- every operation ----------------------------------------------------------------


def test_batch_job_walks_through_its_lifecycle(api):
    assert api.ok("getSystemStatus") is True
    assert api.ok("submitJob", "JuliaParBatch", name="calc", nworkers="2", **BATCH) is None
    assert api.ok("listJobs") == {"calc": {"type": "JuliaParBatch"}}
    assert api.ok("getJobStatus", "JuliaParBatch", name="calc")[3] is False  # scheduled
    wait_for(lambda: api.ok("getJobScale", "JuliaParBatch", name="calc") == [2, 2])
    status = api.ok("getJobStatus", "JuliaParBatch", name="calc")
    assert status == [False, 0, 2, True, False]
    wait_for(lambda: api.ok("getJobStatus", "JuliaParBatch", name="calc")[0])
    assert api.ok("getJobStatus", "JuliaParBatch", name="calc") == [True, 2, 2, True, False]
    log = api.ok("tailJob", "JuliaParBatch", name="calc")
    assert "worker 2 started" in log and log.endswith("job finished: 2 succeeded")
    assert api.ok("deleteJob", "JuliaParBatch", name="calc", force="false") is True
    assert api.ok("listJobs") == {}


def test_service_endpoints_scale_url_update_and_forced_delete(api):
    api.ok("submitJob", "Notebook", name="nb", run_volume="vol", passwd="pw")
    assert api.ok("getJobEndpoint", "Notebook", name="nb") == []
    endpoints = wait_for(lambda: api.ok("getJobEndpoint", "Notebook", name="nb"))
    assert len(endpoints) == 1 and endpoints[0].startswith("10.") and endpoints[0].endswith(":8888")
    assert api.ok("getJobStatus", "Notebook", name="nb")[4] is True  # notebook flag
    assert api.ok("setJobScale", "Notebook", name="nb", parallelism="3") is True
    wait_for(lambda: api.ok("getJobScale", "Notebook", name="nb") == [3, 3])
    url = api.ok("getEncodedURL", "Notebook", name="nb", port="8888")
    assert url.startswith("http://") and url.endswith("/")
    code, reason = api.call("getEncodedURL", "Notebook", name="nb", port="9999")
    assert code == CODE_INVALID_PARAMETER and "9999" in reason
    assert api.ok("updateJob", "Notebook", name="nb", ports='Dict("lab" => (8889, 9000))') is None
    assert api.ok("getJobEndpoint", "Notebook", name="nb")[0].endswith(":9000")
    code, reason = api.call("deleteJob", "Notebook", name="nb", force="false")
    assert code != 0 and "force" in reason
    assert api.ok("deleteJob", "Notebook", name="nb", force="true") is True
    assert api.ok("getAllJobInfo") == {}


def test_get_all_job_info_reports_every_job(api):
    api.ok("submitJob", "JuliaBatch", name="one", **BATCH)
    api.ok("submitJob", "MessageQ", name="mq", run_volume="vol", cfg_file="rabbit.conf")
    wait_for(lambda: api.ok("getJobStatus", "MessageQ", name="mq")[3])
    info = api.ok("getAllJobInfo")
    assert set(info) == {"one", "mq"}
    assert info["mq"]["type"] == "MessageQ" and info["mq"]["scale"] == [1, 1]
    assert len(info["mq"]["endpoint"]) == 4
    assert set(info["one"]) == {"type", "status", "scale", "endpoint"}


def test_tail_honours_count_and_stream(api):
    api.ok("submitJob", "JuliaParBatch", name="p", nworkers="2", **BATCH)
    wait_for(lambda: api.ok("getJobStatus", "JuliaParBatch", name="p")[0])
    every = api.ok("tailJob", "JuliaParBatch", name="p").split("\n")
    assert api.ok("tailJob", "JuliaParBatch", name="p", count="2").split("\n") == every[-2:]
    out = api.ok("tailJob", "JuliaParBatch", name="p", stream="stdout").split("\n")
    err = api.ok("tailJob", "JuliaParBatch", name="p", stream="stderr").split("\n")
    assert out and err and sorted(out + err) == sorted(every)
    assert any("progress" in line for line in out) and not any("progress" in line for line in err)
    code, reason = api.call("tailJob", "JuliaParBatch", name="p", stream="both")
    assert code == CODE_INVALID_PARAMETER and "stream" in reason


# --- errors -------------------------------------------------------------------------


def test_job_errors_have_codes_and_reasons(api):
    api.ok("submitJob", "JuliaBatch", name="b", **BATCH)
    code, reason = api.call("getJobStatus", "JuliaBatch", name="missing")
    assert code == CODE_NO_SUCH_JOB and "missing" in reason
    code, reason = api.call("getJobStatus", "Notebook", name="b")
    assert code == CODE_NO_SUCH_JOB and "JuliaBatch" in reason
    code, reason = api.call("submitJob", "JuliaBatch", name="b", **BATCH)
    assert code == CODE_JOB_EXISTS
    code, reason = api.call("submitJob", "JuliaBatch", name="c", run_volume="vol")
    assert code == CODE_INVALID_PARAMETER and "start_script" in reason
    code, reason = api.call("submitJob", "JuliaBatch", name="c", cpu="lots", **BATCH)
    assert code == CODE_INVALID_PARAMETER and "cpu" in reason
    code, reason = api.call("submitJob", "JuliaBatch", name="c", colour="red", **BATCH)
    assert code == CODE_INVALID_PARAMETER and "colour" in reason
    code, reason = api.call("submitJob", "JuliaBatch", name="Not_Valid", **BATCH)
    assert code == CODE_INVALID_PARAMETER and "name" in reason
    code, reason = api.call("getJobStatus", "JuliaBatch")
    assert code == CODE_INVALID_PARAMETER and "name" in reason
    code, reason = api.call("getJobStatus", "NoSuchType", name="b")
    assert code == CODE_INVALID_PARAMETER and "NoSuchType" in reason
    code, reason = api.call("setJobScale", "JuliaBatch", name="b", parallelism="2")
    assert code != 0 and "cannot be scaled" in reason
    api.ok("submitJob", "Notebook", name="nb", run_volume="vol")
    code, reason = api.call("setJobScale", "Notebook", name="nb", parallelism="-1")
    assert code == CODE_INVALID_PARAMETER and "parallelism" in reason
    code, reason = api.call("updateJob", "Notebook", name="nb", cpu="-2")
    assert code == CODE_INVALID_PARAMETER and "cpu" in reason


def test_unknown_operation_paths_are_404(api):
    assert api.raw("/deleteEverything/").status_code == 404
    assert api.raw("/getJobStatus/").status_code == 404  # a job operation needs the type
    assert api.raw("/listJobs/JuliaBatch/").status_code == 404
    assert api.raw("/listJobs").status_code == 404  # the trailing slash is part of the path


def test_missing_or_bad_token_is_refused(emulator):
    assert Api(emulator.url, token="").call("listJobs")[0] == CODE_UNAUTHORIZED
    response = requests.get(
        emulator.url + "/listJobs/", params={"jruntok": "%%%", "jrunns": "team"}, timeout=10
    )
    assert response.json()["code"] == CODE_UNAUTHORIZED
    code, reason = Api(emulator.url, namespace="").call("listJobs")
    assert code == CODE_INVALID_PARAMETER and "jrunns" in reason


def test_auth_file_accepts_only_listed_tokens_per_namespace(caplog):
    config = fast(auth={"team": [TOKEN], "other": ["other-token"]})
    with caplog.at_level(logging.INFO), running_emulator(config, access_log=True) as emu:
        assert Api(emu.url).ok("listJobs") == {}
        code, reason = Api(emu.url, token="wrong").call("listJobs")
        assert code == CODE_UNAUTHORIZED and "wrong" not in reason
        assert Api(emu.url, namespace="other").call("listJobs")[0] == CODE_UNAUTHORIZED
        assert Api(emu.url, namespace="other", token="other-token").ok("listJobs") == {}
        assert Api(emu.url, namespace="nobody").call("listJobs")[0] == CODE_UNAUTHORIZED
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/listJobs/" in logged  # the access log is on ...
    encoded = base64.b64encode(TOKEN.encode()).decode()
    for secret in (TOKEN, encoded, "jruntok", "other-token"):
        assert secret not in logged  # ... and holds no token nor query string


def test_without_auth_file_a_warning_is_logged(caplog):
    with caplog.at_level(logging.WARNING), running_emulator(fast()):
        pass
    assert any("any non-empty token" in r.getMessage() for r in caplog.records)


def test_namespaces_are_isolated(emulator):
    a, b = Api(emulator.url, "alpha"), Api(emulator.url, "beta")
    a.ok("submitJob", "JuliaBatch", name="job", **BATCH)
    assert b.ok("listJobs") == {} and b.ok("getAllJobInfo") == {}
    assert b.call("getJobStatus", "JuliaBatch", name="job")[0] == CODE_NO_SUCH_JOB
    assert b.call("deleteJob", "JuliaBatch", name="job", force="true")[0] == CODE_NO_SUCH_JOB
    b.ok("submitJob", "Notebook", name="job", run_volume="vol")
    assert a.ok("listJobs") == {"job": {"type": "JuliaBatch"}}


# --- the state file -----------------------------------------------------------------


def test_jobs_survive_a_restart_with_a_state_file(tmp_path):
    path = str(tmp_path / "state.json")
    with running_emulator(fast(state_file=path, run_time=0)) as emu:
        api = Api(emu.url)
        api.ok("submitJob", "JuliaParBatch", name="keep", nworkers="2", **BATCH)
        api.ok("submitJob", "Notebook", name="nb", run_volume="vol")
        wait_for(lambda: api.ok("getJobScale", "JuliaParBatch", name="keep") == [2, 2])
        api.ok("deleteJob", "Notebook", name="nb", force="true")
        # Written in the background, debounced: no restart needed to see it.
        wait_for(
            lambda: (
                os.path.exists(path)
                and [j["name"] for j in json.loads(Path(path).read_text())["jobs"]] == ["keep"]
            )
        )
        api.ok("submitJob", "Notebook", name="late", run_volume="vol")  # saved at shutdown
    with running_emulator(fast(state_file=path, run_time=0)) as emu:
        api = Api(emu.url)
        assert api.ok("listJobs") == {"keep": {"type": "JuliaParBatch"}, "late": {"type": "Notebook"}}
        assert api.ok("getJobScale", "JuliaParBatch", name="keep") == [2, 2]
        assert "scheduled" in api.ok("tailJob", "JuliaParBatch", name="keep")
    assert not [f for f in os.listdir(tmp_path) if f != "state.json"]  # no temporary left


# --- faults -------------------------------------------------------------------------


def test_error_fault_gives_code_99_and_does_nothing(emulator, api):
    emulator.set_faults({"submitJob": {"error_rate": 1}})
    code, reason = api.call("submitJob", "JuliaBatch", name="b", **BATCH)
    assert code == CODE_INJECTED_FAULT and "submitJob" in reason
    assert api.ok("listJobs") == {}  # other operations unaffected, nothing submitted


def test_http_5xx_malformed_and_drop_faults(emulator, api):
    emulator.set_faults({"listJobs": {"http_5xx_rate": 1}})
    assert api.raw("/listJobs/").status_code == 503
    emulator.set_faults({"listJobs": {"malformed_rate": 1}})
    response = api.raw("/listJobs/")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    emulator.set_faults({"listJobs": {"drop_rate": 1}})
    with pytest.raises(requests.ConnectionError):
        api.raw("/listJobs/")
    emulator.set_faults({})
    assert api.ok("listJobs") == {}


def test_latency_and_hang_faults(emulator, api):
    emulator.set_faults({"*": {"latency": 0.3}})
    start = time.monotonic()
    api.ok("getSystemStatus")
    assert time.monotonic() - start >= 0.3
    emulator.set_faults({"getSystemStatus": {"hang_rate": 1}})  # default: 300 s
    with pytest.raises(requests.Timeout):
        api.raw("/getSystemStatus/", timeout=0.5)


def test_a_hanging_request_does_not_hold_up_shutdown():
    with running_emulator(fast(faults={"*": {"hang_rate": 1, "hang_seconds": 60}})) as emu:
        with pytest.raises(requests.Timeout):
            Api(emu.url).raw("/listJobs/", timeout=0.2)
        start = time.monotonic()
    assert time.monotonic() - start < 5


def test_system_status_switch(emulator, api):
    emulator.set_faults({"system_status": False})
    assert api.ok("getSystemStatus") is False
    emulator.set_faults({})
    assert api.ok("getSystemStatus") is True


def test_operation_faults_override_the_default(emulator, api):
    emulator.set_faults({"*": {"error_rate": 1}, "listJobs": {"error_rate": 0}})
    assert api.call("getSystemStatus")[0] == CODE_INJECTED_FAULT
    assert api.ok("listJobs") == {}


def outcomes(seed, n=40):
    with running_emulator(fast(seed=seed, faults={"*": {"error_rate": 0.5}})) as emu:
        api = Api(emu.url)
        return [api.call("getSystemStatus")[0] for _ in range(n)]


def test_seeded_faults_are_reproducible():
    first = outcomes(7)
    assert first == outcomes(7)
    assert 0 < first.count(CODE_INJECTED_FAULT) < len(first)
    assert first != outcomes(8)


# --- counters and the admin paths ---------------------------------------------------


def test_counters_count_operations_and_job_calls_and_reset(emulator, api):
    before = time.time()
    api.ok("submitJob", "JuliaBatch", name="b", **BATCH)
    between = time.time()
    api.ok("getJobStatus", "JuliaBatch", name="b")
    api.ok("getJobStatus", "JuliaBatch", name="b")
    Api(emulator.url, namespace="other").ok("listJobs")
    emulator.set_faults({"getJobStatus": {"http_5xx_rate": 1}})
    api.raw("/getJobStatus/JuliaBatch/", name="b")  # failed requests count too
    counters = requests.get(emulator.url + "/_emulator/counters", timeout=10).json()
    assert counters["operations"] == {"submitJob": 1, "getJobStatus": 3, "listJobs": 1}
    assert counters["jobs"] == {"team": {"b": {"submitJob": 1, "getJobStatus": 3}}}
    first = counters["first_call"]["team"]["b"]
    assert before <= first["submitJob"] <= between <= first["getJobStatus"] <= time.time()
    assert emulator.counters() == counters
    reset = requests.post(emulator.url + "/_emulator/counters/reset", timeout=10)
    assert reset.json() == {"operations": {}, "jobs": {}, "first_call": {}}
    assert requests.get(emulator.url + "/_emulator/counters", timeout=10).json()["operations"] == {}


def test_admin_faults_get_put_delete(emulator, api):
    admin = emulator.url + "/_emulator/faults"
    assert requests.get(admin, timeout=10).json() == {}
    config = {"*": {"latency": 0.01}, "listJobs": {"error_rate": 1}, "system_status": False}
    assert requests.put(admin, json=config, timeout=10).json() == config
    assert requests.get(admin, timeout=10).json() == config
    assert api.call("listJobs")[0] == CODE_INJECTED_FAULT
    for bad in ({"listJob": {}}, {"*": {"explode_rate": 1}}, {"*": {"error_rate": 2}}, [1]):
        response = requests.put(admin, json=bad, timeout=10)
        assert response.status_code == 400 and response.json()["error"]
    assert requests.get(admin, timeout=10).json() == config  # a bad PUT changes nothing
    assert requests.delete(admin, timeout=10).json() == {}
    assert api.ok("listJobs") == {}


def test_healthz_counts_jobs(emulator, api):
    api.ok("submitJob", "JuliaBatch", name="b", **BATCH)
    assert requests.get(emulator.url + "/_emulator/healthz", timeout=10).json() == {"ok": True, "jobs": 1}


# --- the command line ---------------------------------------------------------------


def parse(*argv):
    parser = argparse.ArgumentParser()
    configure_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["emulator", *argv])


def test_subcommand_flags():
    from juliarun_operator.emulator.run import config_from_args

    args = parse(
        "--port",
        "0",
        "--create-delay",
        "0",
        "--fault",
        "*:latency=0.5",
        "--fault",
        "getJobStatus:error_rate=0.25",
        "--fault",
        "system_status=false",
        "--seed",
        "3",
        "--run-time",
        "0",
    )
    config = config_from_args(args)
    assert callable(args.func)
    assert (config.port, config.create_delay, config.run_time, config.seed) == (0, 0.0, 0.0, 3)
    assert config.faults == {
        "*": {"latency": 0.5},
        "getJobStatus": {"error_rate": 0.25},
        "system_status": False,
    }
    assert parse().host == "127.0.0.1" and parse().port == 8080


def test_a_jobs_fault_flag_fails_the_matching_submits():
    """`--fault jobs:PATTERN=FAIL:COUNT`: the first COUNT matching jobs fail, the rest succeed."""
    from juliarun_operator.emulator.run import config_from_args

    # The flag as README.md writes it.
    faults = config_from_args(parse("--fault", "jobs:team-a-train-*=all:1")).faults
    names = ("team-a-train-1", "team-a-train-2", "other")
    with running_emulator(fast(faults=faults)) as emu:
        api = Api(emu.url)
        for name in names:
            api.ok("submitJob", "JuliaBatch", name=name, **BATCH)
        statuses = wait_for(
            lambda: (
                (s := [api.ok("getJobStatus", "JuliaBatch", name=n) for n in names])
                and all(x[0] for x in s)
                and s
            )
        )
    # [completed, succeeded, started, created, notebook]: the first match failed, no other.
    assert {n: s[1] for n, s in zip(names, statuses, strict=True)} == {
        "team-a-train-1": 0,
        "team-a-train-2": 1,
        "other": 1,
    }


def test_bad_fault_flag_is_an_error_exit(capsys):
    args = parse("--fault", "*:explode=1")
    assert args.func(args) == 2
    assert "explode" in capsys.readouterr().err


def test_module_runs_until_sigterm(tmp_path):
    auth = tmp_path / "auth.yaml"
    auth.write_text(f"team:\n  - {TOKEN}\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "juliarun_operator.emulator",
            "--port",
            "0",
            "--auth",
            str(auth),
            "--state",
            str(tmp_path / "state.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.split()[-1]
        api = Api(url)
        api.ok("submitJob", "JuliaBatch", name="b", **BATCH)
        assert Api(url, token="nope").call("listJobs")[0] == CODE_UNAUTHORIZED
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "any non-empty token" not in err and TOKEN not in err and "jruntok" not in err
    assert "/submitJob/JuliaBatch/" in err  # access log, path only
    assert [j["name"] for j in json.loads((tmp_path / "state.json").read_text())["jobs"]] == ["b"]


def test_corrupt_state_file_stops_start_up_and_is_left_alone(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"format": 1, "jobs": [')
    with pytest.raises(ValueError, match=r"state\.json"), running_emulator(fast(state_file=str(path))):
        pass
    assert path.read_text() == '{"format": 1, "jobs": ['
