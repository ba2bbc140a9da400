"""The reconcile core against real processes: a JuliaRun server with other error codes, the
standby replica, one broken Secret among many objects, status without waiting for the
interval, and JuliaRun's call rate while it fails."""

from __future__ import annotations

import signal
import time

import pytest

from harness import (
    JRUN_NAMESPACE,
    TOKEN,
    Emulator,
    Kube,
    Operator,
    apply_crds,
    job,
    metric,
    namespace_name,
    started,
    wait_for,
)

pytestmark = pytest.mark.integration


def namespace(kube: Kube, prefix: str) -> str:
    return kube.namespace(namespace_name(prefix))


@pytest.fixture
def processes(control_plane):
    """Started by each test as it needs them; stopped at the end, their objects deleted first."""
    apply_crds(control_plane)
    with started(control_plane) as start:
        yield start


def test_conflict_and_refusal_with_error_codes_unlike_ours(control_plane, tmp_path, processes):
    """The operator decides by what an answer means, not by its code: against a server whose
    codes are all different, a taken name is a conflict (never adopted) and a refused submit
    leaves no recorded name that a later look could take for ours."""
    from juliarun_operator.juliarun import Client, Context, Job

    emulator = processes(Emulator(tmp_path, "--code-offset", "1000", "--create-delay", "0.2"))
    kube = Kube(control_plane)
    ns = namespace(kube, "codes")
    operator = processes(Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns]))
    stranger = Client(Context(url=emulator.url, token=TOKEN, namespace=JRUN_NAMESPACE))

    taken = f"{ns}-taken"
    stranger.submit_job(Job("Webserver", taken), run_volume="v", cfg_file="c")
    kube.apply(ns, job("taken", "Webserver", runVolume="v", cfgFile="c", jobName=taken))
    wait_for("conflict", lambda: kube.condition(ns, "taken", "Stalled").get("reason") == "Conflict")

    emulator.set_faults({"submitJob": {"error_rate": 1.0}})  # answered with code 1099
    kube.apply(ns, job("refused", "Webserver", runVolume="v", cfgFile="c", jobName=f"{ns}-later"))
    wait_for("refusal", lambda: kube.condition(ns, "refused", "Stalled").get("reason") == "SubmitRefused")
    assert "jobName" not in kube.status(ns, "refused")
    # A stranger's job of that name appears; the operator restarts (its memory is gone).
    emulator.clear_faults()
    stranger.submit_job(Job("Webserver", f"{ns}-later"), run_volume="v", cfg_file="c")
    operator.kill(signal.SIGKILL)
    operator.start()
    wait_for(
        "conflict, not adoption", lambda: kube.condition(ns, "refused", "Stalled").get("reason") == "Conflict"
    )

    control_plane.kubectl("delete", "jrj", "--all", "-n", ns, "--timeout=60s")
    assert {taken, f"{ns}-later"} <= set(emulator.jobs())  # the strangers' jobs are untouched
    assert emulator.calls("deleteJob", taken) == 0 and emulator.calls("deleteJob", f"{ns}-later") == 0


def test_the_standby_replica_calls_nothing_and_writes_nothing(control_plane, tmp_path, processes):
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
    kube = Kube(control_plane)
    ns = namespace(kube, "standby")
    flags = ("--lease-name", ns, "--lease-namespace", "default")
    first = processes(
        Operator(tmp_path, control_plane.kubeconfig, emulator, *flags, watch=[ns], log_name="first.log")
    )
    wait_for("the first replica acting", lambda: "acting: this replica" in first.text())
    second = processes(
        Operator(tmp_path, control_plane.kubeconfig, emulator, *flags, watch=[ns], log_name="second.log")
    )
    kube.apply(ns, *[job(f"w{i}", "Webserver", runVolume="v", cfgFile="c", parallelism=2) for i in range(10)])
    wait_for("all ready", lambda: all(kube.ready(ns, f"w{i}") for i in range(10)), 60)
    control_plane.kubectl("scale", "jrj", "--all", "-n", ns, "--replicas=3")
    wait_for(
        "all at 3",
        lambda: all(
            kube.status(ns, f"w{i}").get("scale") == {"running": 3, "requested": 3} for i in range(10)
        ),
        60,
    )
    standby = second.metrics()
    assert metric(standby, "juliarun_calls_total") == 0
    assert metric(standby, "juliarun_kube_writes_total") == 0
    assert metric(first.metrics(), "juliarun_kube_writes_total") > 0


