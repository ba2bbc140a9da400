"""The emulated job lifecycle, driven by a fake clock: no sleeps, no server."""

import pytest

from juliarun_operator.emulator.state import MAX_HISTORY, Cluster, Refused, Timing
from juliarun_operator.juliarun.encoding import check_params
from juliarun_operator.juliarun.errors import CODE_INVALID_PARAMETER, CODE_JOB_EXISTS, CODE_NO_SUCH_JOB

NS = "team"


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, seconds):
        self.t += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cluster(clock):
    return Cluster(Timing(create_delay=1.0, worker_delay=0.5, run_time=10.0, log_interval=5.0), clock)


def submit(cluster, name, job_type, **params):
    base = {"run_volume": "vol"}
    if job_type in ("JuliaBatch", "JuliaParBatch", "JuliaParBatchWorkers"):
        base["start_script"] = "run.jl"
    if job_type in ("Webserver", "MessageQ"):
        base["cfg_file"] = "cfg"
    if job_type == "Generic":
        base["image"] = "busybox"
    cluster.submit(NS, name, job_type, check_params(job_type, {**base, **params}))


def refused(fn, *args):
    with pytest.raises(Refused) as info:
        fn(*args)
    return info.value


def test_batch_job_is_scheduled_then_created_then_completes(cluster, clock):
    submit(cluster, "b", "JuliaBatch")
    assert cluster.status(NS, "b", "JuliaBatch") == [False, 0, 0, False, False]
    assert cluster.scale(NS, "b", "JuliaBatch") == [0, 1]
    clock.advance(1.0)
    assert cluster.status(NS, "b", "JuliaBatch") == [False, 0, 1, True, False]
    assert cluster.scale(NS, "b", "JuliaBatch") == [1, 1]
    clock.advance(9.99)
    assert cluster.status(NS, "b", "JuliaBatch")[0] is False
    clock.advance(0.01)
    assert cluster.status(NS, "b", "JuliaBatch") == [True, 1, 1, True, False]
    assert cluster.scale(NS, "b", "JuliaBatch") == [0, 0]


def test_workers_approach_requested_scale_one_step_per_delay(cluster, clock):
    submit(cluster, "p", "JuliaParBatch", nworkers=3)
    clock.advance(1.0)  # created, no worker yet
    assert cluster.scale(NS, "p", "JuliaParBatch") == [0, 3]
    clock.advance(0.5)
    assert cluster.scale(NS, "p", "JuliaParBatch") == [1, 3]
    clock.advance(1.0)
    assert cluster.scale(NS, "p", "JuliaParBatch") == [3, 3]
    clock.advance(5.0)
    assert cluster.scale(NS, "p", "JuliaParBatch") == [3, 3]
    assert cluster.status(NS, "p", "JuliaParBatch") == [False, 0, 3, True, False]


def test_parallel_batch_completes_with_all_started_workers_succeeded(cluster, clock):
    submit(cluster, "p", "JuliaParBatchWorkers", nworkers=4)
    clock.advance(11.0)
    assert cluster.status(NS, "p", "JuliaParBatchWorkers") == [True, 4, 4, True, False]


def test_scale_change_restarts_approach_from_running_count(cluster, clock):
    submit(cluster, "p", "JuliaParBatch", nworkers=4)
    clock.advance(2.0)  # created 1 s ago: 2 workers running
    assert cluster.scale(NS, "p", "JuliaParBatch") == [2, 4]
    assert cluster.set_scale(NS, "p", "JuliaParBatch", 1) is True
    assert cluster.scale(NS, "p", "JuliaParBatch") == [2, 1]
    clock.advance(0.5)
    assert cluster.scale(NS, "p", "JuliaParBatch") == [1, 1]
    cluster.set_scale(NS, "p", "JuliaParBatch", 3)
    clock.advance(1.0)
    assert cluster.scale(NS, "p", "JuliaParBatch") == [3, 3]
    # Two started at first, two more after the scale-down: four ever started.
    assert cluster.status(NS, "p", "JuliaParBatch")[2] == 4


