"""A job's Service, EndpointSlice and connection Secret against the real API server and the
emulator over HTTP: created with the right content, following a move, emptied while the job
does not run, an address outside the connection's ranges refused with a condition, nothing
written in the steady state, and everything gone after the object is deleted (the dev
control plane has no garbage collector: the operator deletes them itself)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import requests

from harness import (
    JRUN_NAMESPACE,
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
from support.docs import REPO, run_block

pytestmark = pytest.mark.integration
PASSWORD = "notebook-pw-7c41d2e9"
POOL = "10.0.0.0/8"  # the default connection's allowed range: the emulator's fake pod IPs


@pytest.fixture
def setup(control_plane, tmp_path):
    apply_crds(control_plane)
    kube = Kube(control_plane)
    ns = kube.namespace(namespace_name("publish"))
    with started(control_plane) as start:
        # The jobs' fake 10.x pod IPs: an EndpointSlice takes no loopback address, so their
        # answering over HTTP is tested on the node (test_node_service.py) and by the emulator's own.
        emulator = start(Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1"))
        operator = start(
            Operator(
                tmp_path,
                control_plane.kubeconfig,
                emulator,
                "--endpoint-range",
                f"default={POOL}",
                watch=[ns],
            )
        )
        yield control_plane, emulator, operator, kube, ns


def get(cp, kind: str, ns: str, name: str) -> dict | None:
    result = cp.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def addresses(cp, ns: str, name: str) -> list[str] | None:
    found = get(cp, "endpointslices.discovery.k8s.io", ns, f"{name}-juliarun")
    if found is None:
        return None
    return [a for e in found.get("endpoints") or [] for a in e["addresses"]]


def secret_data(cp, ns: str, name: str) -> dict[str, str]:
    found = get(cp, "secret", ns, name) or {}
    return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}


def move(emulator: Emulator, job_name: str, address: str) -> None:
    body = {"namespace": JRUN_NAMESPACE, "name": job_name, "address": address}
    requests.post(f"{emulator.url}/_emulator/move", json=body, timeout=5).raise_for_status()


def password_secret(cp, ns: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "nb-password", "labels": {"juliarun.dev/credentials": "true"}},
        "stringData": {"password": PASSWORD},
    }
    cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(secret))


def test_a_notebook_is_published_follows_its_moves_and_is_gone_with_the_object(setup):
    cp, emulator, operator, kube, ns = setup
    password_secret(cp, ns)
    kube.apply(
        ns,
        job(
            "nb",
            "Notebook",
            runVolume="v",
            passwordSecretRef={"name": "nb-password", "key": "password"},
            writeConnectionSecretToRef={"name": "nb-conn"},
        ),
    )
    wait_for("Ready", lambda: kube.ready(ns, "nb"))
    reported = kube.status(ns, "nb")["endpoints"][0].split(":")[0]
    wait_for("the slice", lambda: addresses(cp, ns, "nb") == [reported])
    job_name = kube.status(ns, "nb")["jobName"]

    service = get(cp, "service", ns, "nb")
    assert service is not None
    assert "selector" not in service["spec"] and service["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("nb", 8888)]
    owner = service["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "JuliaRunJob",
        "nb",
        kube.get(ns, "nb")["metadata"]["uid"],
    )
    endpoints = get(cp, "endpointslices.discovery.k8s.io", ns, "nb-juliarun")
    assert endpoints["metadata"]["labels"]["kubernetes.io/service-name"] == "nb"
    assert endpoints["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "juliarun-operator"
    assert [(p["name"], p["port"]) for p in endpoints["ports"]] == [("nb", 8888)]

    wait_for("the connection Secret", lambda: secret_data(cp, ns, "nb-conn").get("uri"))
    assert secret_data(cp, ns, "nb-conn") == {
        "host": f"nb.{ns}.svc",
        "port": "8888",
        "uri": f"http://nb.{ns}.svc:8888",
        "type": "notebook",
        "provider": "juliarun",
        "password": PASSWORD,
    }
    assert (get(cp, "secret", ns, "nb-conn") or {})["type"] == "servicebinding.io/notebook"
    wait_for("status.binding", lambda: kube.status(ns, "nb").get("binding") == {"name": "nb-conn"})
    assert kube.condition(ns, "nb", "Published")["status"] == "True"

    # The steady state: snapshots come and go, nothing is written.
    writes = metric(operator.metrics(), "juliarun_kube_writes_total")
    looks = emulator.calls("getAllJobInfo")
    wait_for("three more snapshots", lambda: emulator.calls("getAllJobInfo") >= looks + 3)
    assert metric(operator.metrics(), "juliarun_kube_writes_total") == writes

    move(emulator, job_name, "10.77.0.5")
    wait_for("the slice after the move", lambda: addresses(cp, ns, "nb") == ["10.77.0.5"])
    assert get(cp, "service", ns, "nb")["metadata"]["uid"] == service["metadata"]["uid"]  # the same Service

    move(emulator, job_name, "192.168.50.5")  # outside the default connection's range
    wait_for("the refused address left out", lambda: addresses(cp, ns, "nb") == [])
    refused = wait_for(
        "the condition",
        lambda: (c := kube.condition(ns, "nb", "Published")).get("reason") == "AddressRefused" and c,
    )
    assert refused["status"] == "False"
    assert "192.168.50.5:8888 is outside the ranges allowed for this connection" in refused["message"]
    assert f"allowed: {POOL}" in refused["message"]

    cp.kubectl("delete", "jrj", "nb", "-n", ns, "--timeout=60s")
    assert get(cp, "service", ns, "nb") is None
    assert addresses(cp, ns, "nb") is None
    assert get(cp, "secret", ns, "nb-conn") is None
    assert get(cp, "secret", ns, "nb-password") is not None  # the tenant's own Secret stays


def test_a_batch_job_with_a_service_is_emptied_when_it_ends(setup):
    cp, _emulator, _operator, kube, ns = setup
    ports = [{"name": "ui", "containerPort": 8080, "servicePort": 80}]
    kube.apply(
        ns,
        job(
            "batch",
            "JuliaBatch",
            runVolume="v",
            startScript="run.jl",
            ports=ports,
            service={"enabled": True},
            envVars=[{"name": "JULIARUN_EMULATOR_RUN_TIME", "value": "4"}],
        ),
    )
    wait_for("the running job's address", lambda: addresses(cp, ns, "batch") not in (None, []))
    wait_for("Complete", lambda: kube.condition(ns, "batch", "Complete").get("status") == "True", 60)
    wait_for("the slice emptied", lambda: addresses(cp, ns, "batch") == [])
    assert get(cp, "service", ns, "batch") is not None  # the Service stays, with no endpoint


def test_nothing_is_overwritten_that_the_operator_did_not_create(setup):
    cp, _emulator, _operator, kube, ns = setup
    theirs = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "taken"}, "stringData": {"k": "v"}}
    cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(theirs))
    kube.apply(
        ns, job("web", "Webserver", runVolume="v", cfgFile="c", writeConnectionSecretToRef={"name": "taken"})
    )
    message = wait_for(
        "the condition",
        lambda: kube.condition(ns, "web", "Published").get("message", "").find("Secret taken") >= 0,
    )
    assert message
    assert secret_data(cp, ns, "taken") == {"k": "v"}
    assert "binding" not in kube.status(ns, "web")
    cp.kubectl("delete", "jrj", "web", "-n", ns, "--timeout=60s")
    assert secret_data(cp, ns, "taken") == {"k": "v"}  # not deleted with the object either


def test_the_readme_block_as_written(setup, tmp_path):
    """README.md's "Services of jobs" block, in the namespace a user's kubeconfig selects."""
    cp, _emulator, _operator, _kube, ns = setup
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(cp.kubeconfig).read_text())
    kubectl = str(cp.kubectl_path)
    subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "config", "set-context", "--current", f"--namespace={ns}"],
        check=True,
        capture_output=True,
    )
    path = ":".join([str(Path(kubectl).parent), cp.env["PATH"]])
    result = run_block(
        "README.md", "service", env={**cp.env, "KUBECONFIG": str(kubeconfig), "PATH": path}, cwd=REPO
    )
    lines = result.stdout.splitlines()
    assert "juliarunjob.juliarun.dev/lab condition met" in lines
    assert "8888" in lines
    assert any(line.startswith("10.") for line in lines)  # the job's own (fake pod) address
    assert f"http://lab.{ns}.svc:8888" in lines
    assert get(cp, "service", ns, "lab") is None and get(cp, "secret", ns, "lab-connection") is None