def test_one_broken_secret_among_a_hundred_objects_is_that_objects_alone(control_plane, tmp_path, processes):
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.05"))
    kube = Kube(control_plane)
    ns = namespace(kube, "broken")
    processes(Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns]))
    # A Secret whose token is not text, and one nobody marked for the operator.
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        "binary",
        "-n",
        ns,
        "--from-literal=url=http://127.0.0.1:1",
        "--from-file=token=/bin/true",
        "--from-literal=namespace=x",
    )
    control_plane.kubectl("label", "secret", "binary", "-n", ns, "juliarun.dev/credentials=true")
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        "unmarked",
        "-n",
        ns,
        f"--from-literal=url={emulator.url}",
        f"--from-literal=token={TOKEN}",
        f"--from-literal=namespace={JRUN_NAMESPACE}",
    )
    objs = [job(f"o{i:02d}", "Webserver", runVolume="v", cfgFile="c", parallelism=1) for i in range(98)]
    objs += [
        job("bad-binary", "Webserver", runVolume="v", cfgFile="c", credentialsRef={"name": "binary"}),
        job("bad-unmarked", "Webserver", runVolume="v", cfgFile="c", credentialsRef={"name": "unmarked"}),
    ]
    kube.apply(ns, *objs)
    good = [f"o{i:02d}" for i in range(98)]
    wait_for("98 ready", lambda: all(kube.ready(ns, n) for n in good), 120, 1.0)
    control_plane.kubectl("scale", "jrj", *good, "-n", ns, "--replicas=2")
    wait_for(
        "98 at the new scale",
        lambda: all(kube.status(ns, n).get("scale") == {"running": 2, "requested": 2} for n in good),
        120,
        1.0,
    )
    for name, why in (("bad-binary", "not UTF-8"), ("bad-unmarked", "not marked for the operator")):
        ready_cond = kube.condition(ns, name, "Ready")
        assert ready_cond["reason"] == "CredentialsUnavailable" and why in ready_cond["message"], ready_cond


def test_ready_soon_after_juliarun_shows_it_whatever_the_sync_interval(control_plane, tmp_path, processes):
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.3", "--worker-delay", "0.1"))
    kube = Kube(control_plane)
    ns = namespace(kube, "soon")
    operator = processes(
        Operator(
            tmp_path,
            control_plane.kubeconfig,
            emulator,
            "--sync-interval",
            "120",
            "--resync-interval",
            "2",
            watch=[ns],
        )
    )
    kube.apply(ns, *[job(f"s{i}", "Webserver", runVolume="v", cfgFile="c", parallelism=2) for i in range(20)])
    # Far sooner than the 120 s interval: objects that wait for JuliaRun share a look each second.
    wait_for("20 ready", lambda: all(kube.ready(ns, f"s{i}") for i in range(20)), 30)
    control_plane.kubectl("scale", "jrj/s0", "-n", ns, "--replicas=4")
    wait_for(
        "s0 at 4",
        lambda: kube.status(ns, "s0").get("scale") == {"running": 4, "requested": 4} and kube.ready(ns, "s0"),
        30,
    )
    # Settled: no more looks until the interval (one getAllJobInfo per 120 s).
    settled = wait_for(
        "no object waiting",
        lambda: (c := emulator.calls("getAllJobInfo"), time.sleep(2.5), emulator.calls("getAllJobInfo") == c)[
            -1
        ],
        30,
    )
    assert settled
    # Full passes over every object (every 2 s here) write nothing when nothing changed.
    writes = metric(operator.metrics(), "juliarun_kube_writes_total")
    time.sleep(5)
    assert metric(operator.metrics(), "juliarun_kube_writes_total") == writes
    assert metric(operator.metrics(), "juliarun_status_write_failures_total") == 0


