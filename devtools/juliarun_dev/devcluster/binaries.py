"""The control plane's binaries: their pinned versions, their cache directory, and building
whatever is missing with hack/controlplane/build.sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .state import DevClusterError

BINARIES = ("kube-apiserver", "kubectl", "etcd", "helm")
# A source checkout: this package is devtools/juliarun_dev in it (the dev tools are never in the wheel).
HACK_DIR = Path(__file__).resolve().parents[3] / "hack"


CONTROLPLANE_DIR = HACK_DIR / "controlplane"


def read_versions() -> dict[str, str]:
    """KEY=VALUE pairs of hack/controlplane/versions.env, the one place versions are pinned."""
    path = CONTROLPLANE_DIR / "versions.env"
    if not path.is_file():
        raise DevClusterError(
            f"{path} not found: the development tools need a juliarun-operator source checkout (`make setup`)"
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