def test_scale_set_before_creation_applies_from_creation(cluster, clock):
    submit(cluster, "nb", "Notebook")
    cluster.set_scale(NS, "nb", "Notebook", 2)
    clock.advance(1.0)
    assert cluster.scale(NS, "nb", "Notebook") == [0, 2]
    clock.advance(1.0)
    assert cluster.scale(NS, "nb", "Notebook") == [2, 2]


def test_services_run_until_deleted(cluster, clock):
    submit(cluster, "nb", "Notebook")
    submit(cluster, "mq", "MessageQ")
    clock.advance(10_000)
    assert cluster.status(NS, "nb", "Notebook") == [False, 0, 0, True, True]
    assert cluster.status(NS, "mq", "MessageQ") == [False, 0, 1, True, False]
    assert cluster.scale(NS, "mq", "MessageQ") == [1, 1]


def test_run_time_zero_runs_batch_jobs_until_deleted(clock):
    cluster = Cluster(Timing(create_delay=0, worker_delay=0, run_time=0), clock)
    submit(cluster, "b", "JuliaBatch")
    clock.advance(1e6)
    assert cluster.status(NS, "b", "JuliaBatch")[0] is False


def test_endpoints_use_service_ports_once_created_until_completed(cluster, clock):
    submit(cluster, "mq", "MessageQ")
    submit(cluster, "b", "JuliaBatch", ports={"api": (9000, 80)})
    submit(cluster, "g", "Generic")
    assert cluster.endpoints(NS, "mq", "MessageQ") == []
    clock.advance(1.0)
    mq = cluster.endpoints(NS, "mq", "MessageQ")
    assert [e.split(":")[1] for e in mq] == ["5671", "5672", "15671", "15672"]
    ip = mq[0].split(":")[0]
    assert ip.startswith("10.") and len(ip.split(".")) == 4
    assert cluster.endpoints(NS, "b", "JuliaBatch") == [cluster.endpoints(NS, "b", "JuliaBatch")[0]]
    assert cluster.endpoints(NS, "b", "JuliaBatch")[0].endswith(":80")
    assert cluster.endpoints(NS, "g", "Generic") == []
    clock.advance(10.0)
    assert cluster.endpoints(NS, "b", "JuliaBatch") == []


def test_fake_pod_ip_is_stable_and_differs_between_jobs(cluster, clock):
    submit(cluster, "a", "Webserver")
    submit(cluster, "b", "Webserver")
    clock.advance(1.0)
    a = cluster.endpoints(NS, "a", "Webserver")
    assert a == cluster.endpoints(NS, "a", "Webserver")
    assert a[0].split(":")[0] != cluster.endpoints(NS, "b", "Webserver")[0].split(":")[0]


def test_refusals_name_the_problem(cluster, clock):
    submit(cluster, "b", "JuliaBatch")
    assert refused(submit, cluster, "b", "Notebook").code == CODE_JOB_EXISTS
    assert refused(cluster.status, NS, "nope", "JuliaBatch").code == CODE_NO_SUCH_JOB
    wrong = refused(cluster.status, NS, "b", "Notebook")
    assert wrong.code == CODE_NO_SUCH_JOB and "JuliaBatch" in wrong.reason
    assert refused(submit, cluster, "Bad_Name", "JuliaBatch").code == CODE_INVALID_PARAMETER
    scale = refused(cluster.set_scale, NS, "b", "JuliaBatch", 2)
    assert scale.code == CODE_INVALID_PARAMETER and "cannot be scaled" in scale.reason


def test_delete_of_unfinished_job_needs_force(cluster, clock):
    submit(cluster, "b", "JuliaBatch")
    assert "force" in refused(cluster.delete, NS, "b", "JuliaBatch", False).reason
    assert cluster.delete(NS, "b", "JuliaBatch", True) is True
    assert cluster.list_jobs(NS) == {}
    submit(cluster, "done", "JuliaBatch")
    clock.advance(11.0)
    assert cluster.delete(NS, "done", "JuliaBatch", False) is True


