"""Noisy neighbours: team B misbehaves, team A's new objects are Ready within a stated bound,
and no text of B's reaches A. One test per shared resource (the breaker, the snapshot loop,
the workers, memory), then fencing, start-up failures and status that tells the truth.

Against real processes: the kube-apiserver, the JuliaRun emulator (A's default connection),
the operator, and for B a misbehaving JuliaRun on loopback (tests/support/servers.py) named
by B's credentials Secret.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import pytest

from harness import JULIARUN, Emulator, Kube, Operator, apply_crds, job, metric, namespace_name, started
from support.servers import Recorder, misbehaving
from support.wait import wait_for

pytestmark = pytest.mark.integration
READY_BOUND = 15.0  # seconds from apply to Ready for A's objects, whatever B does (2 s when quiet)
WEB = {"runVolume": "www", "cfgFile": "nginx.conf"}


@pytest.fixture
def processes(control_plane):
    apply_crds(control_plane)
    with started(control_plane) as start:
        yield start


def teams(kube: Kube) -> tuple[str, str]:
    return kube.namespace(namespace_name("team-a")), kube.namespace(namespace_name("team-b"))


def tenant_secret(control_plane, namespace: str, url: str) -> None:
    control_plane.kubectl(
        "create", "secret", "generic", "juliarun", "-n", namespace,
        f"--from-literal=url={url}", "--from-literal=token=team-b-token-0123456789",
        "--from-literal=namespace=team-b",
    )  # fmt: skip
    control_plane.kubectl("label", "secret", "juliarun", "-n", namespace, "juliarun.dev/credentials=true")


def team_a_ready_within(kube: Kube, ns: str, count: int = 3) -> float:
    """Seconds from applying A's new objects to all of them Ready (fails past READY_BOUND)."""
    started_at = time.monotonic()
    kube.apply(ns, *[job(f"a{i}", "Webserver", **WEB, parallelism=1) for i in range(count)])
    wait_for(
        "team A's objects Ready", lambda: all(kube.ready(ns, f"a{i}") for i in range(count)), READY_BOUND, 0.2
    )
    return time.monotonic() - started_at


def what_a_reads(control_plane, kube: Kube, ns: str) -> str:
    """Every status and Event of team A's namespace, as text."""
    objects = control_plane.kubectl("get", "jrj", "-n", ns, "-o", "json").stdout
    events = control_plane.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    return objects + events


def rss_mb(operator: Operator) -> float:
    assert operator.proc is not None
    with open(f"/proc/{operator.proc.pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_the_breaker_one_teams_unsendable_requests_are_its_own(control_plane, tmp_path, processes):
    """B's specs pass admission but make requests over what JuliaRun reads (multibyte text
    triples in the query): they are B's objects' fault, refused before sending, and never
    the shared connection's."""
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
    kube = Kube(control_plane)
    a, b = teams(kube)
    operator = processes(Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[a, b]))
    script = "ü" * 1400  # 1,400 characters, 8,400 bytes on the wire
    kube.apply(b, *[job(f"b{i}", "JuliaBatch", runVolume="jobs", startScript=script) for i in range(10)])
    wait_for(
        "B's objects stalled as invalid",
        lambda: all(kube.condition(b, f"b{i}", "Stalled").get("reason") == "InvalidSpec" for i in range(10)),
        30,
    )
    assert "bytes" in kube.condition(b, "b0", "Stalled")["message"]
    team_a_ready_within(kube, a)
    assert emulator.calls("submitJob") == 3  # A's; nothing of B's was sent
    seen = what_a_reads(control_plane, kube, a)
    assert "bytes" not in seen and "startScript" not in seen and b not in seen
    assert metric(operator.metrics(), "juliarun_connections_unavailable") == 0


def test_the_snapshot_loop_a_trickling_tenant_juliarun_delays_only_its_own(
    control_plane, tmp_path, processes
):
    """B's JuliaRun answers one byte a second: B's snapshots and calls end at their deadline,
    in B's own loop; A's objects are Ready as if B were not there, and liveness holds."""
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
    kube = Kube(control_plane)
    a, b = teams(kube)
    with misbehaving("trickle", pause=1.0) as slow:
        tenant_secret(control_plane, b, slow.url)
        operator = processes(
            Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[a, b], tenant_urls=[slow.url])
        )
        kube.apply(
            b, *[job(f"b{i}", "Webserver", **WEB, credentialsRef={"name": "juliarun"}) for i in range(5)]
        )
        wait_for("B's JuliaRun asked", lambda: len(slow.requests) >= 1, 30)
        team_a_ready_within(kube, a)
        health = operator_get(operator, "/healthz")
        assert health.startswith("200"), health
        seen = what_a_reads(control_plane, kube, a)
        assert str(slow.port) not in seen and b not in seen
        ready = operator_get(operator, "/readyz")
        assert str(slow.port) not in ready and "team-b" not in ready


