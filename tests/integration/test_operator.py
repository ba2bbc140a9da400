"""The operator end to end: a real API server, the JuliaRun server and the operator as processes."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from juliarun_operator.juliarun import jobtypes as jt

from harness import (
    JRUN_NAMESPACE,
    TOKEN,
    TOKEN_B64,
    Emulator,
    Namespaces,
    Operator,
    apply_crds,
    job,
    metric,
    running,
    using,
    wait_for,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RUN_TIME = 4  # seconds a batch job runs in the JuliaRun server
# Namespaces tests take beyond their `ns`: two teams, and the two peers' own.
EXTRA_NAMESPACES = 3


@pytest.fixture(scope="module")
def namespaces(request) -> Namespaces:
    return Namespaces("t", using(request, "ns") + EXTRA_NAMESPACES)


@pytest.fixture(scope="module")
def stack(control_plane, tmp_path_factory, namespaces):
    workdir = tmp_path_factory.mktemp("operator")
    apply_crds(control_plane)
    emulator = Emulator(
        workdir, "--create-delay", "0.3", "--worker-delay", "0.1", "--run-time", str(RUN_TIME), "--seed", "7"
    )
    operator = Operator(
        workdir, control_plane.kubeconfig, emulator, "--adopt-namespace", "*", watch=namespaces.names
    )
    with running(control_plane, emulator, operator) as stack:
        yield stack
    # Whatever happened above, the operator never logged the token.
    log = operator.text()
    assert TOKEN not in log and TOKEN_B64 not in log


@pytest.fixture
def ns(stack, namespaces):
    return namespaces.take(stack[2])


def phase_is(kube, ns, name, *phases):
    return lambda: kube.status(ns, name).get("phase") in phases


def examples() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_every_job_type_runs_its_life_from_apply_to_delete(stack, ns, control_plane):
    emulator, _, kube = stack
    docs = examples()
    jobs = [d for d in docs if d["kind"] == "JuliaRunJob"]
    assert {d["spec"]["type"] for d in jobs} == set(jt.JOB_TYPES)
    kube.apply(ns, *docs)
    for doc in jobs:
        name, spec_type = doc["metadata"]["name"], doc["spec"]["type"]
        final = "Completed" if jt.JOB_TYPES[spec_type].completes else "Running"
        wait_for(f"{spec_type} {name} {final}", phase_is(kube, ns, name, final), 60)
        obj = kube.get(ns, name)
        status = obj["status"]
        assert status["jobName"] == kube.job_name(ns, name)
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert status["created"] is True and status["completed"] is (final == "Completed")
        ready = kube.condition(ns, name, "Ready")
        assert ready["status"] == "True" and ready["observedGeneration"] == obj["metadata"]["generation"]
        assert kube.condition(ns, name, "Stalled")["status"] == "False"
        if final == "Running":
            assert kube.condition(ns, name, "Reconciling")["status"] == "False"
            wanted = doc["spec"].get("parallelism")
            if wanted is not None:
                wait_for(
                    f"{name} at scale",
                    lambda name=name, wanted=wanted: (
                        kube.status(ns, name)["scale"] == {"running": wanted, "requested": wanted}
                    ),
                )
            if doc["spec"]["type"] in ("Notebook", "Webserver", "MessageQ"):
                assert status["endpoints"], f"{name} exposes ports but has no endpoint"
        else:
            events = wait_for(
                f"{name} completion event",
                lambda name=name: [e for e in kube.events(ns, name) if e["reason"] == "Completed"],
            )
            assert "last log lines" in events[0]["message"]
        assert emulator.jobs()[status["jobName"]] == spec_type
    names = {kube.job_name(ns, d["metadata"]["name"]) for d in jobs}
    control_plane.kubectl("delete", "jrj", "--all", "-n", ns, "--timeout=60s")
    assert not names & set(emulator.jobs())


def test_kubectl_scale_reaches_juliarun_and_status(stack, ns, control_plane):
    emulator, _, kube = stack
    kube.apply(ns, job("web", "Webserver", runVolume="www", cfgFile="nginx.conf", parallelism=1))
    wait_for("web at scale 1", lambda: kube.condition(ns, "web", "Ready").get("reason") == "AtScale")
    control_plane.kubectl("scale", "jrj/web", "-n", ns, "--replicas=3")
    wait_for(
        "web at scale 3",
        lambda: (
            kube.status(ns, "web").get("scale") == {"running": 3, "requested": 3}
            and kube.condition(ns, "web", "Ready").get("status") == "True"
        ),
    )
    scale = json.loads(
        control_plane.kubectl("get", "jrj/web", "-n", ns, "--subresource=scale", "-o", "json").stdout
    )
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    name = kube.status(ns, "web")["jobName"]
    assert emulator.calls("setJobScale", name) == 1  # the event, not a poll, made the call


def test_spec_change_goes_through_update_job(stack, ns):
    emulator, _, kube = stack
    kube.apply(ns, job("mq", "MessageQ", runVolume="mq", cfgFile="rabbit.conf"))
    wait_for("mq running", phase_is(kube, ns, "mq", "Running"))
    kube.apply(ns, job("mq", "MessageQ", runVolume="mq", cfgFile="rabbit.conf", cpu=2))
    name = kube.status(ns, "mq")["jobName"]
    wait_for("updateJob", lambda: emulator.calls("updateJob", name) == 1)
    wait_for("Updated event", lambda: any(e["reason"] == "Updated" for e in kube.events(ns, "mq")))


def test_orphan_policy_leaves_the_job_and_delete_policy_removes_it(stack, ns, control_plane):
    emulator, _, kube = stack
    kube.apply(
        ns,
        job("keep", "Webserver", runVolume="v", cfgFile="c", deletionPolicy="Orphan"),
        job("drop", "Webserver", runVolume="v", cfgFile="c"),
    )
    for name in ("keep", "drop"):
        wait_for(f"{name} running", phase_is(kube, ns, name, "Running"))
    keep, drop = kube.status(ns, "keep")["jobName"], kube.status(ns, "drop")["jobName"]
    control_plane.kubectl("delete", "jrj", "keep", "drop", "-n", ns, "--timeout=60s")
    jobs = emulator.jobs()
    assert keep in jobs and drop not in jobs
    assert emulator.calls("deleteJob", keep) == 0


def secret_reads(control_plane) -> int:
    """GETs of Secrets, as the API server counts them."""
    metrics = control_plane.kubectl("get", "--raw", "/metrics").stdout
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in metrics.splitlines()
        if line.startswith("apiserver_request_total{")
        and 'resource="secrets"' in line
        and 'verb="GET"' in line
    )


def test_credentials_secret_routes_the_job_to_its_own_connection(stack, ns, control_plane):
    emulator, operator, kube = stack
    from juliarun_operator.juliarun import Client, Context

    team_token = "team-b-s3cr3t-7171"
    spec = {"runVolume": "v", "cfgFile": "c", "parallelism": 2, "credentialsRef": {"name": "jr-team-b"}}
    kube.apply(ns, job("routed", "Webserver", **spec))
    name = kube.job_name(ns, "routed")
    # Without its Secret nothing is sent anywhere, and the object says what is missing.
    wait_for(
        "missing Secret reported",
        lambda: any(f"Secret {ns}/jr-team-b not found" in e["message"] for e in kube.events(ns, "routed")),
        30,
    )
    assert not any(name in calls for calls in emulator.counters()["jobs"].values())
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        "jr-team-b",
        "-n",
        ns,
        f"--from-literal=url={emulator.url}",
        f"--from-literal=token={team_token}",
        "--from-literal=namespace=team-b",
    )
    # Not marked for the operator: not used (a tenant who cannot read Secrets cannot lend one).
    wait_for(
        "unmarked Secret reported",
        lambda: any("not marked for the operator" in e["message"] for e in kube.events(ns, "routed")),
        30,
    )
    assert not any(name in calls for calls in emulator.counters()["jobs"].values())
    control_plane.kubectl("label", "secret", "jr-team-b", "-n", ns, "juliarun.dev/credentials=true")
    wait_for("routed at scale", lambda: kube.at_scale(ns, "routed", 2), 60)
    team_b = Client(Context(url=emulator.url, token=team_token, namespace="team-b"))
    assert team_b.list_jobs() == {name: "Webserver"}
    assert name not in emulator.jobs()  # not in the operator's default JuliaRun namespace
    # Three sync intervals use the Secret without reading it again each time.
    before = secret_reads(control_plane)
    time.sleep(3)
    assert secret_reads(control_plane) - before <= 1
    control_plane.kubectl("delete", "jrj", "routed", "-n", ns, "--timeout=60s")
    assert team_b.list_jobs() == {}
    log = operator.text()
    assert team_token not in log and base64.b64encode(team_token.encode()).decode() not in log


def test_existing_job_is_a_conflict_until_adopted(stack, ns, control_plane):
    emulator, _, kube = stack
    from juliarun_operator.juliarun import Client, Context, Job

    # A default name hashes the object's UID, so only a chosen name can be taken before.
    name = f"{ns}-taken"
    Client(Context(url=emulator.url, token=TOKEN, namespace=JRUN_NAMESPACE)).submit_job(
        Job("Webserver", name), run_volume="v", cfg_file="c"
    )
    kube.apply(ns, job("taken", "Webserver", runVolume="v", cfgFile="c", jobName=name))
    stalled = wait_for(
        "conflict", lambda: (c := kube.condition(ns, "taken", "Stalled")).get("reason") == "Conflict" and c
    )
    assert stalled["status"] == "True" and name in stalled["message"]
    assert emulator.calls("submitJob", name) == 1  # ours, above: the operator looked before sending
    assert "jobName" not in kube.status(ns, "taken")  # not ours: nothing to delete with the object
    control_plane.kubectl("annotate", "jrj/taken", "-n", ns, "juliarun.dev/adopt=true")
    wait_for("adopted and ready", lambda: kube.condition(ns, "taken", "Ready").get("status") == "True")
    assert kube.condition(ns, "taken", "Stalled")["status"] == "False"
    assert kube.status(ns, "taken")["jobName"] == name
    assert emulator.calls("submitJob", name) == 1  # adopted, not submitted again


def test_pause_stops_calls_and_unpause_applies_pending_changes(stack, ns, control_plane):
    emulator, _, kube = stack
    kube.apply(ns, job("p", "Webserver", runVolume="v", cfgFile="c", parallelism=1))
    wait_for("p ready", lambda: kube.condition(ns, "p", "Ready").get("status") == "True")
    name = kube.status(ns, "p")["jobName"]
    control_plane.kubectl("annotate", "jrj/p", "-n", ns, "juliarun.dev/paused=true")
    wait_for("paused", phase_is(kube, ns, "p", "Paused"))
    assert kube.condition(ns, "p", "Ready")["reason"] == "Paused"
    control_plane.kubectl("scale", "jrj/p", "-n", ns, "--replicas=2")
    before = emulator.counters()["jobs"][JRUN_NAMESPACE][name]
    time.sleep(3)  # three sync intervals: a paused object gets no JuliaRun call at all
    assert emulator.counters()["jobs"][JRUN_NAMESPACE][name] == before
    control_plane.kubectl("annotate", "jrj/p", "-n", ns, "juliarun.dev/paused-")
    wait_for(
        "scaled after unpause",
        lambda: kube.status(ns, "p").get("scale") == {"running": 2, "requested": 2},
        60,
    )


def test_operator_killed_after_submit_submits_once(stack, ns):
    emulator, operator, kube = stack
    emulator.set_faults({"submitJob": {"latency": 1.5}})  # answered within the time-out
    try:
        kube.apply(ns, job("crash", "Webserver", runVolume="v", cfgFile="c"))
        name = kube.job_name(ns, "crash")
        wait_for("submitJob in flight", lambda: emulator.calls("submitJob", name) == 1, 30, 0.05)
        operator.kill(signal.SIGKILL)
    finally:
        emulator.clear_faults()
    operator.start()
    # The job is there to see: found, not waited for (no landing window for a visible job).
    wait_for(
        "crash ready after restart", lambda: kube.condition(ns, "crash", "Ready").get("status") == "True", 15
    )
    assert emulator.calls("submitJob", name) == 1
    assert kube.status(ns, "crash")["jobName"] == name


@pytest.mark.parametrize(
    "faults",
    [
        {"*": {"error_rate": 1.0}},
        {"*": {"http_5xx_rate": 1.0}},
        {"*": {"malformed_rate": 1.0}},
        {"*": {"hang_rate": 1.0, "hang_seconds": 30}},
    ],
    ids=["errors", "5xx", "malformed", "hangs"],
)
def test_juliarun_failing_is_reported_bounded_and_recovered(stack, ns, faults):
    emulator, operator, kube = stack
    kube.apply(ns, job("w", "Webserver", runVolume="v", cfgFile="c", parallelism=1))
    wait_for("w ready", lambda: kube.condition(ns, "w", "Ready").get("status") == "True")
    emulator.set_faults(faults)
    try:
        wait_for(
            "unavailable condition",
            lambda: kube.condition(ns, "w", "Ready").get("reason") == "JuliaRunUnavailable",
            30,
        )
        kube.apply(ns, job("w", "Webserver", runVolume="v", cfgFile="c", parallelism=2))
        start_calls, started = sum(emulator.counters()["operations"].values()), time.monotonic()
        time.sleep(5)
        rate = (sum(emulator.counters()["operations"].values()) - start_calls) / (time.monotonic() - started)
        # One status fetch per sync interval (1 s) plus backed-off retries of one handler.
        assert rate <= 3, f"{rate:.1f} calls/s while JuliaRun fails"
        assert operator.proc.poll() is None
    finally:
        emulator.clear_faults()
    wait_for("recovered at the new scale", lambda: kube.at_scale(ns, "w", 2), 90)


def test_juliarun_down_then_back(stack, ns):
    emulator, operator, kube = stack
    kube.apply(ns, job("d", "Webserver", runVolume="v", cfgFile="c"))
    wait_for("d ready", lambda: kube.condition(ns, "d", "Ready").get("status") == "True")
    emulator.kill(signal.SIGTERM)
    try:
        wait_for(
            "down reported",
            lambda: kube.condition(ns, "d", "Ready").get("reason") == "JuliaRunUnavailable",
            30,
        )
        assert requests.get(f"http://127.0.0.1:{operator.metrics_port}/readyz", timeout=5).status_code == 503
    finally:
        emulator.start()  # same port, same state file: the jobs are still there
    wait_for("d ready again", lambda: kube.condition(ns, "d", "Ready").get("status") == "True", 60)


def test_invalid_spec_the_api_server_cannot_see_is_stalled_not_retried(stack, ns, control_plane):
    emulator, _, kube = stack
    secretless = job("nb", "Notebook", runVolume="v", passwordSecretRef={"name": "missing", "key": "pw"})
    kube.apply(ns, secretless)
    stalled = wait_for(
        "stalled", lambda: (c := kube.condition(ns, "nb", "Stalled")).get("status") == "True" and c
    )
    assert stalled["reason"] == "InvalidSpec" and "passwordSecretRef" in stalled["message"]
    assert emulator.calls("submitJob", kube.job_name(ns, "nb")) == 0
    # A password that would match ordinary text cannot be scrubbed from others' messages: refused.
    control_plane.kubectl("create", "secret", "generic", "pw", "-n", ns, "--from-literal=pw=hunter2")
    control_plane.kubectl("label", "secret", "pw", "-n", ns, "juliarun.dev/credentials=true")
    kube.apply(ns, job("nb", "Notebook", runVolume="v", passwordSecretRef={"name": "pw", "key": "pw"}))
    wait_for(
        "weak password refused",
        lambda: "shorter than 8" in kube.condition(ns, "nb", "Stalled").get("message", ""),
    )
    assert emulator.calls("submitJob", kube.job_name(ns, "nb")) == 0
    control_plane.kubectl("delete", "secret", "pw", "-n", ns)
    control_plane.kubectl(
        "create", "secret", "generic", "pw", "-n", ns, "--from-literal=pw=hunter2-Long-enough9"
    )
    control_plane.kubectl("label", "secret", "pw", "-n", ns, "juliarun.dev/credentials=true")
    wait_for("nb ready after fix", lambda: kube.condition(ns, "nb", "Ready").get("status") == "True", 120)
    status = json.dumps(kube.get(ns, "nb"))
    assert "hunter2" not in status


def test_metrics_count_calls_and_phases(stack):
    _, operator, _ = stack
    text = operator.metrics()
    assert 'juliarun_calls_total{operation="getAllJobInfo",outcome="ok"}' in text
    assert metric(text, 'juliarun_reconciles_total{outcome="ok"}') > 0
    assert "juliarun_jobs{phase=" in text
    assert TOKEN not in text and TOKEN_B64 not in text


def test_no_token_in_events_or_status(stack, control_plane):
    events = control_plane.kubectl("get", "events", "-A", "-o", "json").stdout
    objects = control_plane.kubectl("get", "jrj", "-A", "-o", "json").stdout
    for text in (events, objects):
        assert TOKEN not in text and TOKEN_B64 not in text


def test_logs_through_the_resource_and_the_kubectl_plugin(stack, ns, control_plane):
    emulator, _, kube = stack
    kube.apply(ns, job("talk", "Webserver", runVolume="v", cfgFile="c"))
    wait_for("talk running", phase_is(kube, ns, "talk", "Running"))
    env = {
        **control_plane.env,
        "JULIARUN_URL": emulator.url,
        "JULIARUN_TOKEN": TOKEN,
        "JULIARUN_NAMESPACE": JRUN_NAMESPACE,
    }
    plugin = Path(sys.executable).with_name("kubectl-juliarun")
    for args in (
        [str(plugin), "logs", "talk", "-n", ns, "--count", "3"],
        [sys.executable, "-m", "juliarun_operator.cli", "logs", "--resource", "talk", "-k", ns, "-c", "3"],
    ):
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert 0 < len(out.stdout.splitlines()) <= 3
        assert TOKEN not in out.stdout + out.stderr
    missing = subprocess.run(
        [str(plugin), "logs", "nothing", "-n", ns], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1 and 'nothing" not found' in missing.stderr


def test_two_operators_one_acts_and_the_other_takes_over(stack, namespaces, control_plane, tmp_path):
    emulator, single, kube = stack
    single.kill(signal.SIGTERM)  # make room: peers only, for this test
    ns = namespaces.take(kube)
    lease = f"peers-{ns}"
    flags = ("--lease-name", lease, "--lease-namespace", "default", "--lease-duration", "5")
    first = Operator(tmp_path, control_plane.kubeconfig, emulator, *flags, watch=[ns], log_name="first.log")
    second = Operator(tmp_path, control_plane.kubeconfig, emulator, *flags, watch=[ns], log_name="second.log")
    first.start()
    wait_for("the first operator acting", lambda: "acting: this replica" in first.text())
    second.start()
    try:
        kube.apply(ns, job("one", "Webserver", runVolume="v", cfgFile="c"))
        wait_for("one running", phase_is(kube, ns, "one", "Running"))
        assert "acting: this replica" not in second.text()
        first.kill(signal.SIGKILL)
        kube.apply(ns, job("two", "Webserver", runVolume="v", cfgFile="c"))
        wait_for("two running under the second operator", phase_is(kube, ns, "two", "Running"), 90)
        assert "acting: this replica" in second.text()
        assert emulator.calls("submitJob", kube.status(ns, "one")["jobName"]) == 1
        kube.clean_up(ns)  # by the second, still acting
    finally:
        first.kill(signal.SIGTERM)
        second.kill(signal.SIGTERM)
        single.start()
    for log in (first.text(), second.text()):
        assert TOKEN not in log and TOKEN_B64 not in log


def test_deletion_waits_for_juliarun_and_keeps_the_finalizer(stack, ns, control_plane):
    emulator, _, kube = stack
    kube.apply(ns, job("gone", "Webserver", runVolume="v", cfgFile="c"))
    wait_for("gone running", phase_is(kube, ns, "gone", "Running"))
    name = kube.status(ns, "gone")["jobName"]
    emulator.set_faults({"deleteJob": {"http_5xx_rate": 1.0}})
    try:
        control_plane.kubectl("delete", "jrj", "gone", "-n", ns, "--wait=false")
        wait_for("deleteJob attempted", lambda: emulator.calls("deleteJob", name) >= 1)
        time.sleep(2)
        obj = kube.get(ns, "gone")
        assert obj and "juliarun.dev/finalizer" in obj["metadata"]["finalizers"]
        assert name in emulator.jobs()
    finally:
        emulator.clear_faults()
    wait_for("object gone after JuliaRun recovers", lambda: kube.get(ns, "gone") is None, 90)
    assert name not in emulator.jobs()


def test_a_job_deleted_behind_the_operators_back_is_reported(stack, ns):
    emulator, _, kube = stack
    from juliarun_operator.juliarun import Client, Context, Job

    kube.apply(ns, job("lost", "Webserver", runVolume="v", cfgFile="c"))
    wait_for("lost running", phase_is(kube, ns, "lost", "Running"))
    name = kube.status(ns, "lost")["jobName"]
    Client(Context(url=emulator.url, token=TOKEN, namespace=JRUN_NAMESPACE)).delete_job(
        Job("Webserver", name), force=True
    )
    stalled = wait_for(
        "JobMissing", lambda: (c := kube.condition(ns, "lost", "Stalled")).get("reason") == "JobMissing" and c
    )
    assert name in stalled["message"]
    time.sleep(2)
    assert emulator.calls("submitJob", name) == 1  # reported, never resubmitted


def test_juliarun_without_a_compute_cluster_is_reported(stack, ns):
    emulator, operator, kube = stack
    kube.apply(ns, job("sys", "Webserver", runVolume="v", cfgFile="c"))
    wait_for("sys ready", lambda: kube.condition(ns, "sys", "Ready").get("status") == "True")
    emulator.set_faults({"system_status": False})
    try:
        ready = wait_for(
            "system down reported",
            lambda: (c := kube.condition(ns, "sys", "Ready")).get("status") == "Unknown" and c,
            30,
        )
        assert "compute cluster" in ready["message"]
        readyz = requests.get(f"http://127.0.0.1:{operator.metrics_port}/readyz", timeout=5)
        assert readyz.status_code == 503
    finally:
        emulator.clear_faults()
    wait_for("sys ready again", lambda: kube.condition(ns, "sys", "Ready").get("status") == "True", 30)


def test_another_namespace_cannot_reach_a_job_by_name_or_adoption(stack, namespaces, control_plane):
    """Team B knows team A's job name. Even trusted to adopt (this operator runs with
    --adopt-namespace '*'), B cannot take it: the name is held by A's object. Nothing B does
    reaches A's job, and B's deletion leaves it running."""
    emulator, _, kube = stack
    team_a, team_b = namespaces.take(kube), namespaces.take(kube)
    kube.apply(team_a, job("sim", "Webserver", runVolume="v", cfgFile="c", parallelism=1))
    wait_for("A's job ready", lambda: kube.condition(team_a, "sim", "Ready").get("status") == "True")
    name = kube.status(team_a, "sim")["jobName"]
    before = emulator.counters()["jobs"][JRUN_NAMESPACE][name]
    thief = job("grab", "Webserver", runVolume="mine", cfgFile="c", parallelism=5, jobName=name)
    thief["metadata"]["annotations"] = {"juliarun.dev/adopt": "true"}
    kube.apply(team_b, thief)

    def refused():
        c = kube.condition(team_b, "grab", "Stalled")
        return c.get("status") == "True" and c

    stalled = wait_for("B refused", refused)
    assert stalled["reason"] == "Conflict" and "held by an object of another namespace" in stalled["message"]
    assert f"{team_a}/sim" not in stalled["message"]  # another namespace's objects are not B's to read
    control_plane.kubectl("delete", "jrj", "grab", "-n", team_b, "--timeout=60s")
    after = emulator.counters()["jobs"][JRUN_NAMESPACE][name]
    for op in ("setJobScale", "updateJob", "deleteJob", "submitJob"):
        assert after.get(op, 0) == before.get(op, 0), f"{op} reached team A's job"
    assert name in emulator.jobs() and kube.status(team_a, "sim")["scale"] == {"running": 1, "requested": 1}
