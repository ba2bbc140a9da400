"""Crash safety: the operator SIGKILLed under churn, JuliaRun failing, the API server restarting.

Each test runs its own JuliaRun server and operator (processes), so counters and JuliaRun's
job list belong to that test alone. The API-server restart test also runs its own control
plane, so the session cluster other tests use is never disturbed.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
import yaml

from juliarun_dev import devcluster
from juliarun_operator.api import default_job_name

from harness import (
    JRUN_NAMESPACE,
    TOKEN,
    Emulator,
    Kube,
    Operator,
    apply_crds,
    deny_status_writes,
    job,
    metric,
    namespace_name,
    running,
    started,
    wait_for,
)

pytestmark = pytest.mark.integration
EMULATOR_FLAGS = ("--create-delay", "0.3", "--worker-delay", "0.1", "--seed", "7")


# --- helpers ---------------------------------------------------------------------------------


def web(name: str, parallelism: int) -> dict:
    return job(name, "Webserver", runVolume="v", cfgFile="c", parallelism=parallelism)


def apply_many(cp, ns: str, docs: list[dict]) -> None:
    """One `kubectl apply -f -` for many objects."""
    if docs:
        cp.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))


def delete_many(cp, ns: str, names: list[str]) -> None:
    if names:
        cp.kubectl("delete", "jrj", *names, "-n", ns, "--wait=false")


def objects(cp, ns: str) -> dict[str, dict]:
    """Every JuliaRunJob in `ns`, by name, from one list call."""
    out = cp.kubectl("get", "jrj", "-n", ns, "-o", "json").stdout
    return {o["metadata"]["name"]: o for o in json.loads(out)["items"]}


def ready(obj: dict) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return c["status"] == "True"
    return False


def converged(cp, ns: str, wanted: dict[str, int]):
    """A check for wait_for: exactly the `wanted` objects exist, each submitted, Ready, at scale."""

    def check():
        objs = objects(cp, ns)
        if set(objs) != set(wanted):
            extra, missing = sorted(set(objs) - set(wanted)), sorted(set(wanted) - set(objs))
            return AssertionError(f"objects: {len(extra)} not yet gone {extra[:5]}, missing {missing[:5]}")
        lagging = []
        for name, p in wanted.items():
            status = objs[name].get("status") or {}
            if not (
                status.get("submitted")
                and ready(objs[name])
                and status.get("scale") == {"running": p, "requested": p}
            ):
                lagging.append((name, status.get("phase"), status.get("scale"), p))
        if lagging:
            return AssertionError(f"{len(lagging)} not converged, e.g. {lagging[:3]}")
        return objs

    return check


def submit_counts(emulator: Emulator) -> dict[str, int]:
    """submitJob requests JuliaRun received, per job name (jobs since deleted included)."""
    per_job = emulator.counters()["jobs"].get(JRUN_NAMESPACE, {})
    return {name: ops.get("submitJob", 0) for name, ops in per_job.items() if ops.get("submitJob")}


def total_calls(emulator: Emulator) -> tuple[int, dict[str, int]]:
    ops = dict(emulator.counters()["operations"])
    return sum(ops.values()), ops


def check_juliarun_matches(emulator: Emulator, objs: dict[str, dict]) -> None:
    """JuliaRun holds exactly the live objects' jobs, each of the right type."""
    jobs = emulator.jobs()
    expected = {o["status"]["jobName"] for o in objs.values()}
    assert set(jobs) == expected, (
        f"JuliaRun has {len(set(jobs) - expected)} jobs of no live object "
        f"{sorted(set(jobs) - expected)[:5]}, lacks {sorted(expected - set(jobs))[:5]}"
    )
    assert set(jobs.values()) <= {"Webserver"}
    for name, obj in objs.items():
        meta = obj["metadata"]
        assert obj["status"]["jobName"] == default_job_name(meta["namespace"], name, meta["uid"])


@pytest.fixture
def ns(control_plane) -> str:
    """This test's namespace, the only one its operator watches."""
    return Kube(control_plane).namespace(namespace_name("crash"))


@pytest.fixture
def stack(control_plane, tmp_path, ns):
    """A JuliaRun server and an operator of this test's own, against the session cluster."""
    apply_crds(control_plane)
    emulator = Emulator(tmp_path, *EMULATOR_FLAGS)
    operator = Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns])
    with running(control_plane, emulator, operator) as stack:
        yield stack


