"""What a node needs of the machine and records about it: its binaries, root and the tools
it runs, the machine-wide state it changes (owner file, sysctls, paths outside the state
dir) and the record (node.json) that lets `stop` undo it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import devcluster as dc
from ..devnode_config import CNI_BIN_DIR, RUNC

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


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Our own commands (ip, ctr, iptables, umount) with arguments we make.
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)  # noqa: S603
    if check and result.returncode != 0:
        raise dc.DevClusterError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def sysctl(key: str) -> Path:
    return Path("/proc/sys") / key


def ctr(sock: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("ctr", f"--address={sock}", "--namespace=k8s.io", *args, check=check)


def load_record(state_dir: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((state_dir / "node" / "node.json").read_text())
    return record


def save_record(state_dir: Path, record: dict[str, Any]) -> None:
    (state_dir / "node" / "node.json").write_text(json.dumps(record))


def node_owner() -> str:
    try:
        return OWNER_FILE.read_text().strip()
    except FileNotFoundError:
        return ""
