"""One worker node for the local control plane (`juliarun cluster up --node`).

containerd + runc run the pods, a CNI bridge connects them, and kubelet, kube-proxy,
kube-scheduler, kube-controller-manager and CoreDNS (as host processes) make Deployments,
Services and cluster DNS work. The binaries come from hack/controlplane/build.sh node;
containerd, runc and the CNI plugins from Debian (hack/node/install-deps.sh). Needs root.

A node changes the machine, so there is one per machine and `stop` undoes every change:
the bridge `juliarun0` (10.244.0.1/24, also the address the API server, kubelet and
CoreDNS listen on), kube-proxy's iptables rules, the mounts under the state dir and the
pods' network namespaces, and the sysctls kubelet sets. docs/node.md says what the
node needs on this kind of machine and what differs elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from . import devcluster as dc
from . import devpki
from .devcluster import processes
from .devnode_config import BRIDGE, CNI_BIN_DIR, NODE_IP, NODE_NAME, RUNC, pause_image, write_configs

BINARIES = (
    "kubelet",
    "kube-proxy",
    "kube-scheduler",
    "kube-controller-manager",
    "coredns",
    "crictl",
    "pause",
)
# Which state dir holds this machine's node (the bridge and iptables are machine-wide).
OWNER_FILE = Path("/run/juliarun-node.owner")
# kubelet sets these (protectKernelDefaults: false); stop puts the machine's values back.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Machine paths the node creates outside its state dir (kubelet's device-plugin socket and
# container-log links are at fixed paths; libcni's cache; containerd's pod cgroups):
# `stop` removes the ones that did not exist before `up`.
MACHINE_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/var/log/containers",
    "/var/log/pods",
    *(
        f"/sys/fs/cgroup/{c}/k8s.io"
        for c in (
            "cpu",
            "cpuacct",
            "cpuset",
            "memory",
            "devices",
            "freezer",
            "blkio",
            "pids",
            "systemd",
            "unified",
        )
    ),
)
# Start order; stop goes the other way.
PROCESSES = ("containerd", "kube-scheduler", "kube-controller-manager", "kube-proxy", "coredns", "kubelet")
READY_TIMEOUT = 120.0


def bin_dir() -> Path:
    v = dc.read_versions()
    return dc.bin_dir().parent / (
        f"node-k8s-{v['KUBERNETES_VERSION']}_coredns-{v['COREDNS_VERSION']}_crictl-{v['CRICTL_VERSION']}"
    )


def ensure_binaries() -> dict[str, Path]:
    directory = bin_dir()
    if not all(os.access(directory / name, os.X_OK) for name in BINARIES):
        print(f"building the node's binaries into {directory} (first time only) ...", file=sys.stderr)
        result = subprocess.run(  # noqa: S603 (our build script, fixed arguments)
            ["bash", str(dc.CONTROLPLANE_DIR / "build.sh"), "node"],  # noqa: S607 (bash from PATH)
            stdout=subprocess.PIPE,
            text=True,
        )
        if result.returncode != 0 or Path(result.stdout.strip()) != directory:
            raise dc.DevClusterError(f"build.sh node failed (exit {result.returncode}); see its output above")
    return {name: directory / name for name in BINARIES}


def check_host() -> None:
    """Fail early, naming what is missing, instead of deep inside kubelet's log."""
    if os.geteuid() != 0:
        raise dc.DevClusterError("a node needs root (containerd, mounts, a bridge, iptables)")
    missing = [
        str(p)
        for p in (RUNC, CNI_BIN_DIR / "bridge", CNI_BIN_DIR / "host-local", CNI_BIN_DIR / "loopback")
        if not p.exists()
    ]
    missing += [c for c in ("containerd", "ctr", "iptables", "ip") if shutil.which(c) is None]
    if missing:
        raise dc.DevClusterError(f"missing {', '.join(missing)}: run hack/node/install-deps.sh")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Our own commands (ip, ctr, iptables, umount) with arguments we make.
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)  # noqa: S603
    if check and result.returncode != 0:
        raise dc.DevClusterError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _sysctl(key: str) -> Path:
    return Path("/proc/sys") / key


# --- up --------------------------------------------------------------------------------