def test_credentials_cannot_be_switched_once_submitted(control_plane, tmp_path, processes):
    """Submitted through a credentials Secret, an object that drops credentialsRef does not
    move to the default connection: it is stalled, and its deletion still goes to its own."""
    from juliarun_operator.juliarun import Client, Context

    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.05"))
    kube = Kube(control_plane)
    ns = namespace(kube, "switch")
    processes(Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns]))
    team_token = "team-switch-s3cr3t-5151"
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        "own",
        "-n",
        ns,
        f"--from-literal=url={emulator.url}",
        f"--from-literal=token={team_token}",
        "--from-literal=namespace=team-own",
    )
    control_plane.kubectl("label", "secret", "own", "-n", ns, "juliarun.dev/credentials=true")
    spec = {"runVolume": "v", "cfgFile": "c", "parallelism": 1}
    kube.apply(ns, job("sw", "Webserver", **spec, credentialsRef={"name": "own"}))
    wait_for("sw ready", lambda: kube.ready(ns, "sw"), 60)
    assert kube.status(ns, "sw")["connection"] == "Secret/own"
    name = kube.status(ns, "sw")["jobName"]
    kube.apply(ns, job("sw", "Webserver", **spec))  # credentialsRef removed
    control_plane.kubectl(
        "patch",
        "jrj/sw",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/spec/credentialsRef"}]',
        check=False,
    )
    wait_for("stalled", lambda: kube.condition(ns, "sw", "Stalled").get("reason") == "ConnectionChanged")
    assert name not in emulator.jobs()  # nothing went to the default connection
    control_plane.kubectl("delete", "jrj", "sw", "-n", ns, "--timeout=60s")
    own = Client(Context(url=emulator.url, token=team_token, namespace="team-own"))
    assert own.list_jobs() == {}


def test_juliarun_call_rate_while_it_fails_is_bounded_whatever_the_number_of_objects(
    control_plane, tmp_path, processes
):
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.05"))
    kube = Kube(control_plane)
    ns = namespace(kube, "rate")
    processes(Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns]))
    kube.apply(
        ns, *[job(f"r{i:02d}", "Webserver", runVolume="v", cfgFile="c", parallelism=1) for i in range(60)]
    )
    wait_for("60 ready", lambda: all(kube.ready(ns, f"r{i:02d}") for i in range(60)), 90, 1.0)
    emulator.set_faults({"*": {"http_5xx_rate": 1.0}})
    try:
        control_plane.kubectl("scale", "jrj", "--all", "-n", ns, "--replicas=2")  # 60 objects want a call
        before = sum(emulator.counters()["operations"].values())
        time.sleep(10)
        calls = sum(emulator.counters()["operations"].values()) - before
    finally:
        emulator.clear_faults()
    # One trial call per backoff (1 s doubling to 60 s) for the connection, whatever the
    # number of objects: over 10 s at most ~1 + log2(10) trials, and the health checks.
    assert calls <= 8, f"{calls} calls in 10 s while JuliaRun failed"
    wait_for(
        "60 at scale after recovery",
        lambda: all(
            kube.status(ns, f"r{i:02d}").get("scale") == {"running": 2, "requested": 2} for i in range(60)
        ),
        120,
        1.0,
    )


