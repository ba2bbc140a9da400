"""`up`, `status` and `down` of the local control plane: etcd and kube-apiserver (and with
a node, devnode's processes), their certificates, kubeconfig and state dir."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

from .. import devpki
from .binaries import ensure_binaries
from .processes import alive, free_port, spawn, stop, wait_until
from .state import (
    MARKER,
    ClusterInfo,
    DevClusterError,
    claim,
    default_state_dir,
    is_cluster_dir,
    release,
    state_file,
)

# The Services' range; its first address is the `kubernetes` Service IP and goes into the
# serving cert. A /16: the operator makes a Service per service job (a /24 ran out of
# addresses at 254 jobs, and each further Service create failed with HTTP 500).
SERVICE_CIDR = "10.0.0.0/16"
# With a node, the API server listens on the node's bridge address, which pods reach.
NODE_IP = "10.244.0.1"


def status(state_dir: Path | None = None) -> ClusterInfo | None:
    """The running cluster recorded in state_dir, or None if there is none (or it died)."""
    state_dir = Path(state_dir or default_state_dir()).absolute()
    try:
        info = ClusterInfo.from_json(state_file(state_dir).read_text())
    except FileNotFoundError:
        return None
    if alive(info.etcd_pid, info.bin_dir / "etcd") and alive(
        info.apiserver_pid, info.bin_dir / "kube-apiserver"
    ):
        return info
    return None


def up(kubeconfig: Path | None = None, state_dir: Path | None = None, node: bool = False) -> ClusterInfo:
    """Start etcd and kube-apiserver (and with node, a worker node) in the background; return once ready."""
    from .. import devnode

    state_dir = Path(state_dir or default_state_dir()).absolute()
    running = status(state_dir)
    if running is not None:
        if kubeconfig is not None and Path(kubeconfig).resolve() != running.kubeconfig:
            raise DevClusterError(
                f"a cluster already runs from {state_dir} with kubeconfig {running.kubeconfig}"
            )
        if node and not running.node:
            raise DevClusterError(f"a cluster without a node already runs from {state_dir}; `down` it first")
        return running
    if is_cluster_dir(state_dir):
        down(state_dir)  # leftovers of a cluster that died
    if kubeconfig is not None and Path(kubeconfig).exists():
        raise DevClusterError(
            f"kubeconfig {kubeconfig} exists: `up` writes a new one and `down` removes it, so name a "
            "file that does not exist (or leave --kubeconfig out: STATE_DIR/kubeconfig)"
        )
    binaries = ensure_binaries()
    claim(state_dir)
    kubeconfig = Path(kubeconfig or state_dir / "kubeconfig").resolve()
    etcd = apiserver = None
    try:
        if node:
            devnode.prepare(state_dir)
        pki = state_dir / "pki"
        devpki.make_pki(pki)
        etcd, etcd_url = _start_etcd(binaries["etcd"], state_dir)
        apiserver, server = _start_apiserver(
            binaries["kube-apiserver"], state_dir, pki, etcd_url, devnode.apiserver_flags(pki) if node else []
        )
        devpki.write_kubeconfig(kubeconfig, server, pki)
        info = ClusterInfo(
            server, kubeconfig, state_dir, etcd.pid, apiserver.pid, binaries["kubectl"].parent, node
        )
        state_file(state_dir).write_text(info.to_json())
        if node:
            devnode.start(state_dir, pki, server)
        return info
    except BaseException:
        if node:
            devnode.stop(state_dir)
        for proc, exe in ((apiserver, binaries["kube-apiserver"]), (etcd, binaries["etcd"])):
            if proc is not None:
                stop(proc.pid, exe)
        # The error already carries the log tail; leave nothing of ours behind.
        kubeconfig.unlink(missing_ok=True)
        release(state_dir)
        raise


def _start_etcd(exe: Path, state_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    log = state_dir / "etcd.log"
    proc = spawn(
        [
            str(exe),
            "--name=juliarun-dev",
            f"--data-dir={state_dir / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=juliarun-dev={peer}",
            # Throwaway data: skipping fsync makes every apiserver write much faster.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        log,
    )
    wait_until(
        lambda: requests.get(f"{client}/health", timeout=1).json().get("health") == "true", proc, log, "etcd"
    )
    return proc, client


def _start_apiserver(
    exe: Path, state_dir: Path, pki: Path, etcd_url: str, node_flags: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = f"https://{NODE_IP if node_flags else '127.0.0.1'}:{port}"
    log = state_dir / "kube-apiserver.log"
    proc = spawn(
        [
            str(exe),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            # TokenRequest needs an issuer and a signing key; the public half verifies the tokens.
            f"--service-account-issuer={server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The `kubernetes` Endpoints may not hold a loopback address; nothing here needs it.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            *node_flags,  # later flags win
        ],
        log,
    )
    ca, cert = str(pki / "ca.crt"), (str(pki / "admin.crt"), str(pki / "admin.key"))
    wait_until(
        lambda: requests.get(f"{server}/readyz", verify=ca, cert=cert, timeout=2).status_code == 200,
        proc,
        log,
        "kube-apiserver",
    )
    return proc, server


def down(state_dir: Path | None = None, kubeconfig: Path | None = None) -> list[str]:
    """Stop the cluster recorded in state_dir and remove what `up` made there; return the
    entries left in the directory because they are not ours. Nothing to do if the directory
    does not exist; DevClusterError, touching nothing, if it is not a cluster's.

    With kubeconfig, only the cluster that `up` wrote that kubeconfig for.
    """
    from .. import devnode

    state_dir = Path(state_dir or default_state_dir()).absolute()
    if not state_dir.exists():
        return []
    if not is_cluster_dir(state_dir):
        raise DevClusterError(
            f"{state_dir} is not a local cluster's state dir (no {MARKER} in it): nothing touched"
        )
    try:
        info = ClusterInfo.from_json(state_file(state_dir).read_text())
    except FileNotFoundError:
        info = None
    if kubeconfig is not None and info is not None and Path(kubeconfig).resolve() != info.kubeconfig:
        raise DevClusterError(
            f"the cluster of {state_dir} wrote {info.kubeconfig}, not {kubeconfig}; "
            "pass the --state-dir its `up` used"
        )
    if (state_dir / "node").exists():
        devnode.stop(state_dir)  # before the API server: nothing of it needs the API
    if info is not None:
        # apiserver first: it would only log errors while etcd is gone.
        stop(info.apiserver_pid, info.bin_dir / "kube-apiserver")
        stop(info.etcd_pid, info.bin_dir / "etcd")
        info.kubeconfig.unlink(missing_ok=True)
    return release(state_dir)
