"""Stopping the node and undoing every change it made to the machine: its processes and
pods, containerd's shims, kube-proxy's iptables chains, mounts, created paths, the bridge
and the sysctls; and the one-line status of its processes."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from ..devcluster import processes
from ..devnode_config import BRIDGE, NODE_IP, NODE_NAME
from .host import BINARIES, OWNER_FILE, PROCESSES, bin_dir, load_record, node_owner, run, sysctl


def stop(state_dir: Path) -> None:
    """Stop the node of state_dir and undo its changes to the machine. Safe to call twice."""
    state_dir = state_dir.resolve()
    node = state_dir / "node"
    try:
        record = load_record(state_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        record = None
    owner = node_owner()
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
        run("ip", "link", "del", BRIDGE)
    for key, value in record["sysctls"].items():
        sysctl(key).write_text(value)
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
            listing = run(tool, "-t", table, "-S", check=False).stdout.splitlines()
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
                    run(tool, "-t", table, "-D", *words[1:], check=False)
            for chain in chains:
                run(tool, "-t", table, "-F", chain, check=False)
            for chain in chains:
                run(tool, "-t", table, "-X", chain, check=False)


def _unmount_under(root: Path) -> None:
    """Every mount below root (secrets, projected tokens, rootfs overlays), deepest first."""
    prefix = str(root.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        if run("umount", point, check=False).returncode != 0:
            run("umount", "-l", point, check=False)


def status_line(state_dir: Path) -> str:
    try:
        procs = load_record(state_dir)["processes"]
    except FileNotFoundError:
        return ""
    alive = [n for n, p in procs.items() if processes.alive(p["pid"], Path(p["exe"]))]
    return f"node {NODE_NAME} at {NODE_IP}: {len(alive)}/{len(PROCESSES)} processes alive"