def test_the_administrator_maps_a_namespace_to_its_own_juliarun_identity(control_plane, tmp_path, processes):
    """--namespace-connection: a namespace's jobs go to the JuliaRun identity and namespace
    the administrator chose (a Secret in the operator's namespace), the others' to the default."""
    from juliarun_operator.juliarun import Client, Context

    kube = Kube(control_plane)
    mapped, other = namespace(kube, "mapped"), namespace(kube, "plain")
    secret = f"conn-{mapped}"
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.05"))
    mapped_token = "mapped-team-s3cr3t-9393"
    # The administrator's Secret: in the operator's own namespace (here "default"), unlabelled.
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        secret,
        "-n",
        "default",
        f"--from-literal=url={emulator.url}",
        f"--from-literal=token={mapped_token}",
        "--from-literal=namespace=team-mapped",
    )
    operator = processes(
        Operator(
            tmp_path,
            control_plane.kubeconfig,
            emulator,
            "--namespace-connection",
            f"{mapped}={secret}",
            watch=[mapped, other],
        )
    )
    for ns in (mapped, other):
        kube.apply(ns, job("j", "Webserver", runVolume="v", cfgFile="c", parallelism=1))
    wait_for("both ready", lambda: kube.ready(mapped, "j") and kube.ready(other, "j"), 60)
    assert kube.status(mapped, "j")["connection"] == f"Admin/{secret}"
    team = Client(Context(url=emulator.url, token=mapped_token, namespace="team-mapped"))
    assert set(team.list_jobs()) == {kube.status(mapped, "j")["jobName"]}
    assert kube.status(other, "j")["jobName"] in emulator.jobs()  # the default connection
    for ns in (mapped, other):
        control_plane.kubectl("delete", "jrj", "j", "-n", ns, "--timeout=60s")
    assert team.list_jobs() == {}
    assert mapped_token not in operator.text()


def test_a_credentials_url_outside_the_allow_list_never_reaches_the_network(
    control_plane, tmp_path, processes
):
    """The operator's allow-list here is 127.0.0.1 (harness): a Secret naming `localhost`, or
    userinfo, or a query, is refused before any connection; the listening socket sees none."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    emulator = processes(Emulator(tmp_path))
    kube = Kube(control_plane)
    ns = namespace(kube, "ssrf")
    processes(Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns]))
    urls = {
        "host": f"http://localhost:{port}",
        "userinfo": f"http://u:p@127.0.0.1:{port}",
        "query": f"http://127.0.0.1:{port}/x?y=",
    }
    for name, url in urls.items():
        control_plane.kubectl(
            "create",
            "secret",
            "generic",
            name,
            "-n",
            ns,
            f"--from-literal=url={url}",
            f"--from-literal=token={TOKEN}",
            "--from-literal=namespace=x",
        )
        control_plane.kubectl("label", "secret", name, "-n", ns, "juliarun.dev/credentials=true")
        kube.apply(ns, job(name, "Webserver", runVolume="v", cfgFile="c", credentialsRef={"name": name}))
    why = {"host": "allow-list", "userinfo": "userinfo", "query": "query"}
    for name in urls:
        wait_for(
            f"{name} refused", lambda n=name: why[n] in kube.condition(ns, n, "Ready").get("message", ""), 30
        )
    accepted = 0
    try:
        while True:
            conn, _ = listener.accept()
            conn.close()
            accepted += 1
    except TimeoutError:
        pass
    finally:
        listener.close()
    assert accepted == 0
    for e in kube.events(ns, "userinfo"):
        assert "u:p@" not in e["message"]


def test_by_default_a_namespace_names_jobs_only_within_its_own_prefix(control_plane, tmp_path, processes):
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2"))
    kube = Kube(control_plane)
    team_a, team_b = namespace(kube, "pa"), namespace(kube, "pb")
    processes(
        Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[team_a, team_b])
    )  # no --adopt-namespace
    kube.apply(team_a, job("sim", "Webserver", runVolume="v", cfgFile="c"))
    wait_for("A ready", lambda: kube.ready(team_a, "sim"), 60)
    name = kube.status(team_a, "sim")["jobName"]
    thief = job("grab", "Webserver", runVolume="v", cfgFile="c", jobName=name)
    thief["metadata"]["annotations"] = {"juliarun.dev/adopt": "true"}
    kube.apply(team_b, thief)
    wait_for(
        "refused",
        lambda: f"must start with {team_b}-" in kube.condition(team_b, "grab", "Stalled").get("message", ""),
    )
    assert emulator.calls("submitJob", name) == 1