# --- 1. churn under SIGKILL -------------------------------------------------------------------

CHURN_OBJECTS = 300
CHURN_BATCH = 50
CHURN_KILLS = 8
CHURN_SEED = 20240611


def test_churn_with_random_sigkills(stack, ns, control_plane):
    """300 objects created in batches, some scaled, some deleted, while the operator is
    SIGKILLed 8 times at seeded random moments (sometimes with changes made while it is down).

    After a final restart and convergence: every live object is submitted, Ready and at the
    requested scale; JuliaRun's jobs are exactly the live objects' status.jobName (the deleted
    objects' jobs are gone, deletionPolicy Delete); every job name got exactly one submitJob;
    every deleted object is gone from the API (none stuck on the finalizer).
    """
    emulator, operator, _ = stack
    cp = control_plane
    rng = random.Random(CHURN_SEED)  # noqa: S311 (seeded test choices, not secrets)
    live: dict[str, int] = {}
    deleted: set[str] = set()
    started = time.monotonic()

    def create(batch: int) -> None:
        docs = []
        for i in range(batch * CHURN_BATCH, (batch + 1) * CHURN_BATCH):
            name = f"w{i:03d}"
            live[name] = rng.randint(1, 3)
            docs.append(web(name, live[name]))
        apply_many(cp, ns, docs)

    def scale() -> None:
        chosen = rng.sample(sorted(live), min(30, len(live)))
        for name in chosen:
            live[name] = rng.choice([p for p in (1, 2, 3, 4) if p != live[name]])
        apply_many(cp, ns, [web(n, live[n]) for n in chosen])

    def delete() -> None:
        chosen = rng.sample(sorted(live), min(rng.randint(10, 25), len(live)))
        for name in chosen:
            del live[name]
        deleted.update(chosen)
        delete_many(cp, ns, chosen)

    steps = []
    for batch in range(CHURN_OBJECTS // CHURN_BATCH):
        steps += [(create, batch), (scale,), (delete,)]
    kill_after = set(rng.sample(range(len(steps)), CHURN_KILLS))
    kills, down_steps = 0, 0
    down = False
    for i, (action, *args) in enumerate(steps):
        action(*args)
        if down:  # this step's change was made while no operator ran: restart now
            operator.start()
            down = False
        time.sleep(rng.uniform(0.0, 2.5))  # a random moment of the operator's work
        if i in kill_after:
            operator.kill(signal.SIGKILL)
            kills += 1
            if rng.random() < 0.5 and i + 1 < len(steps):
                down, down_steps = True, down_steps + 1
            else:
                time.sleep(rng.uniform(0.0, 1.0))
                operator.start()
    if down:
        operator.start()
    # A final SIGKILL and restart, then convergence.
    time.sleep(rng.uniform(0.5, 2.0))
    operator.kill(signal.SIGKILL)
    operator.start()
    churned = time.monotonic() - started
    objs = wait_for("churned objects to converge", converged(cp, ns, live), 150, 2.0)
    took = time.monotonic() - started
    print(
        f"\nchurn: {CHURN_OBJECTS} objects, {len(deleted)} deleted, {kills + 1} SIGKILLs "
        f"({down_steps} with a change made while down); churn {churned:.0f} s, converged at {took:.0f} s"
    )

    check_juliarun_matches(emulator, objs)
    counts = submit_counts(emulator)
    twice = {n: c for n, c in counts.items() if c != 1}
    assert not twice, f"job names submitted more than once: {twice}"
    for obj in objs.values():
        assert counts.get(obj["status"]["jobName"]) == 1
    # The deleted objects' jobs are gone from JuliaRun: it holds exactly the live objects' jobs
    # (checked above), so an object deleted before it was ever submitted left no job behind.
    assert not deleted & set(objects(cp, ns))
    assert operator.proc.poll() is None


# --- 2. JuliaRun failing, then healed -----------------------------------------------------------

FAULTS = {
    "*": {"error_rate": 0.3, "hang_rate": 0.05, "hang_seconds": 30, "malformed_rate": 0.05, "drop_rate": 0.05}
}
FAULT_WINDOW = 20.0
# See the docstring of the test for where this comes from.
MAX_CALL_RATE = 10.0


def test_juliarun_faults_then_healed(stack, ns, control_plane):
    """50 objects; for 20 s JuliaRun fails (30% errors, 5% hangs of 30 s past the operator's
    2 s time-out, 5% malformed bodies, 5% dropped connections) while 25 objects are created
    and 15 scaled.

    Bound on JuliaRun's call rate during the faults, from the design: the status sync makes
    one getAllJobInfo per interval (1 s) and at most one getSystemStatus per health interval
    (2 s here); handlers call JuliaRun through the shared connection, which after any failure
    refuses every call locally until its backoff expires (base 1 s, cap 60 s, jitter in the
    upper half); a handler refused locally is retried by kopf after the remaining backoff.
    A success resets the backoff, so with ~45% of calls failing the gate opens about every
    0.75 s and lets at most the handlers then waiting (one call each before the next failure
    closes it, in practice a few) through. That gives about 1 + 0.5 + a few per second; the
    test asserts <= 10 calls/s on average over the window.

    Then faults are cleared and everything must converge: all 50 Ready at the requested
    scale, JuliaRun holding exactly their jobs, and one submitJob per job name for the
    objects whose jobs were submitted before the faults (submitJob itself failing makes a
    second submit request legitimate: the per-name count of those is only bounded, and
    JuliaRun still holds one job per object).
    """
    emulator, operator, _ = stack
    cp = control_plane
    rng = random.Random(4242)  # noqa: S311 (seeded test choices, not secrets)
    wanted = {f"f{i:02d}": rng.randint(1, 3) for i in range(25)}
    apply_many(cp, ns, [web(n, p) for n, p in wanted.items()])
    wait_for("first 25 converged", converged(cp, ns, wanted), 90, 1.0)
    before_counts = submit_counts(emulator)

    emulator.set_faults(FAULTS)
    faults_on = time.monotonic()
    calls_before, ops_before = total_calls(emulator)
    try:
        later = {f"f{i:02d}": rng.randint(1, 3) for i in range(25, 50)}
        wanted.update(later)
        apply_many(cp, ns, [web(n, p) for n, p in later.items()])
        time.sleep(FAULT_WINDOW / 2)
        rescaled = rng.sample([f"f{i:02d}" for i in range(25)], 15)
        for name in rescaled:
            wanted[name] = rng.choice([p for p in (1, 2, 3, 4) if p != wanted[name]])
        apply_many(cp, ns, [web(n, wanted[n]) for n in rescaled])
        time.sleep(max(0.0, FAULT_WINDOW - (time.monotonic() - faults_on)))
        calls_after, ops_after = total_calls(emulator)
        elapsed = time.monotonic() - faults_on
        # Unavailable shows in the conditions while JuliaRun fails.
        objs = objects(cp, ns)
        assert operator.proc.poll() is None
    finally:
        emulator.clear_faults()
    rate = (calls_after - calls_before) / elapsed
    by_op = {
        op: ops_after[op] - ops_before.get(op, 0)
        for op in ops_after
        if ops_after[op] != ops_before.get(op, 0)
    }
    print(f"\nfaults: {calls_after - calls_before} JuliaRun calls in {elapsed:.1f} s = {rate:.2f}/s; {by_op}")
    assert rate <= MAX_CALL_RATE, f"{rate:.1f} calls/s while JuliaRun fails: {by_op}"
    unavailable = [
        n
        for n, o in objs.items()
        if any(
            c["type"] == "Ready" and c.get("reason") == "JuliaRunUnavailable"
            for c in (o.get("status") or {}).get("conditions") or []
        )
    ]

    healed = time.monotonic()
    # Hung requests (30 s) may still be held by JuliaRun: allow for them to end.
    objs = wait_for("all 50 converged after the faults", converged(cp, ns, wanted), 120, 1.0)
    print(
        f"faults: converged {time.monotonic() - healed:.1f} s after healing; "
        f"{len(unavailable)} objects showed JuliaRunUnavailable during the faults"
    )
    # A request hung at the very end of the window is answered (and applied) up to
    # hang_seconds later: look again once every one of them has ended.
    time.sleep(max(0.0, FAULTS["*"]["hang_seconds"] + 1 - (time.monotonic() - healed)))
    objs = wait_for("still converged once hung requests ended", converged(cp, ns, wanted), 30, 1.0)
    check_juliarun_matches(emulator, objs)
    counts = submit_counts(emulator)
    for name in before_counts:  # submitted before the faults: never submitted again
        assert counts[name] == 1, f"{name} submitted {counts[name]} times"
    for obj in objs.values():
        assert counts.get(obj["status"]["jobName"], 0) >= 1
    print(
        f"faults: submitJob requests per later job name: "
        f"{sorted(c for n, c in counts.items() if n not in before_counts)}"
    )
    assert operator.proc.poll() is None


# --- 3. the API server restarting under a running operator ------------------------------------


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def stop_control_plane(state_dir: Path) -> tuple[list[str], list[str]]:
    """SIGTERM kube-apiserver, then etcd; returns their command lines to start them again."""
    info = devcluster.ClusterInfo.from_json((state_dir / "cluster.json").read_text())
    etcd_args, api_args = _cmdline(info.etcd_pid), _cmdline(info.apiserver_pid)
    devcluster.processes.stop(info.apiserver_pid, info.bin_dir / "kube-apiserver")
    devcluster.processes.stop(info.etcd_pid, info.bin_dir / "etcd")
    return etcd_args, api_args


def start_control_plane(state_dir: Path, etcd_args: list[str], api_args: list[str]) -> None:
    """Start etcd and kube-apiserver again: same ports, certificates and data dir; the state
    file gets the new pids so devcluster.down still stops them."""
    import requests

    info = devcluster.ClusterInfo.from_json((state_dir / "cluster.json").read_text())
    etcd_url = next(a.split("=", 1)[1] for a in etcd_args if a.startswith("--listen-client-urls="))
    etcd_log, api_log = state_dir / "etcd.log", state_dir / "kube-apiserver.log"
    etcd = devcluster.processes.spawn(etcd_args, etcd_log)
    devcluster.processes.wait_until(
        lambda: requests.get(f"{etcd_url}/health", timeout=1).json().get("health") == "true",
        etcd,
        etcd_log,
        "etcd",
    )
    apiserver = devcluster.processes.spawn(api_args, api_log)
    pki = state_dir / "pki"
    devcluster.processes.wait_until(
        lambda: (
            requests.get(
                f"{info.server}/readyz",
                verify=str(pki / "ca.crt"),
                cert=(str(pki / "admin.crt"), str(pki / "admin.key")),
                timeout=2,
            ).status_code
            == 200
        ),
        apiserver,
        api_log,
        "kube-apiserver",
    )
    info.etcd_pid, info.apiserver_pid = etcd.pid, apiserver.pid
    (state_dir / "cluster.json").write_text(info.to_json())


@pytest.fixture
def own_control_plane(tmp_path_factory):
    from conftest import ControlPlane

    state_dir = tmp_path_factory.mktemp("restart-cluster")
    info = devcluster.up(state_dir=state_dir / "cluster")
    try:
        yield (
            ControlPlane(
                info.kubeconfig, info.server, info.kubectl, False, tmp_path_factory.mktemp("restart-tokens")
            ),
            state_dir / "cluster",
        )
    finally:
        devcluster.down(state_dir / "cluster")


def test_apiserver_restart_under_running_operator(own_control_plane, tmp_path):
    """Objects Ready; etcd and kube-apiserver stopped (SIGTERM) for ~5 s and started again on
    the same ports with the same certificates and data. The operator (same process, same PID)
    resumes: a scale change made after the restart reaches JuliaRun and the status, a new
    object is submitted, and the existing objects get no second submitJob."""
    cp, state_dir = own_control_plane
    apply_crds(cp)
    emulator = Emulator(tmp_path, *EMULATOR_FLAGS)
    emulator.start()
    ns = "restart"  # in a cluster of its own
    operator = Operator(tmp_path, cp.kubeconfig, emulator, watch=[ns])
    operator.start()
    try:
        kube = Kube(cp)
        kube.namespace(ns)
        wanted = {f"r{i}": 1 + i % 3 for i in range(10)}
        apply_many(cp, ns, [web(n, p) for n, p in wanted.items()])
        wait_for("objects ready before the restart", converged(cp, ns, wanted), 90, 1.0)
        pid = operator.proc.pid
        before = submit_counts(emulator)
        assert len(before) == 10 and set(before.values()) == {1}

        stopped = time.monotonic()
        etcd_args, api_args = stop_control_plane(state_dir)
        time.sleep(5)
        start_control_plane(state_dir, etcd_args, api_args)
        print(f"\nrestart: control plane down for {time.monotonic() - stopped:.1f} s")
        assert operator.proc.poll() is None, "the operator exited while the API server was down"

        restarted = time.monotonic()
        wanted["r0"] = 4
        wanted["r1"] = 3
        wanted["new"] = 2
        apply_many(cp, ns, [web(n, wanted[n]) for n in ("r0", "r1", "new")])
        objs = wait_for("converged after the restart", converged(cp, ns, wanted), 120, 1.0)
        print(f"restart: converged on the change {time.monotonic() - restarted:.1f} s after the restart")
        assert operator.proc.pid == pid and operator.proc.poll() is None
        check_juliarun_matches(emulator, objs)
        after = submit_counts(emulator)
        assert {n: after[n] for n in before} == before, "an existing object was submitted again"
        assert after[objs["new"]["status"]["jobName"]] == 1
        r0 = objs["r0"]["status"]["jobName"]
        assert emulator.calls("setJobScale", r0) >= 1
        # Deletion still works through the finalizer after the restart.
        cp.kubectl("delete", "jrj", "r2", "-n", ns, "--timeout=60s")
        assert objs["r2"]["status"]["jobName"] not in emulator.jobs()
    finally:
        operator.kill(signal.SIGTERM)
        emulator.kill(signal.SIGTERM)


# --- a submit that JuliaRun applies after the client gave up on it ---------------------------


def test_a_late_landing_submit_after_deletion_leaves_no_job(stack, ns, control_plane):
    """submitJob held by JuliaRun for 12 s (past the operator's 2 s time-out and its 5 s wait)
    and applied then; the object is deleted while the submit is in flight. JuliaRun must not
    be left with a job that no object owns."""
    emulator, _operator, kube = stack
    emulator.set_faults({"submitJob": {"hang_rate": 1.0, "hang_seconds": 12}})
    try:
        kube.apply(ns, web("late", 1))
        name = kube.job_name(ns, "late")
        wait_for("submitJob in flight", lambda: emulator.calls("submitJob", name) >= 1, 30, 0.05)
        control_plane.kubectl("delete", "jrj", "late", "-n", ns, "--wait=false")
        wait_for("object gone", lambda: kube.get(ns, "late") is None, 60)
    finally:
        emulator.clear_faults()
    time.sleep(14)  # every held submit has been applied by now
    leaked = name in emulator.jobs()
    assert not leaked, (
        f"JuliaRun job {name} outlived its object (submitJob requests: {emulator.calls('submitJob', name)})"
    )


# --- a restart between a refused submit and its status write -------------------------------

# Status writes that record a refused submit are denied: the operator is stopped while only
# its memory knows of the refusal (the window a restart can fall into).
RECORDS_NO_REFUSAL = (
    "!(has(object.status) && has(object.status.conditions) && "
    "object.status.conditions.exists(c, has(c.reason) && c.reason == 'SubmitRefused'))"
)
REFUSAL_SHOWN = {"status": {"conditions": [{"type": "Stalled", "status": "True", "reason": "SubmitRefused"}]}}


def policy_in_force(control_plane, kube: Kube, ns: str) -> None:
    """The policy denies a write recording a refusal (admission policies apply a moment after
    they are created): tried on an object no operator looks at yet, then deleted."""
    kube.apply(ns, web("probe", 1))

    def denied() -> bool:
        result = control_plane.kubectl(
            "patch", "jrj", "probe", "-n", ns, "--subresource=status", "--type=merge",
            "-p", json.dumps(REFUSAL_SHOWN), check=False,
        )  # fmt: skip
        return result.returncode != 0 and "denied by the test" in result.stderr

    wait_for("the admission policy in force", denied, 30, 0.5)
    control_plane.kubectl("delete", "jrj", "probe", "-n", ns)


@pytest.mark.parametrize(
    ("chosen", "stranger"),
    [(True, True), (True, False), (False, True)],
    ids=["spec.jobName, a stranger's job", "spec.jobName, no job", "default name, a job of it"],
)
def test_a_restart_between_a_refused_submit_and_its_status_write(control_plane, tmp_path, chosen, stranger):
    """Operator A's submit is refused and the write saying so denied; A stops (SIGTERM: it
    hands the Lease back) with only its memory knowing. Meanwhile a job of that name appears.
    Operator B neither takes a stranger's job for the object's (a chosen name) nor deletes it
    with the object; a default name's job (the name hashes the object's UID: an earlier submit
    landed) is the object's, and goes with it; with no job, B submits; deleting the object
    leaves no job running that it created."""
    from juliarun_operator.juliarun import Client, Context, Job

    apply_crds(control_plane)
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("refused"))
    emulator = Emulator(tmp_path, *EMULATOR_FLAGS)
    # Landing: 2 s time-outs (the harness's) twice, 1 s, and this 1 s window.
    lease = ("--lease-name", ns, "--lease-namespace", "default", "--lease-duration", "3")
    lease += ("--submit-landing-window", "1")
    first = Operator(tmp_path, control_plane.kubeconfig, emulator, *lease, watch=[ns], log_name="a.log")
    second = Operator(tmp_path, control_plane.kubeconfig, emulator, *lease, watch=[ns], log_name="b.log")
    spec = {"jobName": f"{ns}-mine"} if chosen else {}
    with started(control_plane) as start:
        start(emulator)
        remove_policy = deny_status_writes(control_plane, ns, RECORDS_NO_REFUSAL)
        try:
            policy_in_force(control_plane, kube, ns)
            emulator.set_faults({"submitJob": {"error_rate": 1.0}})  # refused: an answer, not a loss
            start(first)
            wait_for("A acting", lambda: "acting: this replica" in first.text())
            acting = time.monotonic()
            kube.apply(ns, {**web("obj", 1), "spec": {**web("obj", 1)["spec"], **spec}})
            name = spec.get("jobName") or kube.job_name(ns, "obj")
            wait_for(
                "a refused submit whose status write is denied",
                lambda: (
                    emulator.calls("submitJob", name) >= 1
                    and metric(first.metrics(), "juliarun_status_write_failures_total") >= 1
                ),
                60,
            )
            # Past the landing window since A began to act, whatever a process before it sent
            # can no longer land: A stops saying every submit was answered (the Lease).
            wait_for("A acting longer than the landing window", lambda: time.monotonic() > acting + 7, 30)
            first.kill(signal.SIGTERM)
            assert first.proc is not None and first.proc.returncode == 0, first.text()[-2000:]
            lease_obj = json.loads(
                control_plane.kubectl("get", "lease", ns, "-n", "default", "-o", "json").stdout
            )
            assert lease_obj["metadata"]["annotations"]["juliarun.dev/sends-settled"] == "true"
        finally:
            remove_policy()
        status = kube.status(ns, "obj")
        assert "SubmitRefused" not in json.dumps(status)  # stopped before the refusal was written
        if chosen:  # the name recorded before the submit is still there
            assert status.get("jobName") == name and not status.get("submitted"), status
        emulator.clear_faults()
        if stranger:
            someone = Client(Context(url=emulator.url, token=TOKEN, namespace=JRUN_NAMESPACE))
            someone.submit_job(Job("Webserver", name), run_volume="v", cfg_file="c", nworkers=1)
        start(second)
        if chosen and stranger:
            wait_for("a conflict", lambda: kube.condition(ns, "obj", "Stalled").get("reason") == "Conflict")
            assert not kube.status(ns, "obj").get("submitted")
            assert not [e for e in kube.events(ns, "obj") if e["reason"] == "Adopted"]
        else:
            wait_for("the object running its job", lambda: kube.at_scale(ns, "obj", 1), 60)
            assert kube.status(ns, "obj")["jobName"] == name
        control_plane.kubectl("delete", "jrj", "obj", "-n", ns, "--timeout=60s")
        if chosen and stranger:  # the stranger's job is untouched
            assert name in emulator.jobs() and emulator.calls("deleteJob", name) == 0
        else:  # the object's job went with it
            assert name not in emulator.jobs() and emulator.calls("deleteJob", name) >= 1
