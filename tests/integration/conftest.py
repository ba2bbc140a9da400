"""Fixtures for tests against a real Kubernetes API server.

One local etcd + kube-apiserver (juliarun_dev.devcluster) is started for the
session and stopped after it. The tests use another cluster only when told to:
JULIARUN_TEST_KUBECONFIG names its kubeconfig (e.g. the one hack/kind-up.sh writes).
A KUBECONFIG in the environment is ignored, so a production context is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from juliarun_dev import devcluster
from juliarun_operator.api import FINALIZER

from argocd_lua import LUA_INSTALL


@dataclass
class ControlPlane:
    kubeconfig: Path
    server: str
    kubectl_path: Path
    external: bool  # True when the cluster came from $JULIARUN_TEST_KUBECONFIG, not from devcluster
    token_dir: Path  # kubeconfigs made by kubectl(as_token=...)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, as_token: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run kubectl as cluster admin, or, with as_token, as the bearer of that token."""
        kubeconfig = self.token_kubeconfig(as_token) if as_token else self.kubeconfig
        result = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def token_kubeconfig(self, token: str) -> Path:
        """A kubeconfig of this cluster whose only credential is `token`."""
        # The admin kubeconfig carries a client certificate, which the apiserver
        # would authenticate before the token; so the token gets a kubeconfig
        # with the same cluster and no other credentials.
        cluster = _current_cluster(self.kubeconfig)
        path = self.token_dir / f"token-{abs(hash(token))}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [cluster],
                    "users": [{"name": "token", "user": {"token": token}}],
                    "contexts": [{"name": "token", "context": {"cluster": cluster["name"], "user": "token"}}],
                    "current-context": "token",
                }
            )
        )
        path.chmod(0o600)
        return path


def _current_cluster(kubeconfig: Path) -> dict:
    """The `clusters` entry that the kubeconfig's current context uses."""
    config = yaml.safe_load(kubeconfig.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    return next(c for c in config["clusters"] if c["name"] == context["cluster"])


def _kubectl_for_external() -> Path:
    """The pinned kubectl if built; else kubectl on PATH (kind users have one); else build it."""
    built = devcluster.bin_dir() / "kubectl"
    if built.is_file():
        return built
    on_path = shutil.which("kubectl")
    return Path(on_path) if on_path else devcluster.ensure_binaries()["kubectl"]


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    token_dir = tmp_path_factory.mktemp("tokens")
    # Only this variable opts in to a cluster we did not start; it must name a file.
    external = os.environ.get("JULIARUN_TEST_KUBECONFIG")
    if external:
        if not Path(external).is_file():
            pytest.exit(f"JULIARUN_TEST_KUBECONFIG={external}: no such file", returncode=2)
        kubeconfig = Path(external)
        server = _current_cluster(kubeconfig)["cluster"]["server"]
        cp = ControlPlane(kubeconfig, server, _kubectl_for_external(), True, token_dir)
        yield cp
        _no_object_left_to_finalize(cp)
        return
    state_dir = tmp_path_factory.mktemp("cluster")
    info = devcluster.up(state_dir=state_dir)
    try:
        cp = ControlPlane(info.kubeconfig, info.server, info.kubectl, False, token_dir)
        yield cp
        _no_object_left_to_finalize(cp)
    finally:
        devcluster.down(state_dir)


def _no_object_left_to_finalize(cp: ControlPlane) -> None:
    """Every test deletes its objects while its operator still runs: an object left with the
    operator's finalizer can be deleted by nobody once that operator is gone."""
    if cp.kubectl("get", "crd", "juliarunjobs.juliarun.dev", check=False).returncode != 0:
        return
    items = json.loads(cp.kubectl("get", "jrj", "-A", "-o", "json").stdout)["items"]
    left = sorted(
        f"{o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in items
        if FINALIZER in (o["metadata"].get("finalizers") or [])
    )
    assert not left, f"{len(left)} JuliaRunJobs left with the operator's finalizer, e.g. {left[:10]}"


@pytest.fixture(scope="session")
def lua() -> str:
    """Lua 5.4, to run Argo CD's health check and actions (tests/integration/argocd_lua.py)."""
    path = shutil.which("lua5.4")
    if not path:
        pytest.fail(
            f"lua5.4 not found: the Argo CD health check needs a Lua interpreter to test; "
            f"install it with `{LUA_INSTALL}` (Debian/Ubuntu)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def k8s_api_client(control_plane):
    """The official kubernetes client, configured for the control plane."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    yield client
    client.close()


# --- the chart's tests (test_chart.py, test_chart_security.py) -----------------------------

CHART = Path(__file__).resolve().parents[2] / "charts" / "juliarun-operator"
SERVICEMONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    kind: ServiceMonitor
    plural: servicemonitors
    singular: servicemonitor
    listKind: ServiceMonitorList
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""


@pytest.fixture(scope="session")
def helm() -> Path:
    return devcluster.ensure_binaries()["helm"]


@pytest.fixture(scope="module")
def crds_installed(control_plane):
    """The chart's CRDs, and a stand-in ServiceMonitor CRD, so custom objects can be dry-run."""
    # Server-side apply: idempotent with other tests that created the same CRDs.
    for path in sorted((CHART / "crds").glob("*.yaml")):
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=SERVICEMONITOR_CRD)
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/juliarunjobs.juliarun.dev",
        "crd/servicemonitors.monitoring.coreos.com",
    )