def prepare(state_dir: Path) -> None:
    """Before the API server starts: claim the machine's node and make the bridge it listens on."""
    check_host()
    state_dir = state_dir.resolve()
    owner = _owner()
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
        "sysctls": {k: _sysctl(k).read_text().strip() for k in SYSCTLS if _sysctl(k).exists()},
        "created": [p for p in MACHINE_PATHS if not os.path.lexists(p) and Path(p).parent.is_dir()],
        "processes": {},
    }
    _save(state_dir, record)
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    # Service traffic is DNATed on this host and routed back out of the bridge.
    _sysctl("net/ipv4/ip_forward").write_text("1")


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
    record = _load(state_dir)
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
        _save(state_dir, record)
        if name == "containerd":
            processes.wait_until(
                lambda: _ctr(sock, "version", check=False).returncode == 0,
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


def _ctr(sock: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("ctr", f"--address={sock}", "--namespace=k8s.io", *args, check=check)


def load_image(state_dir: Path, archive: Path) -> None:
    """Import an image archive (docker-archive or OCI) into the node, as if kubelet had pulled it."""
    sock = state_dir / "node" / "containerd" / "containerd.sock"
    if not sock.exists():
        raise dc.DevClusterError(f"no node runs from {state_dir} (juliarun cluster up --node)")
    _ctr(sock, "images", "import", str(archive))


# --- down ----------------------------------------------------------------------------


def _load(state_dir: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((state_dir / "node" / "node.json").read_text())
    return record


def _save(state_dir: Path, record: dict[str, Any]) -> None:
    (state_dir / "node" / "node.json").write_text(json.dumps(record))


def _owner() -> str:
    try:
        return OWNER_FILE.read_text().strip()
    except FileNotFoundError:
        return ""


def stop(state_dir: Path) -> None:
    """Stop the node of state_dir and undo its changes to the machine. Safe to call twice."""
    state_dir = state_dir.resolve()
    node = state_dir / "node"
    try:
        record = _load(state_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        record = None
    owner = _owner()
    if (owner and owner != str(state_dir)) or (not owner and record is None):
        # The machine's node is another state dir's (or there is none): touch only our files.
        shutil.rmtree(node, ignore_errors=True)
        return
    record = record or {"sysctls": {}, "created": [], "processes": {}}
    procs = record["processes"]
    sock = node / "containerd" / "containerd.sock"
    binaries = {name: bin_dir() / name for name in BINARIES}

    def stop_process(name: str) -> None:
        if name in procs:
            processes.stop(procs[name]["pid"], Path(procs[name]["exe"]))

    stop_process("kubelet")  # first, so it restarts nothing that is being removed
    if "containerd" in procs and processes.alive(
        procs["containerd"]["pid"], Path(procs["containerd"]["exe"])
    ):
        # Through CRI, so every pod's network is torn down by CNI and its netns unmounted.
        subprocess.run(  # noqa: S603 (our crictl)
            [str(binaries["crictl"]), f"--runtime-endpoint=unix://{sock}", "rmp", "--all", "--force"],
            capture_output=True,
            timeout=120,
        )
    for name in reversed(PROCESSES):
        stop_process(name)
    _kill_shims(sock)
    if binaries["kube-proxy"].exists():
        subprocess.run([str(binaries["kube-proxy"]), "--cleanup"], capture_output=True, timeout=60)  # noqa: S603
    _remove_kube_chains()
    _unmount_under(node)
    for link in Path("/var/log/containers").glob("*.log"):
        if link.is_symlink() and str(os.readlink(link)).startswith(str(node)):
            link.unlink()
    for path in record.get("created", []):
        _remove_created(Path(path))
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "del", BRIDGE)
    for key, value in record["sysctls"].items():
        _sysctl(key).write_text(value)
    OWNER_FILE.unlink(missing_ok=True)
    shutil.rmtree(node, ignore_errors=True)


def _remove_created(path: Path) -> None:
    if str(path).startswith("/sys/fs/cgroup/"):
        # A cgroup goes with rmdir alone (its files are not files), innermost first.
        for dirpath, _, _ in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
            with contextlib.suppress(OSError):  # not ours to remove, or not empty
                os.rmdir(dirpath)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _kill_shims(sock: Path) -> None:
    """containerd's shims outlive it; ours are the ones started with our socket's address."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and str(sock).encode() in cmdline:
            processes.stop(int(proc.name), Path(os.readlink(proc / "exe")))


def _remove_kube_chains() -> None:
    """Chains kube-proxy --cleanup leaves: kubelet's and kube-proxy's canaries (KUBE-*)."""
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            listing = _run(tool, "-t", table, "-S", check=False).stdout.splitlines()
            chains = [line.split()[1] for line in listing if line.startswith("-N KUBE-")]
            # Jumps into them from the built-in chains (kubelet's KUBE-FIREWALL from INPUT, OUTPUT).
            for line in listing:
                words = shlex.split(line)
                if (
                    words[0] == "-A"
                    and not words[1].startswith("KUBE-")
                    and "-j" in words
                    and words[words.index("-j") + 1] in chains
                ):
                    _run(tool, "-t", table, "-D", *words[1:], check=False)
            for chain in chains:
                _run(tool, "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(tool, "-t", table, "-X", chain, check=False)


def _unmount_under(root: Path) -> None:
    """Every mount below root (secrets, projected tokens, rootfs overlays), deepest first."""
    prefix = str(root.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        if _run("umount", point, check=False).returncode != 0:
            _run("umount", "-l", point, check=False)


def status_line(state_dir: Path) -> str:
    try:
        procs = _load(state_dir)["processes"]
    except FileNotFoundError:
        return ""
    alive = [n for n, p in procs.items() if processes.alive(p["pid"], Path(p["exe"]))]
    return f"node {NODE_NAME} at {NODE_IP}: {len(alive)}/{len(PROCESSES)} processes alive"
