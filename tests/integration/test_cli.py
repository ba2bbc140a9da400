"""The `juliarun` command line against the JuliaRun emulator over real HTTP.

Every run checks that neither the token nor its base64 form (what travels in `jruntok`)
reaches stdout or stderr, on success and on failure alike.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from juliarun_operator import cli
from juliarun_operator.emulator import EmulatorConfig, running_emulator

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-token-value"
SECRETS = (TOKEN, base64.b64encode(TOKEN.encode()).decode())
NAMESPACE = "cli-test"
JUJU = ["run_volume=jobs", "start_script=sim.jl"]  # what every Julia batch type needs
CONSOLE_SCRIPT = Path(sys.executable).parent / "juliarun"


@pytest.fixture
def server(monkeypatch):
    """An emulator that accepts only TOKEN in NAMESPACE, and the environment to reach it."""
    config = EmulatorConfig(create_delay=0.05, worker_delay=0.05, run_time=0, auth={NAMESPACE: [TOKEN]})
    with running_emulator(config) as handle:
        for name in ("JULIARUN_TOKEN_FILE", "JULIARUN_CA_FILE", "JULIARUN_INSECURE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("JULIARUN_URL", handle.url)
        monkeypatch.setenv("JULIARUN_TOKEN", TOKEN)
        monkeypatch.setenv("JULIARUN_NAMESPACE", NAMESPACE)
        yield handle


@pytest.fixture
def juliarun(capsys):
    """Run main(argv): (exit code, stdout, stderr), having checked no secret was printed."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        assert_no_secret(out + err)
        return code, out, err

    return run


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def submit(juliarun, job_type: str, name: str, *params: str) -> None:
    code, out, err = juliarun("submit", job_type, name, *params)
    assert (code, out, err) == (0, f"submitted {job_type} {name}\n", "")


def state_of(juliarun, name: str) -> str:
    code, out, _ = juliarun("status", name, "-o", "json")
    assert code == 0
    return json.loads(out)["state"]


# --- a job's life -----------------------------------------------------------------------


def test_a_job_through_its_life(server, juliarun):
    assert juliarun("system")[0] == 0
    submit(
        juliarun,
        "JuliaParBatch",
        "sim",
        *JUJU,
        "nworkers=1",
        "cpu=0.5",
        "additional_volumes=[data, scratch]",
        "ports={http: [8080, 80]}",
    )
    wait_until(lambda: state_of(juliarun, "sim") == "Running")

    code, out, _ = juliarun("scale", "sim", "3", "--wait", "--timeout", "5")
    assert code == 0 and out == "sim: requested 3\nsim: 3 running\n"
    code, out, _ = juliarun("scale", "sim")
    assert out.split("\n")[1].split() == ["sim", "3", "3"]

    code, out, _ = juliarun("endpoint", "sim")
    assert code == 0 and out.splitlines()[0] == "ENDPOINT" and out.splitlines()[1].endswith(":80")

    code, out, _ = juliarun("logs", "sim", "--count", "2", "--stream", "stderr")
    assert code == 0 and out.endswith("worker 3 started\n") and len(out.splitlines()) == 2

    code, out, _ = juliarun("url", "sim", "80")
    assert code == 0 and out.startswith("http://") and "/jrun/" in out

    code, out, _ = juliarun("update", "sim", "worker_cpu=2", "image=1.0")
    assert (code, out) == (0, "updated JuliaParBatch sim: worker_cpu, image\n")

    code, out, _ = juliarun("jobs", "--all")
    assert out.splitlines()[0].split() == ["NAME", "TYPE", "STATUS", "RUNNING/REQUESTED", "ENDPOINT"]
    assert out.splitlines()[1].split()[:4] == ["sim", "JuliaParBatch", "Running", "3/3"]

    assert juliarun("delete", "sim", "--force") == (0, "deleted JuliaParBatch sim\n", "")
    code, out, err = juliarun("jobs")
    assert (code, out) == (0, "") and err.startswith("no jobs in JuliaRun namespace cli-test")
    assert json.loads(juliarun("jobs", "-o", "json")[1]) == []


def test_parameters_reach_juliarun_with_their_kinds(server, juliarun):
    submit(
        juliarun,
        "JuliaBatch",
        "kinds",
        "run_volume=jobs",
        "start_script=yes",
        "image=1.0",
        "cpu=0.5",
        "external=true",
        "memory=4Gi",
        "envvars={DEBUG: 1}",
        "additional_volumes=[data, scratch]",
        "ports={http: [8080, 80]}",
    )
    params = server.state.jobs[NAMESPACE]["kinds"].params
    assert params == {
        "run_volume": "jobs",
        "start_script": "yes",
        "image": "1.0",
        "cpu": 0.5,
        "external": True,
        "memory": "4Gi",
        "envvars": {"DEBUG": "1"},
        "additional_volumes": ["data", "scratch"],
        "ports": {"http": (8080, 80)},
    }


