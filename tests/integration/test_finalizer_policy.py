"""The finalizer policy (deploy/finalizer-policy.yaml), installed as docs/install.md shows:
the API server puts the operator's finalizer on at creation, so the operator writes only
the status; deletion still deletes the JuliaRun job; and an object created while no
operator acted waits the landing window before its first submit, as the docs say."""

from __future__ import annotations

import datetime
import json
import os
import signal
import time
from pathlib import Path

import pytest

from harness import Emulator, Kube, Operator, apply_crds, job, metric, namespace_name, started, wait_for
from support.docs import run_block

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FINALIZER = "juliarun.dev/finalizer"


@pytest.fixture
def policy(control_plane):
    """The policy, applied by the documented command from the repository's root; removed at
    the end, so that other tests' objects are created without it."""
    kubectl_first = f"{control_plane.kubectl_path.parent}:{os.environ['PATH']}"
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "PATH": kubectl_first}
    run_block("docs/install.md", "finalizer-policy", env=env, timeout=60)
    yield
    control_plane.kubectl("delete", "-f", str(ROOT / "deploy" / "finalizer-policy.yaml"), "--wait=true")


@pytest.fixture
def stack(control_plane):
    apply_crds(control_plane)
    with started(control_plane) as start:
        yield start


def finalizers_at_creation(kube: Kube, ns: str) -> list[str]:
    """What a server-side dry-run create returns: the object as admission leaves it."""
    probe = job("probe", "JuliaBatch", runVolume="v", startScript="a.jl")
    out = kube.cp.kubectl(
        *("create", "--dry-run=server", "-n", ns, "-f", "-", "-o", "jsonpath={.metadata.finalizers}"),
        input=json.dumps(probe),
    )
    return json.loads(out.stdout) if out.stdout else []


def test_the_api_server_adds_the_finalizer_and_the_operator_writes_only_status(
    control_plane, tmp_path, stack, policy
):
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("policy"))
    wait_for("the policy in effect", lambda: FINALIZER in finalizers_at_creation(kube, ns), 30)
    # No delays: JuliaRun shows each job at its scale at once, so one status write says it all.
    emulator = stack(Emulator(tmp_path, "--create-delay", "0", "--worker-delay", "0"))
    operator = stack(Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns]))
    # Created in a later second than the operator began to act (creationTimestamp has whole
    # seconds): an object stamped in that second may be older, and waits for an earlier submit.
    began = acting_since(tmp_path / "operator.log")
    wait_for("a second after the operator began to act", lambda: time.time() > began + 1.05, 10)
    names = [f"p{i}" for i in range(10)]
    # No Service of their own (a Webserver gets one by default): the promise is about the job's writes.
    service = {"enabled": False}
    kube.apply(
        ns, *[job(n, "Webserver", runVolume="v", cfgFile="c", parallelism=1, service=service) for n in names]
    )
    wait_for("10 ready", lambda: all(kube.ready(ns, n) for n in names), 60)
    text = operator.metrics()
    # The operator wrote no finalizer (it came with the create): its only writes are the
    # status, one per object.
    assert metric(text, "juliarun_kube_writes_total") == metric(text, "juliarun_status_writes_total")
    assert metric(text, "juliarun_status_writes_total") == len(names)
    assert all(FINALIZER in (kube.get(ns, n) or {})["metadata"]["finalizers"] for n in names)
    assert emulator.calls("submitJob") == len(names)
    # Deleting still deletes the JuliaRun job, then lets the object go.
    jobs = {kube.status(ns, n)["jobName"] for n in names}
    control_plane.kubectl("delete", "jrj", "--all", "-n", ns, "--wait=false")
    wait_for("objects gone", lambda: all(kube.get(ns, n) is None for n in names), 60)
    assert emulator.calls("deleteJob") == len(jobs)


def test_an_object_created_while_no_operator_acts_waits_the_landing_window(
    control_plane, tmp_path, stack, policy
):
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("policy-gap"))
    wait_for("the policy in effect", lambda: FINALIZER in finalizers_at_creation(kube, ns), 30)
    emulator = stack(Emulator(tmp_path))
    # Created before any operator: it carries the finalizer, so it may have been submitted.
    kube.apply(ns, job("gap", "Webserver", runVolume="v", cfgFile="c", parallelism=1))
    created = time.time()
    # creationTimestamp has whole seconds: the operator must start in a later second.
    wait_for("a second after the create", lambda: time.time() > created + 1.05, 5)
    stack(
        Operator(
            tmp_path,
            control_plane.kubeconfig,
            emulator,
            "--submit-landing-window",
            "3",
            watch=[ns],
        )
    )
    wait_for(
        "waiting for an earlier submit",
        lambda: kube.condition(ns, "gap", "Ready").get("reason") == "WaitingForEarlierSubmit",
        30,
    )
    assert emulator.calls("submitJob") == 0
    # JULIARUN_TIMEOUT 2 s (the harness): the window is 2 + 2 + 1 + 3 s; then one submit.
    wait_for("ready after the window", lambda: kube.ready(ns, "gap"), 60)
    assert emulator.calls("submitJob") == 1
    control_plane.kubectl("delete", "jrj", "gap", "-n", ns, "--wait=false")
    wait_for("gone", lambda: kube.get(ns, "gap") is None, 60)


