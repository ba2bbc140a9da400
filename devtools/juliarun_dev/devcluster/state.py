"""The error every step of the local cluster raises, and what `up` records about a running
cluster and where: ClusterInfo in the state dir."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


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


def default_state_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"  # noqa: S108 (a per-user dir is made below it)
    return Path(base) / f"juliarun-cluster-{os.getuid()}"


def state_file(state_dir: Path) -> Path:
    return state_dir / "cluster.json"