def test_status_goes_from_scheduled_to_running(monkeypatch, juliarun):
    config = EmulatorConfig(create_delay=0.5, worker_delay=0.05, run_time=0, auth={NAMESPACE: [TOKEN]})
    with running_emulator(config) as handle:
        monkeypatch.setenv("JULIARUN_URL", handle.url)
        monkeypatch.setenv("JULIARUN_TOKEN", TOKEN)
        monkeypatch.setenv("JULIARUN_NAMESPACE", NAMESPACE)
        submit(juliarun, "JuliaBatch", "slow", *JUJU)
        code, out, _ = juliarun("status", "slow")
        assert code == 0
        assert out.splitlines()[1].split()[:4] == ["slow", "JuliaBatch", "Scheduled", "false"]
        wait_until(lambda: state_of(juliarun, "slow") == "Running")


# --- output formats ---------------------------------------------------------------------


def test_every_data_command_in_every_format(server, juliarun):
    submit(juliarun, "Notebook", "nb", "run_volume=jobs")
    wait_until(lambda: state_of(juliarun, "nb") == "Running")
    expected = {
        ("system",): {"ready": True, "url": server.url, "namespace": NAMESPACE},
        ("jobs",): [{"name": "nb", "type": "Notebook"}],
        ("scale", "nb"): {"name": "nb", "running": 0, "requested": 0},
        ("endpoint", "nb"): [server.state.jobs[NAMESPACE]["nb"].ip + ":8888"],
    }
    for command, data in expected.items():
        for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
            code, out, err = juliarun(*command, "-o", fmt)
            assert (code, err) == (0, "") and load(out) == data, (command, fmt)
        code, out, _ = juliarun(*command, "-o", "table")
        assert code == 0 and out.strip()

    status = json.loads(juliarun("status", "nb", "-o", "json")[1])
    assert status == {
        "name": "nb",
        "type": "Notebook",
        "state": "Running",
        "completed": False,
        "workers_succeeded": 0,
        "workers_started": 0,
        "created": True,
        "notebook": True,
    }
    assert yaml.safe_load(juliarun("status", "nb", "-o", "yaml")[1]) == status

    (info,) = yaml.safe_load(juliarun("jobs", "--all", "-o", "yaml")[1])
    assert info["name"] == "nb" and info["state"] == "Running"
    assert info["scale"] == {"running": 0, "requested": 0} and info["status"]["notebook"] is True
    assert json.loads(juliarun("jobs", "--all", "-o", "json")[1]) == [info]

    types = json.loads(juliarun("types", "-o", "json")[1])
    assert [t["type"] for t in types][:2] == ["JuliaBatch", "JuliaParBatch"]


# --- type lookup ------------------------------------------------------------------------


def test_the_type_is_looked_up_by_name_unless_given(server, juliarun):
    def list_calls() -> int:
        return server.counters()["operations"].get("listJobs", 0)

    submit(juliarun, "Generic", "gen", "run_volume=jobs", "image=busybox")
    assert juliarun("scale", "gen")[0] == 0
    assert list_calls() == 1
    assert juliarun("scale", "gen", "--type", "Generic")[0] == 0
    assert juliarun("status", "gen", "-t", "Generic")[0] == 0
    assert list_calls() == 1  # --type spares the listJobs round trip

    code, _, err = juliarun("status", "gen", "--type", "JuliaBatch")
    assert code == 1
    assert_one_error_line(err, "getJobStatus", "not a JuliaBatch job")

    code, _, err = juliarun("status", "nobody")
    assert code == 1
    assert_one_error_line(err, "no job named 'nobody'", "namespace cli-test")


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["submit", "JuliaBatch", "p", *JUJU, "colour=red"], ["does not take parameter 'colour'"]),
        (["submit", "JuliaBatch", "p", "run_volume=jobs"], ["needs parameter 'start_script'"]),
        (["submit", "JuliaBatch", "p", *JUJU, "cpu=lots"], ["parameter cpu: expected a non-negative number"]),
        (["submit", "JuliaBatch", "p", *JUJU, "memory=lots"], ["parameter memory"]),
        (["submit", "JuliaBatch", "p", *JUJU, "ports={http: [80"], ["parameter ports: cannot read"]),
        (["submit", "JuliaBatch", "Bad_Name", *JUJU], ["invalid job name 'Bad_Name'"]),
        (["update", "p", "nworkers"], ["expected PARAM=VALUE, got 'nworkers'"]),
        (["update", "p"], ["nothing to update"]),
    ],
)
def test_parameter_errors_send_nothing(server, juliarun, argv, fragments):
    before = server.counters()
    code, out, err = juliarun(*argv)
    assert (code, out) == (1, "")
    assert_one_error_line(err, *fragments)
    assert server.counters() == before