def test_the_workers_a_slow_tenant_holds_no_more_than_its_call_cap(control_plane, tmp_path, processes):
    """Forty of B's objects on a trickling JuliaRun and only 6 workers: B's calls are capped
    (2 at once on its connection), so A's objects still find workers."""
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
    kube = Kube(control_plane)
    a, b = teams(kube)
    with misbehaving("trickle", pause=1.0) as slow:
        tenant_secret(control_plane, b, slow.url)
        processes(
            Operator(
                tmp_path,
                control_plane.kubeconfig,
                emulator,
                "--workers",
                "6",
                "--max-calls",
                "2",
                watch=[a, b],
                tenant_urls=[slow.url],
            )
        )
        kube.apply(
            b, *[job(f"b{i}", "Webserver", **WEB, credentialsRef={"name": "juliarun"}) for i in range(40)]
        )
        wait_for("B's JuliaRun asked", lambda: len(slow.requests) >= 1, 30)
        team_a_ready_within(kube, a, count=5)


def test_memory_a_tenant_juliarun_answering_without_end_fills_no_memory(control_plane, tmp_path, processes):
    """B's JuliaRun answers every request with a gigabyte: the operator reads at most its byte
    cap of it, and A goes on."""
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
    kube = Kube(control_plane)
    a, b = teams(kube)
    with misbehaving("huge", huge_bytes=1 << 30) as huge:
        tenant_secret(control_plane, b, huge.url)
        operator = processes(
            Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[a, b], tenant_urls=[huge.url])
        )
        before = rss_mb(operator)
        kube.apply(b, job("b0", "Webserver", **WEB, credentialsRef={"name": "juliarun"}))
        wait_for("B's JuliaRun asked twice", lambda: len(huge.requests) >= 2, 60)
        team_a_ready_within(kube, a)
        grown = rss_mb(operator) - before
        assert grown < 200, (
            f"the operator grew by {grown:.0f} MB while B's JuliaRun sent {huge.sent_bytes:,} bytes"
        )
        assert what_a_reads(control_plane, kube, a).count(str(huge.port)) == 0


def operator_get(operator: Operator, path: str) -> str:
    import requests

    answer = requests.get(f"http://127.0.0.1:{operator.metrics_port}{path}", timeout=5)
    return f"{answer.status_code} {answer.text}"


# --- fencing ----------------------------------------------------------------------------------


def lease_holder(control_plane, name: str) -> str:
    out = control_plane.kubectl("get", "lease", name, "-n", "default", "-o", "json", check=False)
    if out.returncode:
        return ""
    return json.loads(out.stdout)["spec"].get("holderIdentity") or ""


WRITES = ("submitJob", "setJobScale", "updateJob", "deleteJob")


def test_fencing_a_leader_stopped_past_its_lease_sends_nothing_when_it_runs_again(
    control_plane, tmp_path, processes
):
    """Both replicas use one JuliaRun; the first through a relay that records what it sends."""
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("fence"))
    lease = ("--lease-name", ns, "--lease-namespace", "default", "--lease-duration", "3")
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
    relay = Recorder(emulator.port).start()
    try:
        first = Operator(
            tmp_path, control_plane.kubeconfig, emulator, *lease, watch=[ns], log_name="first.log"
        )
        first.env["JULIARUN_URL"] = relay.url
        processes(first)
        wait_for("the first operator acting", lambda: metric(first.metrics(), "juliarun_acting") == 1, 30)
        kube.apply(ns, job("web", "Webserver", **WEB, parallelism=1))
        wait_for("Ready under the first", lambda: kube.ready(ns, "web"), 30)
        assert relay.count("submitJob") == 1
        holder = lease_holder(control_plane, ns)
        assert first.proc is not None
        first.proc.send_signal(signal.SIGSTOP)
        sent_before = relay.count(*WRITES)
        second = processes(
            Operator(tmp_path, control_plane.kubeconfig, emulator, *lease, watch=[ns], log_name="second.log")
        )
        wait_for("the Lease taken over", lambda: lease_holder(control_plane, ns) not in ("", holder), 30)
        control_plane.kubectl("scale", "jrj/web", "-n", ns, "--replicas=3")  # news for the stopped one too
        wait_for(
            "the second at scale", lambda: kube.status(ns, "web").get("scale", {}).get("running") == 3, 30
        )
        first.proc.send_signal(signal.SIGCONT)
        wait_for("the first standing by", lambda: metric(first.metrics(), "juliarun_acting") == 0, 30)
        assert relay.count(*WRITES) == sent_before, relay.operations
        assert second.proc is not None and second.proc.poll() is None
    finally:
        relay.stop()


