"""The chart as a release: `helm package` output linted, installed with `helm install` on the
real API server, and the installs of docs/install.md compared with each other."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from juliarun_dev import devcluster

from support.docs import run_block

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "juliarun-operator"
CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]

# Just enough of the Prometheus Operator's CRDs for their objects to be created.
MONITORING_CRDS = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules"))
]


@dataclass
class Helm:
    """The helm built by hack/controlplane, with private cache/config/data dirs."""

    path: Path
    home: Path

    def __call__(self, *args: str, kubeconfig: Path | None = None) -> str:
        result = self.run(*args, kubeconfig=kubeconfig)
        assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def run(self, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if kubeconfig:
            env["KUBECONFIG"] = str(kubeconfig)
        return subprocess.run([str(self.path), *args], capture_output=True, text=True, env=env, timeout=180)


@pytest.fixture(scope="module")
def helm(tmp_path_factory) -> Helm:
    return Helm(devcluster.ensure_binaries()["helm"], tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def package(helm, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chart")
    helm("package", str(CHART), "--destination", str(out))
    return out / f"juliarun-operator-{CHART_VERSION}.tgz"


def test_package_holds_the_chart_and_not_its_release_record(package):
    with tarfile.open(package) as tgz:
        names = set(tgz.getnames())
    assert {
        "juliarun-operator/Chart.yaml",
        "juliarun-operator/files/grafana-dashboard.json",
        "juliarun-operator/templates/prometheusrule.yaml",
        "juliarun-operator/crds/juliarun.dev_juliarunjobs.yaml",
    } <= names
    assert "juliarun-operator/.released" not in names


@pytest.mark.parametrize(
    "sets",
    [
        [],
        [
            "metrics.dashboard.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "metrics.serviceMonitor.enabled=true",
            "replicas=2",
        ],
    ],
)
def test_package_lints(helm, package, sets):
    args = ["lint", "--strict", str(package)]
    for s in sets:
        args += ["--set", s]
    assert "0 chart(s) failed" in helm(*args)


def test_helm_install_of_the_package(control_plane, helm, package):
    """helm install from the .tgz onto the API server, monitoring on; then helm uninstall."""
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input="\n---\n".join(json.dumps(crd) for crd in MONITORING_CRDS),
    )
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
    )
    namespace, release = f"jr-pkg-{uuid.uuid4().hex[:6]}", f"pkg{uuid.uuid4().hex[:4]}"
    kubeconfig = control_plane.kubeconfig
    helm(
        "install",
        release,
        str(package),
        "-n",
        namespace,
        "--create-namespace",
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "juliarun.namespace=juliarun",
        kubeconfig=kubeconfig,
    )
    try:
        listed = json.loads(helm("list", "-n", namespace, "-o", "json", kubeconfig=kubeconfig))
        assert [(r["name"], r["status"], r["chart"], r["app_version"]) for r in listed] == [
            (release, "deployed", f"juliarun-operator-{CHART_VERSION}", VERSION)
        ]
        deployment = json.loads(
            control_plane.kubectl(
                "get", "deployment", f"{release}-juliarun-operator", "-n", namespace, "-o", "json"
            ).stdout
        )
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == f"juliarun-operator:{VERSION}"
        dashboards = json.loads(
            control_plane.kubectl(
                "get", "configmap", "-n", namespace, "-l", "grafana_dashboard=1", "-o", "json"
            ).stdout
        )["items"]
        (dashboard,) = dashboards
        assert json.loads(dashboard["data"]["juliarun-operator.json"])["uid"] == "juliarun-operator"
        rule = json.loads(
            control_plane.kubectl(
                "get", "prometheusrule", f"{release}-juliarun-operator", "-n", namespace, "-o", "json"
            ).stdout
        )
        alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
        assert {
            "JuliaRunUnreachable",
            "JuliaRunStatusWritesFailing",
            "JuliaRunJobsStuckPending",
            "JuliaRunJobsStuckReconciling",
            "JuliaRunSubmitErrors",
            "JuliaRunOperatorForbidden",
            "JuliaRunConnectionsFailing",
        } == alerts
    finally:
        helm("uninstall", release, "-n", namespace, "--wait", kubeconfig=kubeconfig)
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


# --- from an OCI registry, as users install add-ons ---------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from chart_helpers import Registry

    server = Registry(tmp_path_factory.mktemp("registry"))
    server.start()
    yield server
    server.kill(signal.SIGTERM)


def test_helm_install_from_an_oci_registry(control_plane, helm, package, registry):
    """`helm push` to a registry, then `helm show readme` and `helm install oci://...` from it."""
    pushed = helm("push", str(package), f"oci://{registry.host}/charts", "--plain-http")
    assert registry.tags("charts/juliarun-operator") == [CHART_VERSION], pushed
    ref = f"oci://{registry.host}/charts/juliarun-operator"
    readme = helm("show", "readme", ref, "--version", CHART_VERSION, "--plain-http")
    assert readme.strip() == (CHART / "README.md").read_text().strip()  # helm adds a newline
    chart = yaml.safe_load(helm("show", "chart", ref, "--version", CHART_VERSION, "--plain-http"))
    scheme, _, data = chart["icon"].partition(",")
    assert (
        scheme == "data:image/svg+xml;base64" and base64.b64decode(data) == (CHART / "icon.svg").read_bytes()
    )
    namespace, release = f"jr-oci-{uuid.uuid4().hex[:6]}", f"oci{uuid.uuid4().hex[:4]}"
    kubeconfig = control_plane.kubeconfig
    helm(
        "install", release, ref, "--version", CHART_VERSION, "--plain-http", "-n", namespace,
        "--create-namespace", kubeconfig=kubeconfig,
    )  # fmt: skip
    try:
        listed = json.loads(helm("list", "-n", namespace, "-o", "json", kubeconfig=kubeconfig))
        assert [(r["name"], r["status"], r["chart"]) for r in listed] == [
            (release, "deployed", f"juliarun-operator-{CHART_VERSION}")
        ]
        policy = json.loads(
            control_plane.kubectl(
                "get", "networkpolicy", f"{release}-juliarun-operator", "-n", namespace, "-o", "json"
            ).stdout
        )
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    finally:
        helm("uninstall", release, "-n", namespace, "--wait", kubeconfig=kubeconfig)
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.mark.parametrize("value", ["watchNamespaces", "rbac.secretNamespaces"])
def test_a_missing_namespace_is_refused_before_anything_is_applied(control_plane, helm, package, value):
    namespace, release = f"jr-miss-{uuid.uuid4().hex[:6]}", f"miss{uuid.uuid4().hex[:4]}"
    missing = f"no-such-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", namespace)
    try:
        result = helm.run(
            "install", release, str(package), "-n", namespace, "--set", f"{value}={{{missing}}}",
            kubeconfig=control_plane.kubeconfig,
        )  # fmt: skip
        assert result.returncode != 0
        assert (
            f'namespace "{missing}" (watchNamespaces or rbac.secretNamespaces) does not exist'
            in result.stderr
        )
        # Nothing of the release was applied: no ServiceAccount, no ClusterRole, no release record.
        left = control_plane.kubectl(
            "get", "serviceaccounts,secrets", "-n", namespace, "-o", "name"
        ).stdout.split()  # fmt: skip
        assert [n for n in left if release in n] == []
        roles = control_plane.kubectl("get", "clusterroles", "-o", "name").stdout.split()
        assert [n for n in roles if release in n] == []
    finally:
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


# --- docs/install.md: the Helm and the kustomize install --------------------------------------


def docs_block(after: str, lang: str) -> str:
    """The first ```lang block of docs/install.md after the line `after`."""
    text = (REPO / "docs" / "install.md").read_text()
    return re.search(rf"```{lang}\n(.*?)```", text[text.index(after) :], re.DOTALL).group(1)


def test_helm_and_kustomize_installs_send_jobs_to_the_same_juliarun_namespace(
    control_plane, helm, package, tmp_path
):
    # The Helm install's --set values, as docs/install.md writes them (on the packaged chart).
    command = next(
        c
        for c in docs_block("## With Helm", "sh").replace("\\\n", " ").splitlines()
        if c.startswith("helm install")
    )
    words = shlex.split(command)
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    assert any(s.startswith("juliarun.namespace=") for s in sets), command
    args = ["template", "juliarun-operator", str(package), "-n", "juliarun-system"]
    for s in sets:
        args += ["--set", s]
    helm_objects = [o for o in yaml.safe_load_all(helm(*args)) if o]
    # The kustomize overlay as written, in a tree where ../../deploy is the repository's deploy/.
    overlay = tmp_path / "overlays" / "prod"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(docs_block("## With kustomize", "yaml"))
    (tmp_path / "deploy").symlink_to(REPO / "deploy")
    kustomized = [o for o in yaml.safe_load_all(control_plane.kubectl("kustomize", str(overlay)).stdout) if o]

    def env(objects: list[dict]) -> dict[str, str]:
        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        return {
            e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }

    helm_env, kustomize_env = env(helm_objects), env(kustomized)
    assert helm_env["JULIARUN_NAMESPACE"] == kustomize_env["JULIARUN_NAMESPACE"] == "juliarun"
    assert helm_env["JULIARUN_URL"] == kustomize_env["JULIARUN_URL"]
    assert helm_env["JULIARUN_TOKEN_FILE"].startswith("/var/run/secrets/juliarun/token/")
    assert kustomize_env["JULIARUN_TOKEN_FILE"].startswith("/var/run/secrets/juliarun/token/")


# --- kustomize: install, upgrade and delete as docs/install.md writes them ---------------------


@pytest.fixture(scope="module")
def fresh_control_plane(tmp_path_factory):
    """A control plane of its own: `kubectl delete -k deploy/` deletes the CRD, which the
    session's other tests use."""
    state = tmp_path_factory.mktemp("kustomize-cluster")
    info = devcluster.up(state_dir=state)
    try:
        yield info
    finally:
        devcluster.down(state)


@pytest.mark.cluster  # a control plane of its own, not the session's `control_plane`
def test_kustomize_install_upgrade_and_delete_as_documented(fresh_control_plane, tmp_path):
    from chart_helpers import BASE_ENV

    info = fresh_control_plane
    env = {
        **BASE_ENV,
        "KUBECONFIG": str(info.kubeconfig),
        "PATH": f"{info.kubectl.parent}:{os.environ['PATH']}",
    }
    installed = run_block("docs/install.md", "kustomize-install", env=env).stdout
    assert "deployment.apps/juliarun-operator serverside-applied" in installed, installed
    # The next release's deploy/ (here: another image tag), applied with the documented
    # upgrade: no field-manager conflict, the change applied.
    release = tmp_path / "next"
    shutil.copytree(REPO / "deploy", release / "deploy")
    kustomization = release / "deploy" / "kustomization.yaml"
    kustomization.write_text(re.sub(r'newTag: "[^"]*"', 'newTag: "9.9.9"', kustomization.read_text()))
    upgraded = run_block("docs/install.md", "kustomize-upgrade", env=env, cwd=release)
    assert "conflict" not in (upgraded.stdout + upgraded.stderr).lower()
    image = subprocess.run(
        [str(info.kubectl), "get", "deployment", "juliarun-operator", "-n", "juliarun-system",
         "-o", "jsonpath={.spec.template.spec.containers[0].image}"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert image == "juliarun-operator:9.9.9"
    # No namespace controller here: without --wait=false this would wait for ever.
    start = time.monotonic()
    deleted = run_block("docs/install.md", "kustomize-delete", env=env, timeout=60).stdout
    assert 'namespace "juliarun-system" deleted' in deleted, deleted
    assert time.monotonic() - start < 30
