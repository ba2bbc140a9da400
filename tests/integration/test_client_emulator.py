"""The Python client against the JuliaRun-compatible server, over real HTTP.

Every call, every job type, and every error class a caller can meet.
"""

import time

import pytest

from juliarun_operator.emulator import EmulatorConfig, running_emulator
from juliarun_operator.juliarun import (
    ApiError,
    Client,
    Context,
    HTTPError,
    InvalidResponse,
    Job,
    JobScale,
    ParameterError,
    RetryPolicy,
    TransportError,
    current_job,
)
from juliarun_operator.juliarun import jobtypes as jt
from juliarun_operator.juliarun.client import SnapshotMemo
from juliarun_operator.juliarun.errors import (
    CODE_INVALID_PARAMETER,
    CODE_JOB_EXISTS,
    CODE_NO_SUCH_JOB,
    CODE_UNAUTHORIZED,
)

pytestmark = pytest.mark.integration
TOKEN = "client-test-token"
NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture(scope="module")
def server():
    # Seeded fault dice: a test that rolls them has the same outcome every run.
    config = EmulatorConfig(
        create_delay=0.05, worker_delay=0.02, run_time=0.6, auth={"team": [TOKEN]}, seed=20261126
    )
    with running_emulator(config) as handle:
        yield handle


@pytest.fixture
def jr(server):
    server.set_faults({})
    return Client(Context(url=server.url, token=TOKEN, namespace="team", read_timeout=2), retry=NO_RETRY)


def minimal_params(spec: jt.JobType) -> dict:
    values = {
        "run_volume": "vol",
        "start_script": "run.jl",
        "builder_script": "build.jl",
        "cfg_file": "server.conf",
        "pkg_bundle": "bundle",
        "image": "alpine",
    }
    return {name: values[name] for name in spec.required()}


@pytest.mark.parametrize("job_type", list(jt.JOB_TYPES))
def test_every_job_type_through_every_call(jr, job_type):
    spec = jt.JOB_TYPES[job_type]
    job = Job(job_type, f"all-{job_type.lower()}")
    jr.submit_job(job, **minimal_params(spec), cpu=0.5)
    assert jr.list_jobs()[job.name] == job_type
    assert jr.get_job_status(job).notebook is (job_type == "Notebook")
    deadline = time.monotonic() + 5
    while not jr.get_job_status(job).created:
        assert time.monotonic() < deadline, "never created"
        time.sleep(0.02)
    if spec.scalable:
        assert jr.set_job_scale(job, 2) is True
        assert jr.wait_for_workers(job, 2, timeout=5, interval=0.02).running >= 2
    else:
        with pytest.raises(ApiError):
            jr.set_job_scale(job, 2)
    assert isinstance(jr.get_job_scale(job), JobScale)
    endpoints = jr.get_job_endpoint(job)
    assert bool(endpoints) == bool(spec.params.get("ports"))  # types with default ports expose them
    jr.update_job(job, cpu=1)
    info = jr.get_all_job_info()[job.name]
    assert info.type == job_type and info.endpoints == endpoints
    assert isinstance(jr.tail_job(job, count=5), str)
    if endpoints:
        port = next(iter(spec.params["ports"].values()))[0]
        assert jr.get_encoded_url(job, port).startswith("http")
    assert jr.delete_job(job, force=True) is True
    assert job.name not in jr.list_jobs()


def test_batch_jobs_complete_and_keep_their_logs(jr):
    job = Job("JuliaParBatch", "completes")
    jr.submit_job(job, run_volume="v", start_script="s", nworkers=2)
    deadline = time.monotonic() + 5
    while not (status := jr.get_job_status(job)).completed:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status.workers_succeeded == status.workers_started == 2
    logs = jr.tail_job(job, count=3)
    assert 0 < len(logs.splitlines()) <= 3
    assert jr.tail_job(job, stream="stdout", count=100) != jr.tail_job(job, stream="stderr", count=100)
    assert jr.delete_job(job) is True  # finished: no force needed


