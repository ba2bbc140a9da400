"""The JuliaRun server fails jobs on request: by a job variable or by a fault rule."""

from __future__ import annotations

import pytest

from juliarun_operator.emulator.faults import Faults, normalise, parse_flag
from juliarun_operator.emulator.state import FAIL_ENV, RUN_TIME_ENV, Cluster, Refused, Timing
from juliarun_operator.juliarun.encoding import check_params

NS = "team"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cluster(clock: Clock) -> Cluster:
    return Cluster(Timing(create_delay=1.0, worker_delay=0.5, run_time=10.0), clock)


def batch(cluster: Cluster, name: str, fail: str = "", job_type: str = "JuliaBatch", **params) -> None:
    base = {"run_volume": "v", "start_script": "run.jl", **params}
    if fail:
        base["envvars"] = {FAIL_ENV: fail}
    cluster.submit(NS, name, job_type, check_params(job_type, base))


def test_a_job_that_fails_says_so_in_its_status_tuple_at_its_end(cluster, clock):
    batch(cluster, "ok")
    batch(cluster, "bad", "all")
    clock.t += 5
    assert cluster.status(NS, "bad", "JuliaBatch") == [False, 0, 1, True, False]
    clock.t += 6
    assert cluster.status(NS, "ok", "JuliaBatch") == [True, 1, 1, True, False]
    assert cluster.status(NS, "bad", "JuliaBatch") == [True, 0, 1, True, False]
    assert "ERROR: job failed: 0 of 1 succeeded" in cluster.tail(NS, "bad", "JuliaBatch", 5)


def test_some_workers_fail(cluster, clock):
    batch(cluster, "par", "some", "JuliaParBatch", nworkers=4)
    clock.t += 20
    completed, succeeded, started = cluster.status(NS, "par", "JuliaParBatch")[:3]
    assert completed and started == 4 and succeeded == 2


def test_a_crash_ends_the_job_while_running(cluster, clock):
    batch(cluster, "crash", "crash")
    clock.t += 6.5  # created at 1 s, dies at half its 10 s run time
    assert cluster.status(NS, "crash", "JuliaBatch")[:3] == [True, 0, 1]
    assert "died while running" in cluster.tail(NS, "crash", "JuliaBatch", 3)


def test_a_job_variable_sets_its_own_run_time(cluster, clock):
    cluster.submit(
        NS,
        "long",
        "JuliaBatch",
        check_params(
            "JuliaBatch", {"run_volume": "v", "start_script": "run.jl", "envvars": {RUN_TIME_ENV: "100"}}
        ),
    )
    batch(cluster, "short")
    clock.t += 50
    assert cluster.status(NS, "short", "JuliaBatch")[0] is True
    assert cluster.status(NS, "long", "JuliaBatch")[0] is False


def test_an_unknown_failure_mode_is_refused(cluster):
    with pytest.raises(Refused):
        batch(cluster, "typo", "sometimes")


def test_a_fault_rule_fails_the_first_matching_submits_then_stops():
    faults = Faults({"jobs": [{"match": "team-train-*", "fail": "all", "count": 1}]})
    rule = faults.job_failure("team-train-abc")
    assert rule is not None and rule["fail"] == "all"
    assert faults.job_failure("other") is None
    faults.used(rule)
    assert faults.job_failure("team-train-abc-2") is None


@pytest.mark.parametrize(
    "rules",
    [
        "x",
        [{"match": "a"}],
        [{"match": "a", "fail": "all", "count": -1}],
        [{"match": "a", "fail": "all", "when": 1}],
    ],
)
def test_bad_job_rules_are_refused(rules):
    with pytest.raises(ValueError):
        normalise({"jobs": rules})


def test_fault_flags_add_job_rules_in_their_order():
    config: dict = {}
    for flag in ("getJobStatus:latency=1", "jobs:team-train-*=all:1", "jobs:team-*=crash"):
        parse_flag(flag, config)
    assert config["jobs"] == [
        {"match": "team-train-*", "fail": "all", "count": 1},
        {"match": "team-*", "fail": "crash"},
    ]
    faults = Faults(config)
    first = faults.job_failure("team-train-abc")
    assert first is not None and first["fail"] == "all"
    faults.used(first)  # its one submit used: the next rule matches
    assert faults.job_failure("team-train-abc-2") == {"match": "team-*", "fail": "crash"}
    assert faults.job_failure("other") is None


@pytest.mark.parametrize(
    "flag, says",
    [
        ("jobs:team-*=sometimes", "fail"),
        ("jobs:team-*=all:-1", "COUNT"),
        ("jobs:team-*=all:once", "COUNT"),
        ("jobs:=all", "PATTERN"),
        ("jobs:team-*", "expected"),
    ],
)
def test_bad_job_fault_flags_are_refused(flag, says):
    with pytest.raises(ValueError, match=says):
        parse_flag(flag, {})
