"""Batch jobs end to end: Complete and Failed for `kubectl wait`, TTL, deadline, retries,
suspend. A real API server, the JuliaRun server and the operator as processes; jobs fail
because the JuliaRun server is told to fail them (a job variable or a fault rule)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from juliarun_operator.emulator.state import FAIL_ENV, RUN_TIME_ENV
from juliarun_operator.reconcile.decision import status as st

from argocd_lua import argocd_health
from harness import (
    JRUN_NAMESPACE,
    TOKEN,
    Emulator,
    Namespaces,
    Operator,
    apply_crds,
    job,
    running,
    using,
    wait_for,
)
from support.docs import run_block

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RUN_TIME = 4  # seconds a batch job runs in the JuliaRun server; a "crash" dies at half of it


@pytest.fixture(scope="module")
def namespaces(request) -> Namespaces:
    return Namespaces("b", using(request, "ns"))


@pytest.fixture(scope="module")
def stack(control_plane, tmp_path_factory, namespaces):
    workdir = tmp_path_factory.mktemp("batch")
    apply_crds(control_plane)
    emulator = Emulator(workdir, "--create-delay", "0.3", "--run-time", str(RUN_TIME), "--seed", "7")
    operator = Operator(workdir, control_plane.kubeconfig, emulator, watch=namespaces.names)
    with running(control_plane, emulator, operator) as stack:
        yield stack


@pytest.fixture
def ns(stack, namespaces):
    return namespaces.take(stack[2])


def batch(name: str, fail: str = "", **spec) -> dict:
    if fail:
        spec["envVars"] = [{"name": FAIL_ENV, "value": fail}]
    return job(name, "JuliaBatch", runVolume="jobs", startScript="run.jl", **spec)


def ours(emulator: Emulator, ns: str, name: str) -> dict[str, int]:
    """submitJob calls per JuliaRun name of this object (its names start `<ns>-<name>-`)."""
    jobs = emulator.counters()["jobs"].get("ops", {})
    return {n: c.get("submitJob", 0) for n, c in jobs.items() if n.startswith(f"{ns}-{name}-")}


def plugin(cp, emulator: Emulator, *args: str) -> subprocess.CompletedProcess:
    """`kubectl juliarun ...` as installed with the package."""
    env = {
        **cp.env,
        "JULIARUN_URL": emulator.url,
        "JULIARUN_TOKEN": TOKEN,
        "JULIARUN_NAMESPACE": JRUN_NAMESPACE,
    }
    exe = Path(sys.executable).with_name("kubectl-juliarun")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=60)


def status_writes(operator: Operator) -> int:
    line = next(x for x in operator.metrics().splitlines() if x.startswith("juliarun_status_writes_total "))
    return int(float(line.split()[1]))


def test_api_writes_of_a_batch_job(stack, ns, control_plane):
    """Writes per object (the operator's, besides the user's create): a job that succeeds
    costs its finalizer, at most three status writes (scheduled or running, then complete)
    and the completion Event; a job that fails once and succeeds on its retry adds the
    retry's record, one more attempt's views and two Events (its logs, AttemptFailed).
    Runs first in this module, while no other object of the operator moves."""
    emulator, operator, kube = stack
    names = [f"ok{i}" for i in range(5)]
    before = status_writes(operator)
    kube.apply(ns, *[batch(n) for n in names])
    for n in names:
        control_plane.kubectl("wait", "--for=condition=Complete", f"jrj/{n}", "-n", ns, "--timeout=60s")
    ok_writes = status_writes(operator) - before
    ok_events = sum(len(kube.events(ns, n)) for n in names)
    retried = [f"retry{i}" for i in range(5)]
    emulator.set_faults({"jobs": [{"match": f"{ns}-{n}-*", "fail": "all", "count": 1} for n in retried]})
    try:
        before = status_writes(operator)
        kube.apply(ns, *[batch(n, backoffLimit=1) for n in retried])
        for n in retried:
            control_plane.kubectl("wait", "--for=condition=Complete", f"jrj/{n}", "-n", ns, "--timeout=60s")
    finally:
        emulator.clear_faults()
    assert all(kube.status(ns, n)["attempts"] == 2 for n in retried)
    retry_writes = status_writes(operator) - before
    retry_events = sum(len(kube.events(ns, n)) for n in retried)
    print(f"\nper successful batch job: {ok_writes / 5:.1f} status writes, {ok_events / 5:.1f} Events")
    print(f"per job that fails once: {retry_writes / 5:.1f} status writes, {retry_events / 5:.1f} Events")
    assert ok_writes <= 3 * 5 and ok_events == 5
    assert retry_writes <= 7 * 5 and retry_events == 3 * 5


def test_kubectl_wait_for_complete_and_for_failed(stack, ns, control_plane):
    _, _, kube = stack
    kube.apply(ns, batch("good"), batch("bad", fail="all"))
    done = control_plane.kubectl("wait", "--for=condition=Complete", "jrj/good", "-n", ns, "--timeout=60s")
    assert "condition met" in done.stdout
    failed = control_plane.kubectl("wait", "--for=condition=Failed", "jrj/bad", "-n", ns, "--timeout=60s")
    assert "condition met" in failed.stdout
    good, bad = kube.status(ns, "good"), kube.status(ns, "bad")
    assert good["phase"] == "Completed" and good["succeeded"] == 1
    assert st.parse_time(good["completionTime"]) >= st.parse_time(good["startTime"])
    assert bad["phase"] == "Failed" and bad["failed"] == 1 and "completionTime" not in bad
    assert kube.condition(ns, "bad", "Failed")["reason"] == "JobFailed"
    assert "ERROR: job failed" in bad["lastLogs"]  # the last lines, kept in status
    # Neither condition is ever set on the other.
    assert not kube.condition(ns, "good", "Failed") and not kube.condition(ns, "bad", "Complete")


def test_ttl_deletes_the_object_and_its_job_at_the_stated_time_not_before(stack, ns, control_plane):
    emulator, operator, kube = stack
    ttl = 6
    kube.apply(ns, batch("short", ttlSecondsAfterFinished=ttl))
    control_plane.kubectl("wait", "--for=condition=Complete", "jrj/short", "-n", ns, "--timeout=60s")
    obj = kube.get(ns, "short")
    name, uid = obj["status"]["jobName"], obj["metadata"]["uid"]
    ended = st.parse_time(kube.condition(ns, "short", "Complete")["lastTransitionTime"])
    assert name in emulator.jobs()
    while time.time() < ended + ttl - 1.0:  # until just before its time, it stays
        assert kube.get(ns, "short") is not None, f"deleted {ended + ttl - time.time():.1f} s early"
        time.sleep(0.2)
    wait_for("the object deleted", lambda: kube.get(ns, "short") is None, 30)
    gone_at = time.time()
    assert gone_at < ended + ttl + 10
    assert name not in emulator.jobs()
    # The last log lines outlive the object: in the operator's log, with the object's UID.
    assert any(
        uid in line and "ended: Completed; last log lines" in line for line in operator.text().splitlines()
    )


def test_a_deadline_ends_a_running_job(stack, ns, control_plane):
    emulator, _, kube = stack
    slow = batch("slow", activeDeadlineSeconds=2)
    slow["spec"]["envVars"] = [{"name": RUN_TIME_ENV, "value": "600"}]  # it would run 10 minutes
    kube.apply(ns, slow)
    control_plane.kubectl("wait", "--for=condition=Failed", "jrj/slow", "-n", ns, "--timeout=60s")
    failed = kube.condition(ns, "slow", "Failed")
    assert failed["reason"] == "DeadlineExceeded" and "activeDeadlineSeconds (2 s)" in failed["message"]
    status = kube.status(ns, "slow")
    assert status["jobName"] not in emulator.jobs()  # deleted in JuliaRun, while it ran
    assert emulator.calls("deleteJob", status["jobName"]) == 1
    assert st.parse_time(failed["lastTransitionTime"]) - st.parse_time(status["startTime"]) >= 2  # not before
    assert any(e["reason"] == "DeadlineExceeded" for e in kube.events(ns, "slow"))
    # Its JuliaRun job is gone; the plugin shows the last lines the operator kept.
    out = plugin(control_plane, emulator, "logs", "slow", "-n", ns)
    assert out.returncode == 0, out.stderr
    assert "its last lines, as the operator kept them" in out.stderr and "job created" in out.stdout


def test_backoff_limit_two_with_a_job_that_always_fails(stack, ns, control_plane):
    emulator, _, kube = stack
    kube.apply(ns, batch("flaky", fail="crash", backoffLimit=2))
    control_plane.kubectl("wait", "--for=condition=Failed", "jrj/flaky", "-n", ns, "--timeout=90s")
    base = kube.job_name(ns, "flaky")
    assert ours(emulator, ns, "flaky") == {base: 1, f"{base}-2": 1, f"{base}-3": 1}
    status = kube.status(ns, "flaky")
    assert status["attempts"] == 3 and status["failed"] == 3 and status["jobName"] == f"{base}-3"
    assert kube.condition(ns, "flaky", "Failed")["reason"] == "BackoffLimitExceeded"
    retries = [e for e in kube.events(ns, "flaky") if e["reason"] == "AttemptFailed"]
    assert len(retries) == 2
    # The plugin lists the attempts, and tails an earlier one's job, still in JuliaRun.
    listed = plugin(control_plane, emulator, "attempts", "flaky", "-n", ns, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["attempt"], r["jobName"], r["result"]) for r in rows] == [
        (1, base, "Failed"),
        (2, f"{base}-2", "Failed"),
        (3, f"{base}-3", "Failed"),
    ]
    table = plugin(control_plane, emulator, "attempts", "flaky", "-n", ns).stdout.splitlines()
    assert table[0].split()[:3] == ["ATTEMPT", "JOB", "RESULT"] and len(table) == 4
    first = plugin(control_plane, emulator, "logs", "flaky", "-n", ns, "--attempt", "1", "--count", "3")
    assert first.returncode == 0 and "died while running" in first.stdout
    # Deleted, it takes every attempt's JuliaRun job with it.
    control_plane.kubectl("delete", "jrj/flaky", "-n", ns, "--timeout=60s")
    assert not [n for n in emulator.jobs() if n.startswith(base)]


def test_backoff_limit_two_with_a_job_that_fails_once(stack, ns, control_plane):
    emulator, _, kube = stack
    emulator.set_faults({"jobs": [{"match": f"{ns}-once-*", "fail": "all", "count": 1}]})
    try:
        kube.apply(ns, batch("once", backoffLimit=2))
        control_plane.kubectl("wait", "--for=condition=Complete", "jrj/once", "-n", ns, "--timeout=90s")
    finally:
        emulator.clear_faults()
    base = kube.job_name(ns, "once")
    assert ours(emulator, ns, "once") == {base: 1, f"{base}-2": 1}
    status = kube.status(ns, "once")
    assert status["attempts"] == 2 and status["failed"] == 1 and status["succeeded"] == 1


def test_suspend_and_resume_a_running_job(stack, ns, control_plane):
    emulator, _, kube = stack
    kube.apply(ns, batch("held", suspend=True))
    wait_for("held suspended", lambda: kube.status(ns, "held").get("phase") == "Suspended")
    assert not ours(emulator, ns, "held")  # suspended from the start: never submitted
    kube.apply(ns, batch("held", suspend=False))
    wait_for("held running", lambda: kube.status(ns, "held").get("phase") == "Running")
    base = kube.status(ns, "held")["jobName"]
    control_plane.kubectl("patch", "jrj/held", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    control_plane.kubectl("wait", "--for=condition=Suspended", "jrj/held", "-n", ns, "--timeout=30s")
    assert kube.status(ns, "held")["phase"] == "Suspended" and base not in emulator.jobs()
    control_plane.kubectl("patch", "jrj/held", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    control_plane.kubectl("wait", "--for=condition=Complete", "jrj/held", "-n", ns, "--timeout=60s")
    status = kube.status(ns, "held")
    assert status["attempts"] == 2 and status.get("failed", 0) == 0 and status["jobName"] == f"{base}-2"
    assert ours(emulator, ns, "held") == {base: 1, f"{base}-2": 1}
    assert kube.condition(ns, "held", "Suspended")["status"] == "False"


def test_deletion_during_a_retry_leaves_nothing_in_juliarun(stack, ns, control_plane):
    emulator, _, kube = stack
    kube.apply(ns, batch("doomed", fail="crash", backoffLimit=20))
    wait_for("a second attempt", lambda: kube.status(ns, "doomed").get("attempts", 0) >= 2, 60)
    control_plane.kubectl("delete", "jrj/doomed", "-n", ns, "--timeout=60s")
    submitted = ours(emulator, ns, "doomed")
    assert len(submitted) >= 2 and set(submitted.values()) == {1}
    assert not [n for n in emulator.jobs() if n.startswith(f"{ns}-doomed-")]
    # Nothing more is submitted after the object is gone, however many passes follow.
    polls = emulator.calls("getAllJobInfo")
    wait_for("three snapshots after the deletion", lambda: emulator.calls("getAllJobInfo") >= polls + 3)
    assert ours(emulator, ns, "doomed") == submitted


def test_batch_fields_are_explained_and_checked_by_the_api_server(stack, ns, control_plane):
    explained = control_plane.kubectl("explain", "jrj.spec.backoffLimit").stdout
    assert "Failed attempts to retry" in explained
    web = job("web", "Webserver", runVolume="w", cfgFile="c", backoffLimit=1)
    refused = control_plane.kubectl(
        "apply", "-n", ns, "-f", "-", "--dry-run=server", input=json.dumps(web), check=False
    )
    assert refused.returncode != 0 and "spec.backoffLimit applies only to" in refused.stderr
    negative = control_plane.kubectl(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        "--dry-run=server",
        input=json.dumps(batch("neg", backoffLimit=-1)),
        check=False,
    )
    assert negative.returncode != 0 and "backoffLimit" in negative.stderr


def test_gitops_tools_read_real_finished_jobs(stack, ns, control_plane, tmp_path, lua):
    """kstatus (Flux) and the Argo CD health check on objects as the operator left them."""
    _, _, kube = stack
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "kstatus" / "build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        timeout=900,
        check=True,
    )
    kstatus = built.stdout.strip().splitlines()[-1]
    kube.apply(ns, batch("fine"), batch("broken", fail="some"), batch("paused", suspend=True))
    control_plane.kubectl("wait", "--for=condition=Complete", "jrj/fine", "-n", ns, "--timeout=60s")
    control_plane.kubectl("wait", "--for=condition=Failed", "jrj/broken", "-n", ns, "--timeout=60s")
    control_plane.kubectl("wait", "--for=condition=Suspended", "jrj/paused", "-n", ns, "--timeout=60s")
    objs = {n: kube.get(ns, n) for n in ("fine", "broken", "paused")}
    argo = {n: argocd_health(lua, o, tmp_path)[0] for n, o in objs.items()}
    assert argo == {"fine": "Healthy", "broken": "Degraded", "paused": "Suspended"}
    out = subprocess.run(
        [kstatus],
        input=yaml.safe_dump_all(list(objs.values())),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    got = {line.split("\t")[0].rsplit("/", 1)[1]: line.split("\t")[1] for line in out.splitlines()}
    assert got == {"fine": "Current", "broken": "Failed", "paused": "InProgress"}


def test_readme_batch_commands_as_written(stack, ns, control_plane, tmp_path):
    """README.md's "Batch jobs" block, in the namespace a user's kubeconfig selects."""
    _, _, kube = stack
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(control_plane.kubeconfig).read_text())
    kubectl = str(control_plane.kubectl_path)
    set_ns = [
        kubectl,
        f"--kubeconfig={kubeconfig}",
        "config",
        "set-context",
        "--current",
        f"--namespace={ns}",
    ]
    subprocess.run(set_ns, check=True, capture_output=True)
    bins = [Path(kubectl).parent, Path(sys.executable).parent]  # kubectl, and kubectl-juliarun for it
    path = ":".join([*map(str, bins), control_plane.env["PATH"]])
    # Only kubectl access, as a tenant: `kubectl juliarun logs` prints the lines the operator kept.
    env = {k: v for k, v in control_plane.env.items() if not k.startswith("JULIARUN_")}
    env |= {"KUBECONFIG": str(kubeconfig), "PATH": path}
    ran = run_block("README.md", "batch", env=env, timeout=600)
    out = ran.stdout
    assert "no JuliaRun credentials" in ran.stderr and "status.lastLogs" in ran.stderr
    assert out.count("condition met") == 2  # the two kubectl wait lines
    attempts = next(line for line in out.splitlines() if line.startswith("1 ")).split()
    assert attempts[:3] == ["1", kube.job_name(ns, "train"), "Complete"]
    logs = [line for line in out.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]  # the log lines
    assert len(logs) == 5, out  # --count 5
    nightly = kube.status(ns, "nightly")
    assert nightly["phase"] == "Completed" and nightly["attempts"] == 1  # never submitted before resume
    assert kube.condition(ns, "nightly", "Suspended")["status"] == "False"