def test_api_errors_carry_code_and_reason(jr):
    job = Job("Webserver", "dup")
    jr.submit_job(job, run_volume="v", cfg_file="c")
    cases = [
        (lambda: jr.submit_job(job, run_volume="v", cfg_file="c"), CODE_JOB_EXISTS),
        (lambda: jr.get_job_status(Job("Webserver", "nobody")), CODE_NO_SUCH_JOB),
        (lambda: jr.delete_job(job), CODE_INVALID_PARAMETER),  # running: needs force
    ]
    for call, code in cases:
        with pytest.raises(ApiError) as err:
            call()
        assert err.value.code == code and err.value.reason
    jr.delete_job(job, force=True)


def test_bad_token_and_other_namespace(server, jr):
    stranger = Client(Context(url=server.url, token="wrong", namespace="team"), retry=NO_RETRY)
    with pytest.raises(ApiError) as err:
        stranger.list_jobs()
    assert err.value.code == CODE_UNAUTHORIZED and "wrong" not in str(err.value)
    jr.submit_job(Job("Webserver", "mine"), run_volume="v", cfg_file="c")
    other = Client(Context(url=server.url, token=TOKEN, namespace="elsewhere"), retry=NO_RETRY)
    with pytest.raises(ApiError):
        other.list_jobs()  # this token is not accepted in another namespace


def test_parameter_errors_send_nothing(server, jr):
    before = server.counters()["operations"].get("submitJob", 0)
    with pytest.raises(ParameterError, match="ports"):
        jr.submit_job(Job("Webserver", "bad"), run_volume="v", cfg_file="c", ports={"x": (0, 1)})
    assert server.counters()["operations"].get("submitJob", 0) == before


@pytest.mark.parametrize(
    "fault, error",
    [
        ({"listJobs": {"http_5xx_rate": 1}}, HTTPError),
        ({"listJobs": {"malformed_rate": 1}}, InvalidResponse),
        ({"listJobs": {"drop_rate": 1}}, TransportError),
        ({"listJobs": {"hang_rate": 1, "hang_seconds": 10}}, TransportError),
    ],
)
def test_every_error_class_from_server_faults(server, jr, fault, error):
    server.set_faults(fault)
    with pytest.raises(error):
        jr.list_jobs()


def test_reads_retry_through_transient_faults(server):
    server.set_faults({"listJobs": {"http_5xx_rate": 0.5}})
    patient = Client(
        Context(url=server.url, token=TOKEN, namespace="team"),
        retry=RetryPolicy(attempts=10, base=0.001, cap=0.01),
    )
    for _ in range(10):
        patient.list_jobs()
    server.set_faults({})


def test_system_status_and_current_job(server, jr):
    assert jr.get_system_status() is True
    server.set_faults({"system_status": False})
    assert jr.get_system_status() is False
    assert current_job({"JRUN_TYPE": "Notebook", "JRUN_NAME": "nb"}) == Job("Notebook", "nb")
    with pytest.raises(Exception, match="JRUN_TYPE"):
        current_job({})


def test_get_all_job_info_with_a_memo_parses_only_what_changed(jr, server):
    """With the last answer kept, an unchanged entry is the very JobInfo of before (the
    operator's snapshot diff then costs nothing for it); a changed one is new and right."""
    memo = SnapshotMemo()
    jobs = [Job("Webserver", f"memo-{i}") for i in range(3)]
    for job in jobs:
        jr.submit_job(job, run_volume="v", cfg_file="c", nworkers=1)
    deadline = time.monotonic() + 5
    first = jr.get_all_job_info(memo)
    while not all(
        j.name in first and first[j.name].status.created and first[j.name].scale.running == 1 for j in jobs
    ):
        assert time.monotonic() < deadline, first
        time.sleep(0.02)
        first = jr.get_all_job_info(memo)
    again = jr.get_all_job_info(memo)
    assert all(again[j.name] is first[j.name] for j in jobs)
    jr.set_job_scale(jobs[0], 2)
    changed = jr.get_all_job_info(memo)
    assert changed[jobs[0].name] is not first[jobs[0].name]
    assert changed[jobs[0].name].scale.requested == 2
    assert changed[jobs[1].name] is first[jobs[1].name]
    # A malformed answer leaves the memo as it was.
    server.set_faults({"getAllJobInfo": {"malformed_rate": 1}})
    with pytest.raises(InvalidResponse):
        jr.get_all_job_info(memo)
    assert memo.parsed == changed
    server.set_faults({})
    for job in jobs:
        jr.delete_job(job, force=True)
    assert not {j.name for j in jobs} & set(jr.get_all_job_info(memo))
