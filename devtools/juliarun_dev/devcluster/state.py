"""The error every step of the local cluster raises, and what `up` records about a running
cluster and where: ClusterInfo in the state dir, and the marker that makes a directory a
cluster's state dir.

A state dir is never a weapon: `up` takes only a new or an empty directory and marks it
(MARKER); `down` touches only a marked directory and removes only the entries `up` and the
node make (OWN_ENTRIES), and the directory itself only if `up` created it and it is then
empty. An empty --state-dir (an unset variable) is refused before anything happens."""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


MARKER = ".juliarun-cluster"
# Every top-level entry `up` (and the node, under node/) makes in a state dir: `down`
# removes these and nothing else, whatever else someone put there.
OWN_ENTRIES = (
    "cluster.json",
    "pki",
    "etcd-data",
    "etcd.log",
    "kube-apiserver.log",
    "kubeconfig",
    "node",
)


def state_dir_argument(text: str) -> Path:
    """argparse type of --state-dir: an empty value is a mistake (`--state-dir "$STATE"` with
    STATE unset), never the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "empty (an unset variable?): name a directory, or leave --state-dir out for the default"
        )
    return Path(text)


def is_cluster_dir(state_dir: Path) -> bool:
    return (state_dir / MARKER).is_file()


def claim(state_dir: Path) -> None:
    """Make state_dir this cluster's: create it, or take an existing empty directory; refuse
    a directory with anything in it that is not a cluster's."""
    if state_dir.exists():
        if is_cluster_dir(state_dir):
            return
        if not state_dir.is_dir():
            raise DevClusterError(f"state dir {state_dir} exists and is not a directory")
        if any(state_dir.iterdir()):
            raise DevClusterError(
                f"state dir {state_dir} is not empty and not a local cluster's (no {MARKER} in it): "
                "nothing touched; name a new or an empty directory with --state-dir"
            )
        created = False
    else:
        state_dir.mkdir(mode=0o700, parents=True)
        created = True
    (state_dir / MARKER).write_text(json.dumps({"created_dir": created}) + "\n")


def release(state_dir: Path) -> list[str]:
    """Remove what `up` made in a cluster's state dir (the node already stopped); return the
    entries left there because they are not ours."""
    marker = state_dir / MARKER
    created = bool(json.loads(marker.read_text()).get("created_dir"))
    for name in OWN_ENTRIES:
        path = state_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    marker.unlink()
    left = sorted(p.name for p in state_dir.iterdir())
    if created and not left:
        state_dir.rmdir()
    return left
