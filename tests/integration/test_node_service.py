"""From a Pod through a job's Service to the emulated job, on the local node (kubelet,
containerd, kube-proxy, CoreDNS): a Pod in a tenant namespace fetches
http://<name>.<namespace>.svc:<port>/ and gets the emulated job's answer; after the job
moves (the emulator says so), the same URL reaches it at its new address; after the object is
deleted, the Service, EndpointSlice and Secret are gone.

The emulator and the operator run on the host. The emulated jobs listen on addresses of a
the host's (on its loopback interface, not 127/8) (a pod reaches them through the bridge, as it reaches a
node's address), kube-proxy's rules send the Service's traffic there. The Pod's image is one
static program (hack/node/fetch), built here: this machine pulls no images (docs/node.md).

Needs root and the node's packages (`make node-tools`); heavy: run it alone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from conftest import ControlPlane
from juliarun_dev import devcluster, devnode
from juliarun_dev.devnode_config import static_image

from harness import JRUN_NAMESPACE, Emulator, Kube, Operator, job, started, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/juliarun/fetch:1"
ADDRESSES = [f"10.250.0.{host}" for host in range(1, 7)]  # the host's, on lo (no dummy driver here)
POOL = "10.250.0.0/29"  # .1 to .6: outside the node's pod (10.244.0.0/24) and Service (10.0.0.0/16) ranges
NS = "tenant-svc"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def fetch_image(work: Path) -> Path:
    """A docker-archive of an image whose one file is the static `fetch` program, built here."""
    binary = work / "fetch"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    src = work / "src"
    src.mkdir()
    (src / "go.mod").write_text("module juliarun.local/node/fetch\n\ngo 1.22\n")
    (src / "main.go").write_text((REPO / "hack" / "node" / "fetch" / "main.go").read_text())
    subprocess.run(
        ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), "."],
        cwd=src,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return static_image(work / "fetch.tar", IMAGE, binary, "65534:65534")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    work = tmp_path_factory.mktemp("node-service")
    state = tmp_path_factory.mktemp("node-cluster")
    info = devcluster.up(state_dir=state, node=True)
    for address in ADDRESSES:  # a run that died
        ip("addr", "del", f"{address}/32", "dev", "lo", check=False)
    try:
        devnode.load_image(state, fetch_image(work))
        for address in ADDRESSES:
            ip("addr", "add", f"{address}/32", "dev", "lo")
        cp = ControlPlane(
            info.kubeconfig, info.server, info.kubectl, False, tmp_path_factory.mktemp("tokens")
        )
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "charts" / "juliarun-operator" / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/juliarunjobs.juliarun.dev")
        cp.kubectl("create", "namespace", NS)
        yield cp, work
    finally:
        for address in ADDRESSES:
            ip("addr", "del", f"{address}/32", "dev", "lo", check=False)
        devcluster.down(state)


def proxied(address: str) -> bool:
    """Whether kube-proxy has programmed the Service `lab` to send its port to `address`: until
    it has, the ClusterIP refuses connections (the Service's "has no endpoints" REJECT), as it
    would for any new Service."""
    rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    return any(
        f'"{NS}/lab:' in line and f"--to-destination {address}:8888" in line for line in rules.splitlines()
    )


def fetched(cp: ControlPlane, pod: str, url: str) -> str:
    """What a Pod of the tenant namespace gets from `url`."""
    spec = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "fetch", "image": IMAGE, "imagePullPolicy": "Never", "args": [url]}],
        },
    }
    cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(spec))

    def ended() -> str:
        phase = cp.kubectl("get", "pod", pod, "-n", NS, "-o", "jsonpath={.status.phase}").stdout
        return phase if phase in ("Succeeded", "Failed") else ""

    phase = wait_for(f"pod {pod} to end", ended, 120)
    logs = cp.kubectl("logs", pod, "-n", NS).stdout
    assert phase == "Succeeded", f"{pod}: {logs}"
    return logs


def test_a_pod_reaches_the_job_through_its_service_before_and_after_a_move(node):
    cp, work = node
    kube = Kube(cp)
    with started(cp) as start:
        emulator = start(Emulator(work, "--create-delay", "0.2", "--listen-host", POOL))
        start(Operator(work, cp.kubeconfig, emulator, "--endpoint-range", f"default={POOL}", watch=[NS]))
        kube.apply(
            NS, job("lab", "Notebook", runVolume="home", writeConnectionSecretToRef={"name": "lab-conn"})
        )
        wait_for("Ready", lambda: kube.ready(NS, "lab"))
        wait_for("Published", lambda: kube.condition(NS, "lab", "Published").get("status") == "True")
        job_name = kube.status(NS, "lab")["jobName"]
        url = f"http://lab.{NS}.svc:8888/"

        wait_for("kube-proxy to send the Service to the job", lambda: proxied("10.250.0.1"))
        first = fetched(cp, "fetch-1", url)
        assert first == f"juliarun-emulator job {JRUN_NAMESPACE}/{job_name} port nb at 10.250.0.1:8888\n"

        body = {"namespace": JRUN_NAMESPACE, "name": job_name, "address": "10.250.0.5"}
        requests.post(f"{emulator.url}/_emulator/move", json=body, timeout=5).raise_for_status()
        slice_address = "jsonpath={.endpoints[0].addresses[0]}"
        wait_for(
            "the slice after the move",
            lambda: (
                cp.kubectl("get", "endpointslice", "lab-juliarun", "-n", NS, "-o", slice_address).stdout
                == "10.250.0.5"
            ),
        )
        wait_for("kube-proxy to follow the move", lambda: proxied("10.250.0.5"))
        second = fetched(cp, "fetch-2", url)
        assert second == f"juliarun-emulator job {JRUN_NAMESPACE}/{job_name} port nb at 10.250.0.5:8888\n"

        cp.kubectl("delete", "jrj", "lab", "-n", NS, "--timeout=60s")
        for kind, name in (("service", "lab"), ("endpointslice", "lab-juliarun"), ("secret", "lab-conn")):
            assert cp.kubectl("get", kind, name, "-n", NS, check=False).returncode != 0, f"{kind} {name} left"
