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

host.py holds what the node needs of the machine and records, up.py starting it,
down.py stopping it and undoing its changes.
"""

from __future__ import annotations

from ..devnode_config import BRIDGE, NODE_IP, NODE_NAME
from .down import status_line, stop
from .host import OWNER_FILE, PROCESSES, bin_dir, check_host, ensure_binaries
from .up import apiserver_flags, load_image, prepare, start

__all__ = [
    "BRIDGE",
    "NODE_IP",
    "NODE_NAME",
    "OWNER_FILE",
    "PROCESSES",
    "apiserver_flags",
    "bin_dir",
    "check_host",
    "ensure_binaries",
    "load_image",
    "prepare",
    "start",
    "status_line",
    "stop",
]