def acting_since(log: Path) -> float:
    """When the operator began to act, by its log line's time stamp."""
    (line,) = [ln for ln in log.read_text().splitlines() if "acting: this replica now calls" in ln]
    stamp = datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.astimezone().timestamp()


def lease_annotations(control_plane, ns: str, name: str) -> dict:
    lease = json.loads(control_plane.kubectl("get", "lease", name, "-n", ns, "-o", "json").stdout)
    return lease["metadata"].get("annotations") or {}


def test_after_a_clean_handover_an_object_created_in_the_gap_goes_at_once(
    control_plane, tmp_path, stack, policy
):
    """A replica that stops cleanly says in the Lease that every submit it sent was
    answered; the next one then submits an object created in between at once. After a
    crash the Lease says only when it was last written: the next one waits the window for
    an object created before that bound, and submits one created after it at once."""
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("policy-lease"))
    wait_for("the policy in effect", lambda: FINALIZER in finalizers_at_creation(kube, ns), 30)
    emulator = stack(Emulator(tmp_path, "--create-delay", "0", "--worker-delay", "0"))
    flags = ("--lease-name", "jro", "--lease-namespace", ns, "--lease-duration", "3")

    def replica(log_name: str, window: str = "600") -> Operator:
        # A window far longer than the waits below: a replica that waited it would fail them.
        args = (*flags, "--submit-landing-window", window)
        return stack(
            Operator(tmp_path, control_plane.kubeconfig, emulator, *args, watch=[ns], log_name=log_name)
        )

    def created_in_the_gap(name: str) -> None:
        kube.apply(ns, job(name, "Webserver", runVolume="v", cfgFile="c", parallelism=1))
        created = time.time()
        # creationTimestamp has whole seconds: the next replica must start in a later second.
        wait_for("a second after the create", lambda: time.time() > created + 1.05, 5)

    # The first replica created the Lease: a process without it may have acted before, so
    # it vouches for nothing until its own window (2 + 2 + 1 + 1 s, JULIARUN_TIMEOUT 2) is over.
    first = replica("first.log", window="1")
    kube.apply(ns, job("before", "Webserver", runVolume="v", cfgFile="c", parallelism=1))
    wait_for("before ready", lambda: kube.ready(ns, "before"), 60)
    acting = acting_since(tmp_path / "first.log")
    wait_for("the first replica's window over", lambda: time.time() > acting + 6.5, 30)
    first.kill(signal.SIGTERM)
    assert lease_annotations(control_plane, ns, "jro").get("juliarun.dev/sends-settled") == "true"
    created_in_the_gap("gap")
    second = replica("second.log")
    wait_for("gap ready", lambda: kube.ready(ns, "gap"), 60)
    assert emulator.calls("submitJob") == 2
    # Taking the Lease cleared the word: a crash from here on leaves none behind.
    assert "juliarun.dev/sends-settled" not in lease_annotations(control_plane, ns, "jro")

    second.kill(signal.SIGKILL)
    killed = time.time()
    created_in_the_gap("crash")
    # The Lease's last write (by the API server's clock) bounds when the dead replica stopped:
    # at most its duration (3 s) and a 3 s margin after it. An object created later than that
    # it never saw, so the next replica submits it at once.
    wait_for("the dead replica's bound passed", lambda: time.time() > killed + 7.5, 30)
    created_in_the_gap("late")
    replica("third.log")
    wait_for("late ready", lambda: kube.ready(ns, "late"), 60)
    wait_for(
        "crash waits for an earlier submit",
        lambda: kube.condition(ns, "crash", "Ready").get("reason") == "WaitingForEarlierSubmit",
        60,
    )
    assert emulator.calls("submitJob") == 3
    # Not to leave a finalizer that waits 600 s behind: as docs/install.md says, by hand.
    control_plane.kubectl(
        "patch",
        "jrj",
        "crash",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    control_plane.kubectl("delete", "jrj", "--all", "-n", ns, "--wait=false")
    wait_for("all gone", lambda: all(kube.get(ns, n) is None for n in ("before", "gap", "crash", "late")), 60)