def test_completed_job_cannot_be_scaled(cluster, clock):
    submit(cluster, "p", "JuliaParBatch", nworkers=1)
    clock.advance(11.0)
    assert "completed" in refused(cluster.set_scale, NS, "p", "JuliaParBatch", 2).reason


def test_namespaces_do_not_see_each_other(cluster):
    submit(cluster, "b", "JuliaBatch")
    assert cluster.list_jobs("other") == {}
    assert refused(cluster.status, "other", "b", "JuliaBatch").code == CODE_NO_SUCH_JOB
    cluster.submit("other", "b", "Notebook", {"run_volume": "v"})  # same name, other namespace
    assert cluster.list_jobs(NS) == {"b": {"type": "JuliaBatch"}}
    assert cluster.list_jobs("other") == {"b": {"type": "Notebook"}}


def test_update_merges_parameters_and_rescales(cluster, clock):
    submit(cluster, "w", "Webserver", nworkers=1)
    cluster.update(NS, "w", "Webserver", {"ports": {"web": (8080, 8080)}, "nworkers": 2})
    job = cluster.jobs[NS]["w"]
    assert job.params["cfg_file"] == "cfg" and job.params["ports"] == {"web": (8080, 8080)}
    clock.advance(2.0)
    assert cluster.scale(NS, "w", "Webserver") == [2, 2]
    assert cluster.endpoints(NS, "w", "Webserver")[0].endswith(":8080")


def test_all_job_info_matches_single_job_calls(cluster, clock):
    submit(cluster, "p", "JuliaParBatch", nworkers=2)
    submit(cluster, "nb", "Notebook")
    clock.advance(1.7)
    info = cluster.all_job_info(NS)
    assert info["p"] == {
        "type": "JuliaParBatch",
        "status": cluster.status(NS, "p", "JuliaParBatch"),
        "scale": cluster.scale(NS, "p", "JuliaParBatch"),
        "endpoint": [],
    }
    assert info["nb"]["endpoint"] == cluster.endpoints(NS, "nb", "Notebook")


def texts(log):
    return [line.split(" ", 1)[1] for line in log.split("\n")] if log else []


def test_tail_tells_the_lifecycle_in_order(cluster, clock):
    submit(cluster, "p", "JuliaParBatch", nworkers=2)
    clock.advance(20.0)
    lines = texts(cluster.tail(NS, "p", "JuliaParBatch", 50))
    assert lines[0].endswith("scheduled") and lines[1].startswith("[ Info: job created")
    assert "[ Info: worker 1 started" in lines and "[ Info: worker 2 started" in lines
    assert [line for line in lines if line.startswith("progress")] == [
        "progress: 20%",
        "progress: 40%",
        "progress: 60%",
        "progress: 80%",
    ]
    assert lines[-1] == "job finished: 2 succeeded"
    stamps = [line.split(" ", 1)[0] for line in cluster.tail(NS, "p", "JuliaParBatch", 50).split("\n")]
    assert stamps == sorted(stamps)


def test_tail_honours_count_and_stream(cluster, clock):
    submit(cluster, "p", "JuliaParBatch", nworkers=2)
    clock.advance(20.0)
    every = texts(cluster.tail(NS, "p", "JuliaParBatch", 50))
    assert texts(cluster.tail(NS, "p", "JuliaParBatch", 3)) == every[-3:]
    out = texts(cluster.tail(NS, "p", "JuliaParBatch", 50, "stdout"))
    err = texts(cluster.tail(NS, "p", "JuliaParBatch", 50, "stderr"))
    assert out and err and sorted(out + err) == sorted(every)
    assert all(not line.startswith("[ Info") for line in out) and all(
        line.startswith("[ Info") for line in err
    )
    assert cluster.tail(NS, "p", "JuliaParBatch", 0) == ""


