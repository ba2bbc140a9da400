"""Starting the node: claiming the machine and making the bridge before the API server
starts, then containerd and the Kubernetes processes until the node is Ready; and loading
an image into it."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import requests

from .. import devcluster as dc
from .. import devpki
from ..devcluster import processes
from ..devnode_config import BRIDGE, NODE_IP, NODE_NAME, pause_image, write_configs
from .down import stop
from .host import (
    MACHINE_PATHS,
    OWNER_FILE,
    PROCESSES,
    SYSCTLS,
    check_host,
    ctr,
    ensure_binaries,
    load_record,
    node_owner,
    run,
    save_record,
    sysctl,
)

READY_TIMEOUT = 120.0


def prepare(state_dir: Path) -> None:
    """Before the API server starts: claim the machine's node and make the bridge it listens on."""
    check_host()
    state_dir = state_dir.resolve()
    owner = node_owner()
    if owner and owner != str(state_dir) and Path(owner).is_dir():
        raise dc.DevClusterError(
            f"a node already runs on this machine (state dir {owner}); "
            f"stop it with: juliarun cluster down --state-dir {owner}"
        )
    if owner:
        stop(Path(owner))  # leftovers of a node whose state dir is gone
    ensure_binaries()
    node_dir = state_dir / "node"
    node_dir.mkdir(parents=True)
    OWNER_FILE.write_text(str(state_dir))
    record = {
        "sysctls": {k: sysctl(k).read_text().strip() for k in SYSCTLS if sysctl(k).exists()},
        "created": [p for p in MACHINE_PATHS if not os.path.lexists(p) and Path(p).parent.is_dir()],
        "processes": {},
    }
    save_record(state_dir, record)
    run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    # Service traffic is DNATed on this host and routed back out of the bridge.
    sysctl("net/ipv4/ip_forward").write_text("1")


def apiserver_flags(pki: Path) -> list[str]:
    """What the API server needs once a kubelet exists: an address pods reach, and the kubelet's."""
    return [
        f"--bind-address={NODE_IP}",
        f"--advertise-address={NODE_IP}",
        # The `kubernetes` Service's endpoint is this address now, so pods reach the API server.
        "--endpoint-reconciler-type=lease",
        # `kubectl logs`/`exec`: dial the node at the address it registered, not its hostname.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={pki / 'admin.crt'}",
        f"--kubelet-client-key={pki / 'admin.key'}",
    ]


def start(state_dir: Path, pki: Path, server: str) -> None:
    """Start containerd and the node's Kubernetes processes; return once the node is Ready."""
    binaries = ensure_binaries()
    node = state_dir / "node"
    kubeconfig = node / "kubeconfig"
    devpki.write_kubeconfig(kubeconfig, server, pki)
    sock = node / "containerd" / "containerd.sock"
    files = write_configs(node, pki, kubeconfig, sock)
    record = load_record(state_dir)
    args = {
        "containerd": ["containerd", f"--config={files['containerd']}"],
        "kube-scheduler": [
            str(binaries["kube-scheduler"]),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
        ],
        "kube-controller-manager": [
            str(binaries["kube-controller-manager"]),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={dc.SERVICE_CIDR}",
        ],
        "kube-proxy": [str(binaries["kube-proxy"]), f"--config={files['kube-proxy']}"],
        "coredns": [str(binaries["coredns"]), "-conf", str(files["coredns"])],
        "kubelet": [
            str(binaries["kubelet"]),
            f"--config={files['kubelet']}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={node / 'kubelet'}",
            f"--cert-dir={node / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
        ],
    }
    for name in PROCESSES:
        exe = Path(shutil.which(args[name][0]) or args[name][0])
        proc = processes.spawn([str(exe), *args[name][1:]], node / f"{name}.log")
        record["processes"][name] = {"pid": proc.pid, "exe": str(exe)}
        save_record(state_dir, record)
        if name == "containerd":
            processes.wait_until(
                lambda: ctr(sock, "version", check=False).returncode == 0,
                proc,
                node / "containerd.log",
                "containerd",
            )
            load_image(state_dir, pause_image(node, binaries["pause"]))
    _wait_node_ready(server, pki, node, record["processes"])


def _wait_node_ready(server: str, pki: Path, node: Path, procs: dict[str, Any]) -> None:
    # Per request: a session's verify loses to REQUESTS_CA_BUNDLE from the environment.
    ca, cert = str(pki / "ca.crt"), (str(pki / "admin.crt"), str(pki / "admin.key"))

    def get(path: str) -> requests.Response:
        return requests.get(f"{server}{path}", verify=ca, cert=cert, timeout=5)

    def ready() -> bool:
        node_object = get(f"/api/v1/nodes/{NODE_NAME}")
        if not node_object.ok:  # not registered yet
            return False
        conditions = node_object.json()["status"].get("conditions", [])
        # The controller-manager's service-account controller: pods need the `default` one.
        sa = get("/api/v1/namespaces/default/serviceaccounts/default")
        return sa.ok and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for name, p in procs.items():
            if not processes.alive(p["pid"], Path(p["exe"])):
                raise dc.DevClusterError(
                    f"{name} exited; last log lines:\n{processes.log_tail(node / f'{name}.log')}"
                )
        try:
            if ready():
                return
        except (requests.RequestException, KeyError):
            pass
        time.sleep(0.5)
    raise dc.DevClusterError(
        f"node {NODE_NAME} not Ready after {READY_TIMEOUT:.0f}s; kubelet log:\n"
        f"{processes.log_tail(node / 'kubelet.log', 30)}"
    )


def load_image(state_dir: Path, archive: Path) -> None:
    """Import an image archive (docker-archive or OCI) into the node, as if kubelet had pulled it."""
    sock = state_dir / "node" / "containerd" / "containerd.sock"
    if not sock.exists():
        raise dc.DevClusterError(f"no node runs from {state_dir} (juliarun cluster up --node)")
    ctr(sock, "images", "import", str(archive))
