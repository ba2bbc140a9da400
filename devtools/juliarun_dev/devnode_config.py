"""The local node's configuration files (devnode/ starts the processes that read them).

Each setting that departs from a default says why; docs/node.md lists them with what a
machine with a full cgroup v2 hierarchy and CAP_SYS_RESOURCE would use instead.
"""

from __future__ import annotations

import io
import json
import platform
import tarfile
from hashlib import sha256
from pathlib import Path

import yaml

from . import devcluster as dc
from .devcluster.processes import free_port

NODE_NAME = "juliarun-node"
BRIDGE = "juliarun0"
NODE_IP = dc.NODE_IP
POD_CIDR = "10.244.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/juliarun/pause:1"
CNI_BIN_DIR = Path("/usr/lib/cni")
RUNC = Path("/usr/sbin/runc")


def write_configs(node: Path, pki: Path, kubeconfig: Path, sock: Path) -> dict[str, Path]:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    containerd = f"""version = 2
root = "{node / "containerd" / "root"}"
state = "{node / "containerd" / "state"}"
# Only what CRI uses; "opt" would install into /opt/containerd.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE the sandbox's oom_score_adj -998 is refused (runc then fails
  # with "can't get final child's PID from pipe"); keep it at or above our own instead.
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state dir, not /run/netns: `stop` finds every one.
  netns_mounts_under_state_dir = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{RUNC}"
  Root = "{node / "runc"}"
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{node / "cni"}"
"""
    cni = {
        "cniVersion": "1.0.0",
        "name": "juliarun",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "hairpinMode": True,
                # No masquerade: pods only talk to this host and each other, and no CNI iptables rules.
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node / "cni-ipam"),
                },
            }
        ],
    }
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": free_port(),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": free_port(),
        "containerRuntimeEndpoint": f"unix://{sock}",
        # The API server authenticates to kubelet with the admin certificate (logs, exec).
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "AlwaysAllow"},
        # A hybrid cgroup v1 hierarchy and no CAP_SYS_RESOURCE: see docs/node.md.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "podLogsDir": str(node / "pod-logs"),
        # Images are imported, never pulled: never garbage-collect them; evict only when truly full.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "serializeImagePulls": False,
    }
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{free_port()}",
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # Leave the machine's sysctls alone: conntrack sizes and route_localnet.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False},
    }
    coredns = f""".:53 {{
    bind {NODE_IP}
    health 127.0.0.1:{free_port()}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} juliarun-dev
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
    loop
}}
"""
    files = {
        "containerd": node / "containerd.toml",
        "kubelet": node / "kubelet.yaml",
        "kube-proxy": node / "kube-proxy.yaml",
        "coredns": node / "Corefile",
    }
    files["containerd"].write_text(containerd)
    files["kubelet"].write_text(yaml.safe_dump(kubelet))
    files["kube-proxy"].write_text(yaml.safe_dump(proxy))
    files["coredns"].write_text(coredns)
    (node / "cni").mkdir()
    (node / "cni" / "10-juliarun.conflist").write_text(json.dumps(cni, indent=2))
    return files


def pause_image(node: Path, pause: Path) -> Path:
    """A docker-archive of the sandbox image: our pause binary alone (nothing can be pulled here)."""
    return static_image(node / "pause.tar", PAUSE_IMAGE, pause, "65535:65535")


def static_image(path: Path, tag: str, binary: Path, user: str) -> Path:
    """A docker-archive at `path` of an image `tag` whose one file is the static program
    `binary`, its entrypoint, run as `user` (uid:gid): what `cluster load` and containerd import."""

    def tar_bytes(entries: dict[str, tuple[bytes, int]]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, (data, mode) in entries.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    layer = tar_bytes({binary.name: (binary.read_bytes(), 0o755)})
    layer_id = sha256(layer).hexdigest()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Entrypoint": [f"/{binary.name}"], "User": user},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        }
    ).encode()
    config_name = f"{sha256(config).hexdigest()}.json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{layer_id}/layer.tar"]}]
    ).encode()
    path.write_bytes(
        tar_bytes(
            {
                f"{layer_id}/layer.tar": (layer, 0o644),
                config_name: (config, 0o644),
                "manifest.json": (manifest, 0o644),
            }
        )
    )
    return path