def test_juliarun_refusals_are_one_line(server, juliarun):
    submit(juliarun, "JuliaBatch", "once", *JUJU)
    code, _, err = juliarun("submit", "JuliaBatch", "once", *JUJU)
    assert code == 1
    assert_one_error_line(err, "submitJob: JuliaRun error 5", "already exists")

    wait_until(lambda: state_of(juliarun, "once") == "Running")
    code, _, err = juliarun("scale", "once", "2")
    assert code == 1
    assert_one_error_line(err, "setJobScale", "cannot be scaled")

    code, _, err = juliarun("delete", "once")
    assert code == 1
    assert_one_error_line(err, "deleteJob", "force=true")

    code, _, err = juliarun("url", "once", "1234")
    assert code == 1
    assert_one_error_line(err, "getEncodedURL", "does not expose port 1234")


def test_system_not_ready_exits_1(server, juliarun):
    server.set_faults({"system_status": False})
    code, out, err = juliarun("system", "-o", "json")
    assert code == 1 and json.loads(out)["ready"] is False and err == ""


def test_scale_wait_times_out_with_one_line(monkeypatch, juliarun):
    config = EmulatorConfig(create_delay=0.05, worker_delay=10, run_time=0, auth={NAMESPACE: [TOKEN]})
    with running_emulator(config) as handle:
        monkeypatch.setenv("JULIARUN_URL", handle.url)
        monkeypatch.setenv("JULIARUN_TOKEN", TOKEN)
        monkeypatch.setenv("JULIARUN_NAMESPACE", NAMESPACE)
        submit(juliarun, "JuliaParBatch", "lazy", *JUJU)
        code, _, err = juliarun("scale", "lazy", "2", "--wait", "--timeout", "0.3")
        assert code == 1
        assert_one_error_line(err, "lazy: 0 of 2 workers after 0.3 s")


def test_a_refused_token_is_an_error_without_the_token(server, juliarun, monkeypatch):
    monkeypatch.setenv("JULIARUN_TOKEN", "wrong-" + TOKEN)  # holds TOKEN: must not show either
    code, out, err = juliarun("jobs")
    assert (code, out) == (1, "")
    assert_one_error_line(err, "listJobs: JuliaRun error 2", "token not accepted")
    assert "wrong-" not in err

    monkeypatch.setenv("JULIARUN_TOKEN", TOKEN)
    code, _, err = juliarun("jobs", "-n", "elsewhere")
    assert code == 1
    assert_one_error_line(err, "token not accepted for namespace 'elsewhere'")


def test_a_dead_port_is_an_error_without_the_token(juliarun, monkeypatch):
    monkeypatch.setenv("JULIARUN_TOKEN", TOKEN)
    monkeypatch.delenv("JULIARUN_TOKEN_FILE", raising=False)
    with socket.socket() as s:  # a port that was free a moment ago, with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for argv in (["jobs"], ["status", "x", "--type", "JuliaBatch"], ["submit", "JuliaBatch", "x", *JUJU]):
        code, out, err = juliarun("--url", f"http://127.0.0.1:{port}", *argv)
        assert (code, out) == (1, "")
        assert_one_error_line(err, f"cannot reach http://127.0.0.1:{port}: connection refused")


def test_an_unreadable_token_file_is_one_line(juliarun, tmp_path):
    code, _, err = juliarun("--token-file", str(tmp_path / "absent"), "jobs")
    assert code == 1
    assert_one_error_line(err, "cannot read", "absent")


# --- the console script -----------------------------------------------------------------


def run_script(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([str(CONSOLE_SCRIPT), *argv], capture_output=True, text=True, env=env, timeout=60)
    assert_no_secret(result.stdout + result.stderr)
    return result


def test_the_console_script_with_options_before_and_after(server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JULIARUN_")}
    connection = ["--url", server.url, "--token-file", str(token_file)]

    result = run_script(*connection, "submit", "JuliaBatch", "script", *JUJU, "-n", NAMESPACE, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "submitted JuliaBatch script\n", "")

    result = run_script("jobs", "-o", "json", *connection, "--namespace", NAMESPACE, env=env)
    assert result.returncode == 0 and json.loads(result.stdout) == [{"name": "script", "type": "JuliaBatch"}]

    result = run_script(*connection, "-n", "elsewhere", "jobs", env=env)
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "token not accepted")

    result = run_script("jobs", "--output", "xml", env=env)
    assert result.returncode == 2 and "invalid choice: 'xml'" in result.stderr


def test_python_dash_m_runs_the_cli(server):
    result = subprocess.run(
        [sys.executable, "-m", "juliarun_operator.cli", "system", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert result.returncode == 0 and json.loads(result.stdout)["ready"] is True