# --- start-up failures ------------------------------------------------------------------------


def test_a_port_in_use_stops_the_operator_at_once_with_one_line(control_plane, tmp_path):
    apply_crds(control_plane)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    lease = f"startup-{port}"
    env = {
        "KUBECONFIG": str(control_plane.kubeconfig),
        "JULIARUN_URL": "http://127.0.0.1:9",
        "PATH": "/usr/bin:/bin",
    }
    started_at = time.monotonic()
    result = subprocess.run(
        [
            *JULIARUN,
            "operator",
            "--metrics-port",
            str(port),
            "--lease-name",
            lease,
            "--lease-namespace",
            "default",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    taken.close()
    assert result.returncode != 0 and time.monotonic() - started_at < 20
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--metrics-port" in lines[0] and "METRICS_PORT" in lines[0], result.stderr
    assert lease_holder(control_plane, lease) == ""  # never taken, so nothing to wait out


# --- status that tells the truth, soon ----------------------------------------------------------


def test_ready_only_at_the_requested_scale_and_a_batch_end_shows_within_two_seconds(
    control_plane, tmp_path, processes
):
    emulator = processes(
        Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "1.0", "--run-time", "2")
    )
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("truth"))
    # The quiet interval at the default's 10 s: what is seen sooner is seen because it is watched.
    processes(Operator(tmp_path, control_plane.kubeconfig, emulator, "--sync-interval", "10", watch=[ns]))
    kube.apply(ns, job("web", "Webserver", **WEB, parallelism=3))
    wait_for("at scale", lambda: kube.ready(ns, "web"), 30)
    control_plane.kubectl("scale", "jrj/web", "-n", ns, "--replicas=1")
    wait_for("the scale-down seen", lambda: kube.status(ns, "web").get("scale", {}).get("requested") == 1, 10)

    def truthful() -> bool:
        status = kube.status(ns, "web")
        ready = kube.condition(ns, "web", "Ready").get("status") == "True"
        assert not ready or status["scale"]["running"] == 1, status["scale"]  # never Ready at 3/1
        return ready

    wait_for("Ready at 1/1", truthful, 15, 0.1)
    kube.apply(ns, job("batch", "JuliaBatch", runVolume="jobs", startScript="run.jl"))
    wait_for("running", lambda: kube.status(ns, "batch").get("created") is True, 20, 0.1)
    running_at = time.monotonic()
    wait_for("Complete", lambda: kube.condition(ns, "batch", "Complete").get("status") == "True", 10, 0.1)
    # 2 s of run time, and at most 2 s to show it (not the 10 s interval).
    assert time.monotonic() - running_at < 2 + 2.5


def test_a_deleted_and_recreated_crd_is_watched_again_without_a_restart(control_plane, tmp_path, processes):
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("crd"))
    operator = processes(Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns]))
    kube.apply(ns, job("before", "Webserver", **WEB))
    wait_for("Ready before", lambda: kube.ready(ns, "before"), 30)
    control_plane.kubectl("delete", "jrj", "before", "-n", ns, "--timeout=60s")
    control_plane.kubectl("delete", "crd", "juliarunjobs.juliarun.dev", "--timeout=60s")
    apply_crds(control_plane)
    kube.apply(ns, job("after", "Webserver", **WEB))
    wait_for("Ready after the CRD came back", lambda: kube.ready(ns, "after"), 60)
    assert operator.proc is not None and operator.proc.poll() is None
