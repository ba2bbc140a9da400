"""A local Kubernetes control plane for development and integration tests.

Like controller-runtime's envtest: a real etcd and kube-apiserver on loopback
ports, with no kubelet, no controller-manager and so no pods. It is enough for
CRDs (validation, CEL, status/scale subresources), watches, finalizers, RBAC
and the TokenRequest API. With --node it also runs one worker node (devnode.py):
pods, Deployments, Services and cluster DNS.

The binaries are built from source by hack/controlplane/build.sh into a
per-version cache (see hack/controlplane/versions.env). `up` starts the two
processes detached from the caller and records them in a state dir, so a
later `down` (from any process) stops them and removes every file they used.

    juliarun cluster up [--node] [--kubeconfig FILE]    # prints the kubeconfig path
    juliarun cluster load IMAGE.tar                    # an image into the node
    juliarun cluster status
    juliarun cluster down [--kubeconfig FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from . import devpki

BINARIES = ("kube-apiserver", "kubectl", "etcd", "helm")
HACK_DIR = Path(__file__).resolve().parents[2] / "hack"
CONTROLPLANE_DIR = HACK_DIR / "controlplane"
# Pods never run here, but the apiserver still needs a service range; its
# first address is the `kubernetes` service IP and goes into the serving cert.
SERVICE_CIDR = "10.0.0.0/24"
# With a node, the API server listens on the node's bridge address, which pods reach.
NODE_IP = "10.244.0.1"
READY_TIMEOUT = 60.0
STOP_GRACE = 10.0


class DevClusterError(RuntimeError):
    """The local control plane could not be built, started or stopped."""


@dataclass
class ClusterInfo:
    server: str
    kubeconfig: Path
    state_dir: Path
    etcd_pid: int
    apiserver_pid: int
    bin_dir: Path  # recorded so `down` still finds the processes after a version bump
    node: bool = False

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    def to_json(self) -> str:
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> ClusterInfo:
        d = json.loads(text)
        for key in ("kubeconfig", "state_dir", "bin_dir"):
            d[key] = Path(d[key])
        return cls(**d)


# --- binaries ----------------------------------------------------------------


def read_versions() -> dict[str, str]:
    """KEY=VALUE pairs of hack/controlplane/versions.env, the one place versions are pinned."""
    path = CONTROLPLANE_DIR / "versions.env"
    if not path.is_file():
        raise DevClusterError(
            f"{path} not found: devcluster needs the juliarun-operator source tree (editable install)"
        )
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def bin_dir() -> Path:
    """Where build.sh puts the binaries; the same formula as in build.sh."""
    v = read_versions()
    root = os.environ.get("JULIARUN_CP_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "juliarun-operator", "bin"
    )
    return Path(root) / f"k8s-{v['KUBERNETES_VERSION']}_etcd-{v['ETCD_VERSION']}_helm-{v['HELM_VERSION']}"


def ensure_binaries() -> dict[str, Path]:
    """Paths of kube-apiserver, kubectl, etcd and helm; builds whatever is missing."""
    directory = bin_dir()
    if not all(os.access(directory / name, os.X_OK) for name in BINARIES):
        script = CONTROLPLANE_DIR / "build.sh"
        if not script.is_file():
            raise DevClusterError(f"{script} not found: cannot build the control plane binaries")
        print(
            f"building control plane binaries into {directory} (first time only, takes a while) ...",
            file=sys.stderr,
        )
        # The project's own build script, by path; bash from PATH as `make` runs it.
        result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)  # noqa: S603, S607
        if result.returncode != 0:
            raise DevClusterError(
                f"{script} failed with exit code {result.returncode} (see its output above)"
            )
        if Path(result.stdout.strip()) != directory:
            raise DevClusterError(f"build.sh built into {result.stdout.strip()}, expected {directory}")
    return {name: directory / name for name in BINARIES}


# --- state dir, processes ------------------------------------------------------


def default_state_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"  # noqa: S108 (a per-user dir is made below it)
    return Path(base) / f"juliarun-cluster-{os.getuid()}"


def _state_file(state_dir: Path) -> Path:
    return state_dir / "cluster.json"


def _free_port() -> int:
    # The port is released before the server binds it; a collision in that
    # window only makes `up` fail, it cannot reach anyone else's server.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _alive(pid: int, exe: Path) -> bool:
    """True if pid is still our process running exe (not a zombie, not a reused pid)."""
    try:
        # Reaps the process when we are its parent (tests call up and down in
        # one process); otherwise the zombie would look alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        if Path(f"/proc/{pid}/exe").resolve() != exe.resolve():
            return False
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return state != "Z"


def _stop(pid: int, exe: Path) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE seconds; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
        if not _alive(pid, exe):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid, exe):
                return
            time.sleep(0.05)
    raise DevClusterError(f"process {pid} ({exe.name}) survived SIGKILL")


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    # A new session: the server outlives the CLI and ignores its Ctrl-C.
    with open(log, "ab") as out:
        return subprocess.Popen(  # noqa: S603 (the built control-plane binaries, by path)
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Poll check() until true; fail early if proc died."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevClusterError(
                f"{what} exited with code {proc.returncode}; last log lines:\n{_log_tail(log)}"
            )
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise DevClusterError(f"{what} not ready after {READY_TIMEOUT:.0f}s; last log lines:\n{_log_tail(log)}")


# --- public API --------------------------------------------------------------------


def status(state_dir: Path | None = None) -> ClusterInfo | None:
    """The running cluster recorded in state_dir, or None if there is none (or it died)."""
    state_dir = Path(state_dir or default_state_dir()).absolute()
    try:
        info = ClusterInfo.from_json(_state_file(state_dir).read_text())
    except FileNotFoundError:
        return None
    if _alive(info.etcd_pid, info.bin_dir / "etcd") and _alive(
        info.apiserver_pid, info.bin_dir / "kube-apiserver"
    ):
        return info
    return None


def up(kubeconfig: Path | None = None, state_dir: Path | None = None, node: bool = False) -> ClusterInfo:
    """Start etcd and kube-apiserver (and with node, a worker node) in the background; return once ready."""
    from . import devnode

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
    down(state_dir)  # leftovers of a cluster that died
    binaries = ensure_binaries()
    state_dir.mkdir(mode=0o700, parents=True)
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
        _state_file(state_dir).write_text(info.to_json())
        if node:
            devnode.start(state_dir, pki, server)
        return info
    except BaseException:
        if node:
            devnode.stop(state_dir)
        for proc, exe in ((apiserver, binaries["kube-apiserver"]), (etcd, binaries["etcd"])):
            if proc is not None:
                _stop(proc.pid, exe)
        # The error already carries the log tail; leave nothing behind.
        kubeconfig.unlink(missing_ok=True)
        shutil.rmtree(state_dir, ignore_errors=True)
        raise


def _start_etcd(exe: Path, state_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    client, peer = f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
    log = state_dir / "etcd.log"
    proc = _spawn(
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
    _wait_until(
        lambda: requests.get(f"{client}/health", timeout=1).json().get("health") == "true", proc, log, "etcd"
    )
    return proc, client


def _start_apiserver(
    exe: Path, state_dir: Path, pki: Path, etcd_url: str, node_flags: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    server = f"https://{NODE_IP if node_flags else '127.0.0.1'}:{port}"
    log = state_dir / "kube-apiserver.log"
    proc = _spawn(
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
    _wait_until(
        lambda: requests.get(f"{server}/readyz", verify=ca, cert=cert, timeout=2).status_code == 200,
        proc,
        log,
        "kube-apiserver",
    )
    return proc, server


def down(state_dir: Path | None = None, kubeconfig: Path | None = None) -> None:
    """Stop the cluster recorded in state_dir and remove its files. Does nothing if there is none.

    With kubeconfig, only the cluster that `up` wrote that kubeconfig for.
    """
    from . import devnode

    state_dir = Path(state_dir or default_state_dir()).absolute()
    try:
        info = ClusterInfo.from_json(_state_file(state_dir).read_text())
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
        _stop(info.apiserver_pid, info.bin_dir / "kube-apiserver")
        _stop(info.etcd_pid, info.bin_dir / "etcd")
        info.kubeconfig.unlink(missing_ok=True)
    shutil.rmtree(state_dir, ignore_errors=True)


# --- CLI -----------------------------------------------------------------------


def _cmd_up(args: argparse.Namespace) -> int:
    start = time.monotonic()
    try:
        info = up(args.kubeconfig, args.state_dir, args.node)
    except DevClusterError as e:
        print(f"cluster up failed: {e}", file=sys.stderr)
        return 1
    print(f"cluster ready at {info.server} ({time.monotonic() - start:.1f}s)", file=sys.stderr)
    print(f"  export KUBECONFIG={info.kubeconfig}", file=sys.stderr)
    print(f"  kubectl: {info.kubectl}", file=sys.stderr)
    print(info.kubeconfig)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    try:
        down(args.state_dir, args.kubeconfig)
    except DevClusterError as e:
        print(f"cluster down failed: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    info = status(args.state_dir)
    if info is None:
        print("not running")
        return 1
    print(
        f"running: server {info.server}, kubeconfig {info.kubeconfig}, "
        f"pids etcd {info.etcd_pid} kube-apiserver {info.apiserver_pid}"
    )
    if info.node:
        from . import devnode

        print(devnode.status_line(info.state_dir))
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    from . import devnode

    try:
        devnode.load_image(Path(args.state_dir or default_state_dir()), args.archive)
    except DevClusterError as e:
        print(f"cluster load failed: {e}", file=sys.stderr)
        return 1
    return 0


def configure_parser(subparsers: Any) -> None:
    """Add `cluster up|down|status` to an argparse subparsers object."""
    cluster = subparsers.add_parser("cluster", help="a local etcd + kube-apiserver (no nodes, no pods)")
    actions = cluster.add_subparsers(dest="cluster_command", required=True)
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where pids, certificates, logs and etcd data live (default {default_state_dir()})",
    )
    # `down` takes what `up` takes, so the same command line with `down` stops what `up` started.
    up_options = argparse.ArgumentParser(add_help=False, parents=[state])
    up_options.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="write the kubeconfig here (default: STATE_DIR/kubeconfig; removed by down)",
    )
    up_options.add_argument(
        "--node",
        action="store_true",
        help="also one worker node: containerd, kubelet, kube-proxy, scheduler, "
        "controller-manager, CoreDNS (root; see docs/node.md)",
    )
    actions.add_parser(
        "up", parents=[up_options], help="start the control plane, print the kubeconfig path"
    ).set_defaults(func=_cmd_up)
    actions.add_parser(
        "down", parents=[up_options], help="stop it (and its node) and remove its files"
    ).set_defaults(func=_cmd_down)
    p_load = actions.add_parser("load", parents=[state], help="import an image archive into the node")
    p_load.add_argument(
        "archive", type=Path, help="docker-archive or OCI archive (buildah push ... docker-archive:FILE)"
    )
    p_load.set_defaults(func=_cmd_load)
    actions.add_parser("status", parents=[state], help="exit 0 if it runs").set_defaults(func=_cmd_status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m juliarun_operator.devcluster")
    configure_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cluster", *(argv if argv is not None else sys.argv[1:])])
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
