"""managementPolicy Observe and `juliarun import` against real processes: jobs submitted in
JuliaRun directly, their manifests from `juliarun import` applied as they are with kubectl,
mirrored until Ready without one write call reaching JuliaRun (counted by the emulator),
left running after the objects are deleted; the adoption rules; the takeover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from juliarun_operator.juliarun import Client, Context, Job

from argocd_lua import argocd_health
from harness import (
    JRUN_NAMESPACE,
    TOKEN,
    Emulator,
    Kube,
    Operator,
    apply_crds,
    job,
    namespace_name,
    started,
    wait_for,
)
from support.docs import run_block

pytestmark = pytest.mark.integration

WRITES = ("submitJob", "setJobScale", "updateJob", "deleteJob")
# Submitted in JuliaRun by hand, before the cluster knew of them: (type, name, parameters).
LEGACY = [
    ("Webserver", "legacy-web", {"run_volume": "www", "cfg_file": "site.conf", "nworkers": 2}),
    ("Notebook", "legacy-nb", {"run_volume": "home"}),
    ("MessageQ", "legacy-mq", {"run_volume": "mq", "cfg_file": "mq.conf"}),
]


@pytest.fixture
def processes(control_plane):
    apply_crds(control_plane)
    with started(control_plane) as start:
        yield start


def juliarun(emulator: Emulator, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "JULIARUN_URL": emulator.url,
        "JULIARUN_TOKEN": TOKEN,
        "JULIARUN_NAMESPACE": JRUN_NAMESPACE,
    }
    result = subprocess.run(
        [sys.executable, "-m", "juliarun_operator.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert not check or result.returncode == 0, result.stderr
    return result


def writes(emulator: Emulator) -> dict[str, int]:
    operations = emulator.counters()["operations"]
    return {op: operations.get(op, 0) for op in WRITES}


def legacy_jobs(emulator: Emulator) -> Client:
    client = Client(Context(url=emulator.url, token=TOKEN, namespace=JRUN_NAMESPACE))
    for job_type, name, params in LEGACY:
        client.submit_job(Job(job_type, name), **params)
    return client


def test_imported_jobs_are_mirrored_without_a_write_and_outlive_their_objects(
    control_plane, tmp_path, processes, lua
):
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("observe"))
    processes(Operator(tmp_path, control_plane.kubeconfig, emulator, f"--adopt-namespace={ns}", watch=[ns]))
    client = legacy_jobs(emulator)
    wait_for(
        "the legacy web server at 2",
        lambda: client.get_job_scale(Job("Webserver", "legacy-web")).running == 2,
    )

    stream = juliarun(emulator, "import", "--kube-namespace", ns).stdout
    docs = list(yaml.safe_load_all(stream))
    assert sorted(d["metadata"]["name"] for d in docs) == sorted(name for _, name, _ in LEGACY)
    # --out-dir: the same manifests, one file each; a second run overwrites nothing
    out = tmp_path / "gitops"
    juliarun(emulator, "import", "--kube-namespace", ns, "--out-dir", str(out))
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.yaml" for _, name, _ in LEGACY)
    assert [yaml.safe_load((out / f"{d['metadata']['name']}.yaml").read_text()) for d in docs] == docs
    (out / "legacy-nb.yaml").write_text("# a person's edit\n")
    again = juliarun(emulator, "import", "--out-dir", str(out), check=False)
    assert again.returncode == 1 and "nothing was written" in again.stderr
    assert (out / "legacy-nb.yaml").read_text() == "# a person's edit\n"

    before = writes(emulator)
    control_plane.kubectl("apply", "-f", "-", input=stream)  # as it is
    names = [name for _, name, _ in LEGACY]
    wait_for("every imported object Ready", lambda: all(kube.ready(ns, n) for n in names), 60)
    web = kube.status(ns, "legacy-web")
    assert web["scale"] == {"running": 2, "requested": 2} and web["endpoints"]
    assert web["managementPolicy"] == "Observe" and "submitted" not in web
    assert argocd_health(lua, kube.get(ns, "legacy-web"), tmp_path)[0] == "Healthy"

    # JuliaRun moves: mirrored. Kubernetes asks for another scale: not sent (the operator
    # has looked at that generation when observedGeneration shows it).
    client.set_job_scale(Job("Webserver", "legacy-web"), 3)
    wait_for("the new scale mirrored", lambda: kube.at_scale(ns, "legacy-web", 3), 60)
    control_plane.kubectl("scale", "jrj", "legacy-web", "-n", ns, "--replicas=5")
    wait_for("generation 2 seen", lambda: kube.status(ns, "legacy-web").get("observedGeneration") == 2)
    assert kube.at_scale(ns, "legacy-web", 3)

    control_plane.kubectl("delete", "jrj", "--all", "-n", ns, "--timeout=60s")
    assert set(names) <= set(emulator.jobs())  # still running in JuliaRun
    assert writes(emulator) == {**before, "setJobScale": before["setJobScale"] + 1}  # the test's own
    assert any(e["reason"] == "Orphaned" for e in kube.events(ns, "legacy-web"))


def test_observe_follows_the_adoption_rules_and_switching_to_full_takes_over(
    control_plane, tmp_path, processes
):
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2"))
    kube = Kube(control_plane)
    ns, trusted = (kube.namespace(namespace_name(p)) for p in ("untrusted", "trusted"))

    def operator(*flags: str, log: str) -> Operator:
        return processes(
            Operator(tmp_path, control_plane.kubeconfig, emulator, *flags, watch=[ns, trusted], log_name=log)
        )

    adopting = operator(f"--adopt-namespace={trusted}", log="adopting.log")
    legacy_jobs(emulator)
    before = writes(emulator)

    # A namespace the administrator does not let adopt: refused, whether the job exists or not.
    observe = {"managementPolicy": "Observe"}
    kube.apply(ns, job("web", "Webserver", jobName="legacy-web", **observe))
    kube.apply(ns, job("ghost", "Webserver", jobName="no-such-job", **observe))
    for name in ("web", "ghost"):
        wait_for(
            f"{name} refused",
            lambda n=name: kube.condition(ns, n, "Stalled").get("reason") == "ObserveRefused",
        )
        assert f"--adopt-namespace {ns}" in kube.condition(ns, name, "Ready")["message"]
    # Allowed: mirrored; a job that is not there is said so, and not submitted.
    kube.apply(trusted, job("web", "Webserver", jobName="legacy-web", **observe))
    kube.apply(trusted, job("ghost", "Webserver", jobName="no-such-job", **observe))
    wait_for("mirrored", lambda: kube.ready(trusted, "web"))
    wait_for("not found", lambda: kube.condition(trusted, "ghost", "Stalled").get("reason") == "JobNotFound")
    assert writes(emulator) == before

    # The administrator no longer lets the namespace adopt: the takeover is refused, with its fix.
    adopting.kill(signal.SIGTERM)
    strict = operator(log="strict.log")
    full = {"spec": {"managementPolicy": "Full", "runVolume": "www", "cfgFile": "site.conf"}}
    control_plane.kubectl("patch", "jrj", "web", "-n", trusted, "--type=merge", "-p", yaml.safe_dump(full))
    wait_for(
        "takeover refused",
        lambda: kube.condition(trusted, "web", "Stalled").get("reason") == "TakeoverRefused",
    )
    message = kube.condition(trusted, "web", "Ready")["message"]
    assert (
        f"--adopt-namespace {trusted}" in message and "set spec.managementPolicy back to Observe" in message
    )
    assert writes(emulator) == before
    # Allowed again: taken over, the spec's parameters sent once; then Full in every way.
    strict.kill(signal.SIGTERM)
    operator(f"--adopt-namespace={trusted}", log="adopting-again.log")
    wait_for(
        "taken over", lambda: kube.ready(trusted, "web") and kube.status(trusted, "web").get("submitted")
    )
    assert "managementPolicy" not in kube.status(trusted, "web")
    assert writes(emulator) == {**before, "updateJob": before["updateJob"] + 1}
    control_plane.kubectl("delete", "jrj", "web", "-n", trusted, "--timeout=60s")
    assert "legacy-web" not in emulator.jobs()  # Full: its job goes with it


def test_the_crd_refuses_observe_without_a_job_name_and_admits_one_without_parameters(
    control_plane, processes
):
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("observe-crd"))
    bare = yaml.safe_dump(job("bare", "JuliaBatch", managementPolicy="Observe"))
    refused = control_plane.kubectl("apply", "-n", ns, "-f", "-", input=bare, check=False)
    assert refused.returncode != 0
    assert "spec.managementPolicy Observe requires spec.jobName" in refused.stderr
    suspended = yaml.safe_dump(job("s", "JuliaBatch", managementPolicy="Observe", jobName="x", suspend=True))
    refused = control_plane.kubectl("apply", "-n", ns, "-f", "-", input=suspended, check=False)
    assert "spec.suspend needs spec.managementPolicy Full" in refused.stderr
    kube.apply(ns, job("named", "JuliaBatch", managementPolicy="Observe", jobName="legacy-batch"))
    full = control_plane.kubectl(
        "patch",
        "jrj",
        "named",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"managementPolicy":"Full"}}',
        check=False,
    )
    assert "spec.runVolume is required for type JuliaBatch" in full.stderr  # Full needs the parameters
    kube.apply(ns, job("full", "JuliaBatch", runVolume="v", startScript="s.jl"))
    assert kube.get(ns, "full")["spec"]["managementPolicy"] == "Full"  # the default
    control_plane.kubectl("delete", "jrj", "--all", "-n", ns, "--wait=false")
    for name in ("named", "full"):  # no operator runs here: the finalizer was never put on
        wait_for(f"{name} gone", lambda n=name: kube.get(ns, n) is None)


def test_the_docs_blocks_as_written(control_plane, tmp_path, processes):
    """README.md's Observe block, then docs/observe.md's Git and takeover blocks, in the
    namespace a user's kubeconfig selects, with the JuliaRun connection in the environment."""
    emulator = processes(Emulator(tmp_path, "--create-delay", "0.2"))
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("observe-docs"))
    processes(Operator(tmp_path, control_plane.kubeconfig, emulator, f"--adopt-namespace={ns}", watch=[ns]))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(control_plane.kubeconfig).read_text())
    kubectl = str(control_plane.kubectl_path)
    subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "config", "set-context", "--current", f"--namespace={ns}"],
        check=True,
        capture_output=True,
    )
    path = ":".join([str(Path(kubectl).parent), str(Path(sys.executable).parent), control_plane.env["PATH"]])
    env = {
        **control_plane.env,
        "KUBECONFIG": str(kubeconfig),
        "PATH": path,
        "JULIARUN_URL": emulator.url,
        "JULIARUN_TOKEN": TOKEN,
        "JULIARUN_NAMESPACE": JRUN_NAMESPACE,
    }
    before = writes(emulator)

    readme = run_block("README.md", "observe", env=env, cwd=tmp_path)
    assert "condition met" in readme.stdout
    assert readme.stdout.splitlines()[-1].split()[:3] == ["legacy-web", "Webserver", "Running"]
    assert writes(emulator) == {**before, "submitJob": before["submitJob"] + 1}  # the block's own submit

    work = tmp_path / "repo"
    work.mkdir()
    git = run_block("docs/observe.md", "git", env=env, cwd=work)
    assert (work / "jobs" / "legacy-web.yaml").is_file() and "condition met" in git.stdout
    assert kube.status(ns, "legacy-web")["managementPolicy"] == "Observe"
    assert writes(emulator) == {**before, "submitJob": before["submitJob"] + 1}

    run_block("docs/observe.md", "takeover", env=env, cwd=work)
    assert kube.ready(ns, "legacy-web") and "managementPolicy" not in kube.status(ns, "legacy-web")
    assert writes(emulator) == {
        **before,
        "submitJob": before["submitJob"] + 1,
        "updateJob": before["updateJob"] + 1,
    }