def test_long_running_service_log_stays_cheap(cluster, clock):
    submit(cluster, "nb", "Notebook")
    clock.advance(365 * 24 * 3600)  # a year of heartbeats every 5 s
    # Created 1 s after submit, so the last heartbeat is 5 s short of a year.
    lines = texts(cluster.tail(NS, "nb", "Notebook", 2))
    assert lines == ["running for 31535990 s", "running for 31535995 s"]


def test_history_of_scale_changes_is_capped(cluster, clock):
    submit(cluster, "nb", "Notebook")
    clock.advance(1.0)
    for i in range(MAX_HISTORY):
        cluster.set_scale(NS, "nb", "Notebook", i % 3)
        clock.advance(1.0)
    assert len(cluster.jobs[NS]["nb"].history) == MAX_HISTORY


def test_state_round_trips_through_json(cluster, clock):
    import json

    submit(cluster, "p", "JuliaParBatch", nworkers=3, ports={"x": (1, 2)})
    clock.advance(1.6)
    cluster.set_scale(NS, "p", "JuliaParBatch", 5)
    clock.advance(0.7)
    restored = Cluster(cluster.timing, clock)
    restored.load_dict(json.loads(json.dumps(cluster.to_dict())))
    assert restored.all_job_info(NS) == cluster.all_job_info(NS)
    assert restored.tail(NS, "p", "JuliaParBatch", 50) == cluster.tail(NS, "p", "JuliaParBatch", 50)


@pytest.mark.parametrize(
    "data",
    [
        {"format": 99, "jobs": []},
        {"format": 1, "jobs": [{"name": "x"}]},
        [],
    ],
)
def test_invalid_state_is_refused_and_keeps_the_jobs(cluster, data):
    submit(cluster, "b", "JuliaBatch")
    with pytest.raises(ValueError):
        cluster.load_dict(data)
    assert list(cluster.list_jobs(NS)) == ["b"]


def test_a_moved_job_reports_its_new_address_and_keeps_it_across_a_restart(cluster, clock):
    submit(cluster, "nb", "Notebook")
    clock.advance(1.0)
    before = cluster.endpoints(NS, "nb", "Notebook")
    assert cluster.move(NS, "nb", "10.77.0.5") == ["10.77.0.5:8888"]
    assert cluster.endpoints(NS, "nb", "Notebook") == ["10.77.0.5:8888"] != before
    assert "job moved: pod 10.77.0.5" in cluster.tail(NS, "nb", "Notebook", 10)
    again = Cluster(cluster.timing, clock)
    again.load_dict(cluster.to_dict())
    assert again.endpoints(NS, "nb", "Notebook") == ["10.77.0.5:8888"]
    cluster.move(NS, "nb", "")
    assert cluster.endpoints(NS, "nb", "Notebook") == before
    with pytest.raises(KeyError):
        cluster.move(NS, "absent", "10.0.0.1")


def test_with_listen_addresses_each_job_takes_a_free_one_and_reports_it(cluster, clock):
    from juliarun_operator.emulator.listeners import address_pool

    cluster.pool = address_pool(["10.1.0.0/30", "10.2.0.9"])
    assert cluster.pool == ["10.1.0.1", "10.1.0.2", "10.2.0.9"]
    submit(cluster, "a", "Notebook")
    submit(cluster, "b", "Notebook")
    clock.advance(1.0)
    assert cluster.endpoints(NS, "a", "Notebook") == ["10.1.0.1:8888"]
    assert cluster.endpoints(NS, "b", "Notebook") == ["10.1.0.2:8888"]
    cluster.delete(NS, "a", "Notebook", force=True)
    submit(cluster, "c", "Notebook")  # the freed address
    clock.advance(1.0)
    assert cluster.endpoints(NS, "c", "Notebook") == ["10.1.0.1:8888"]
    with pytest.raises(ValueError, match=r"--listen-host 'nb\.local'"):
        address_pool(["nb.local"])
