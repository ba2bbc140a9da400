"""A local Kubernetes control plane for development and integration tests.

Like controller-runtime's envtest: a real etcd and kube-apiserver on loopback
ports, with no kubelet, no controller-manager and so no pods. It is enough for
CRDs (validation, CEL, status/scale subresources), watches, finalizers, RBAC
and the TokenRequest API. With --node it also runs one worker node (devnode/):
pods, Deployments, Services and cluster DNS.

The binaries are built from source by hack/controlplane/build.sh into a
per-version cache (see hack/controlplane/versions.env). `up` starts the two
processes detached from the caller and records them in a state dir, so a
later `down` (from any process) stops them and removes every file they used, and nothing
else: the state dir is new or empty when `up` takes it, and marked (state.py).

    juliarun cluster up [--node] [--kubeconfig FILE]    # prints the kubeconfig path
    juliarun cluster load IMAGE.tar                    # an image into the node
    juliarun cluster status
    juliarun cluster down [--kubeconfig FILE]
    eval "$(juliarun cluster env)"                     # PATH and KUBECONFIG for a shell

state.py holds what `up` records, binaries.py the binaries, processes.py how a process is
started and stopped, control_plane.py `up`, `status` and `down`, cli.py the subcommand.
"""

from __future__ import annotations

from . import processes
from .binaries import BINARIES, CONTROLPLANE_DIR, HACK_DIR, bin_dir, ensure_binaries, read_versions
from .cli import configure_parser, main
from .control_plane import NODE_IP, SERVICE_CIDR, down, status, up
from .state import ClusterInfo, DevClusterError, default_state_dir

__all__ = [
    "BINARIES",
    "CONTROLPLANE_DIR",
    "HACK_DIR",
    "NODE_IP",
    "SERVICE_CIDR",
    "ClusterInfo",
    "DevClusterError",
    "bin_dir",
    "configure_parser",
    "default_state_dir",
    "down",
    "ensure_binaries",
    "main",
    "processes",
    "read_versions",
    "status",
    "up",
]
