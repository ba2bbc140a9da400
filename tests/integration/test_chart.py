"""The Helm chart and the plain manifests in deploy/, against the real API server.

Renders the packaged chart (`helm package`, as released) with the helm built by
hack/controlplane, checks the values schema, applies
everything with server-side dry-run, checks the restricted Pod Security Standard on
a real apply, and runs the operator as the chart's ServiceAccount to show its RBAC
is enough (and no more than needed).
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from harness import Kube

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "juliarun-operator"
DEPLOY = REPO / "deploy"
JULIARUN = Path(sys.executable).with_name("juliarun")
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")

# Just enough of the Prometheus Operator's CRD for a ServiceMonitor to pass dry-run.


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # A private HOME-like cache/config keeps helm from touching the user's ~/.config/helm.
    env = {
        **os.environ,
        # S108: a throwaway helm cache of public charts; nothing secret is kept there.
        "HELM_CACHE_HOME": "/tmp/juliarun-helm/cache",  # noqa: S108
        "HELM_CONFIG_HOME": "/tmp/juliarun-helm/config",  # noqa: S108
        "HELM_DATA_HOME": "/tmp/juliarun-helm/data",  # noqa: S108
    }
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


@functools.cache
def packaged(helm: Path) -> Path:
    """The chart as `helm package` makes it: what a release publishes and users install."""
    out = Path(tempfile.mkdtemp(prefix="juliarun-chart-"))
    run_helm(helm, "package", str(CHART), "--destination", str(out))
    (tgz,) = out.glob("*.tgz")
    return tgz


# What `helm install` finds on a Kubernetes 1.36 API server; `helm template` alone assumes less.
MAP_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"


def render(
    helm: Path,
    *sets: str,
    release: str = "jro",
    namespace: str = "juliarun-system",
    crds: bool = False,
    api_versions: tuple[str, ...] = (),
) -> str:
    args = ["template", release, str(packaged(helm)), "--namespace", namespace]
    if crds:
        args.append("--include-crds")
    for api in api_versions:
        args += ["--api-versions", api]
    for s in sets:
        args += ["--set", s]
    return run_helm(helm, *args).stdout


def objects(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def unique_ns(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_namespace(control_plane, name: str, labels: dict[str, str] | None = None) -> None:
    meta = {"name": name, "labels": labels or {}}
    control_plane.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    )


# --- files in step -------------------------------------------------------------------


@pytest.mark.parametrize("copy_dir", [CHART / "crds", DEPLOY / "crds"], ids=["chart", "deploy"])
def test_crd_copies_match_repo(copy_dir):
    """Helm installs only its chart's crds/ and kustomize only files under deploy/: copies, kept identical."""
    originals = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert sorted(p.name for p in copy_dir.glob("*.yaml")) == originals
    for name in originals:
        assert (copy_dir / name).read_bytes() == (REPO / "crds" / name).read_bytes(), (
            f"{copy_dir / name} differs from crds/{name}: copy it again (cp crds/*.yaml {copy_dir}/)"
        )


def test_argocd_health_copy_matches():
    chart_copy = CHART / "files" / "argocd-health.lua"
    assert chart_copy.read_bytes() == (REPO / "gitops" / "argocd" / "health.lua").read_bytes(), (
        "cp gitops/argocd/health.lua charts/juliarun-operator/files/argocd-health.lua"
    )


def _normalized(obj: dict) -> dict:
    """An object without what Helm alone adds (its labels) or kustomize alone sets (namespace, image tag)."""
    obj = json.loads(json.dumps(obj))
    for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
        for key in HELM_ONLY_LABELS:
            meta.get("labels", {}).pop(key, None)
        meta.pop("namespace", None)
    return obj


def test_deploy_manifests_match_chart_defaults(control_plane, helm):
    """deploy/ is the chart's default install (release juliarun-operator) as plain files."""
    chart = objects(render(helm, release="juliarun-operator", api_versions=(MAP_API,)))
    kustomized = objects(control_plane.kubectl("kustomize", str(DEPLOY)).stdout)
    plain = [o for o in kustomized if o["kind"] not in ("Namespace", "CustomResourceDefinition")]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, plain)) == sorted(map(key, chart))
    chart_by_key = {key(o): _normalized(o) for o in chart}
    for obj in plain:
        assert obj["metadata"].get("namespace", "juliarun-system") == "juliarun-system"
        assert _normalized(obj) == chart_by_key[key(obj)], f"deploy/ {key(obj)} differs from the chart"
    crds = {o["metadata"]["name"] for o in by_kind(kustomized, "CustomResourceDefinition")}
    assert crds == {"juliarunjobs.juliarun.dev"}


# --- lint, render, schema ----------------------------------------------------------------

VARIANTS = {
    "defaults": [],
    "namespaced": ["watchNamespaces={team-a,team-b}"],
    "replicas2": ["replicas=2"],
    "everything": [
        "replicas=2",
        "watchNamespaces={team-a}",
        "metrics.serviceMonitor.enabled=true",
        "argocdHealthCheck.enabled=true",
        "juliarun.url=https://juliarun.example:443",
        "juliarun.tokenSecret.name=jr-token",
        "juliarun.ca.configMapName=jr-ca",
        "logFormat=json",
        "syncInterval=2.5",
        "leaderElection.leaseName=jr",
    ],
    "security": [
        "rbac.secretNamespaces={team-a}",
        "tenancy.allowedHosts={jr.example.com,*.jr.internal}",
        "juliarun.allowInsecureHttp=true",
        "juliarun.serviceAccountToken.expirationSeconds=600",
    ],
}


@pytest.mark.parametrize("sets", VARIANTS.values(), ids=VARIANTS.keys())
def test_helm_lint(helm, sets):
    args = ["lint", str(CHART), "--strict"]
    for s in sets:
        args += ["--set", s]
    result = run_helm(helm, *args)
    assert "0 chart(s) failed" in result.stdout


def _workload(objs: list[dict]) -> dict:
    (workload,) = [o for o in objs if o["kind"] == "Deployment"]
    return workload


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_render_defaults_is_standalone_deployment(helm):
    objs = objects(render(helm))
    workload = _workload(objs)
    assert workload["kind"] == "Deployment" and workload["spec"]["replicas"] == 1
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator", "--standalone"]
    assert container["image"] == "juliarun-operator:0.1.0"
    assert {"LEASE_NAME", "WATCH_NAMESPACES"}.isdisjoint(_env(container))
    assert not by_kind(objs, "Role") and not by_kind(objs, "RoleBinding")
    assert len(by_kind(objs, "ClusterRoleBinding")) == 2


def test_render_replicas_share_a_lease(helm):
    objs = objects(render(helm, "replicas=2"))
    workload = _workload(objs)
    assert workload["spec"]["replicas"] == 2 and "strategy" not in workload["spec"]
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator"]
    env = _env(container)
    assert env["LEASE_NAME"] == "jro-juliarun-operator"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    (role,) = by_kind(objs, "Role")
    assert role["rules"][1]["resourceNames"] == ["jro-juliarun-operator"]


def test_render_watch_namespaces_binds_per_namespace(helm):
    objs = objects(
        render(helm, "watchNamespaces={team-a,team-b}", "replicas=2", "metrics.serviceMonitor.enabled=true")
    )
    env = _env(_workload(objs)["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACES"] == "team-a,team-b"
    bindings = [b for b in by_kind(objs, "RoleBinding") if b["roleRef"]["kind"] == "ClusterRole"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    # The namespaced role (with Secrets) is bound only there; cluster-wide only the -cluster role.
    assert [b["roleRef"]["name"] for b in by_kind(objs, "ClusterRoleBinding")] == [
        "jro-juliarun-operator-cluster"
    ]
    assert [
        b["metadata"]["name"] for b in by_kind(objs, "RoleBinding") if b["roleRef"]["kind"] == "Role"
    ] == ["jro-juliarun-operator-lease"]
    assert len(by_kind(objs, "ServiceMonitor")) == 1


def test_finalizer_policy_where_served_bound_to_watched_namespaces(control_plane, helm, crds_installed):
    """Rendered only where the API server serves MutatingAdmissionPolicy, bound to the
    watched namespaces alone, and accepted by a 1.36 API server."""
    assert not by_kind(objects(render(helm)), "MutatingAdmissionPolicy")
    off = objects(render(helm, "finalizerPolicy.enabled=false", api_versions=(MAP_API,)))
    assert not by_kind(off, "MutatingAdmissionPolicy")
    objs = objects(render(helm, "watchNamespaces={team-a,team-b}", api_versions=(MAP_API,)))
    (policy,) = by_kind(objs, "MutatingAdmissionPolicy")
    (binding,) = by_kind(objs, "MutatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    (selector,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector["key"] == "kubernetes.io/metadata.name" and selector["operator"] == "In"
    assert selector["values"] == ["team-a", "team-b"]
    assert "juliarun.dev/finalizer" in policy["spec"]["mutations"][0]["applyConfiguration"]["expression"]
    control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all([policy, binding]))


def test_render_connection_values(helm):
    objs = objects(
        render(
            helm,
            "juliarun.url=https://jr.example",
            "juliarun.namespace=jobs",
            "juliarun.tokenSecret.name=jr-token",
            "juliarun.tokenSecret.key=tok",
            "juliarun.ca.secretName=jr-ca",
        )
    )
    pod = _workload(objs)["spec"]["template"]["spec"]
    env = _env(pod["containers"][0])
    assert env["JULIARUN_URL"] == "https://jr.example" and env["JULIARUN_NAMESPACE"] == "jobs"
    assert env["JULIARUN_TOKEN_FILE"] == "/var/run/secrets/juliarun/token/tok"
    assert env["JULIARUN_CA_FILE"] == "/var/run/secrets/juliarun/ca/ca.crt"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["juliarun-token"]["secret"]["secretName"] == "jr-token"
    assert volumes["juliarun-ca"]["secret"]["secretName"] == "jr-ca"


BAD_VALUES = {
    "negative sync interval": (["syncInterval=-1"], "/syncInterval"),
    "unknown log format": (["logFormat=xml"], "/logFormat"),
    "unknown top-level key": (["syncIntreval=5"], "syncIntreval"),
    "zero replicas": (["replicas=0"], "/replicas"),
    "bad pull policy": (["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    "namespace not a DNS label": (["watchNamespaces={Team_A}"], "/watchNamespaces/0"),
    "port out of range": (["metrics.port=70000"], "/metrics/port"),
}


@pytest.mark.parametrize("sets,named", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_refuses_bad_values(helm, sets, named):
    args = ["template", "jro", str(packaged(helm))]
    for s in sets:
        args += ["--set", s]
    result = run_helm(helm, *args, check=False)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr, result.stderr


def test_template_refuses_two_ca_sources(helm):
    result = run_helm(
        helm,
        "template",
        "jro",
        str(packaged(helm)),
        "--set",
        "juliarun.ca.secretName=a",
        "--set",
        "juliarun.ca.configMapName=b",
        check=False,
    )
    assert result.returncode != 0 and "set secretName or configMapName, not both" in result.stderr


# --- on the API server ------------------------------------------------------------------------


@pytest.mark.parametrize("sets", VARIANTS.values(), ids=VARIANTS.keys())
def test_chart_server_dry_run(control_plane, helm, crds_installed, sets):
    namespace = unique_ns("jr-dry")
    create_namespace(control_plane, namespace)
    # RoleBindings go into the watched namespaces, which must exist.
    for s in sets:
        if s.startswith(("watchNamespaces=", "rbac.secretNamespaces=")):
            for ns in s.partition("=")[2].strip("{}").split(","):
                create_namespace(control_plane, ns)
    manifest = render(helm, *sets, namespace=namespace, release=f"dry{uuid.uuid4().hex[:4]}")
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest)
    assert "Warning" not in result.stderr, result.stderr
    assert len(result.stdout.strip().splitlines()) == len(objects(manifest))


def test_kustomize_server_dry_run(control_plane, crds_installed):
    manifest = control_plane.kubectl("kustomize", str(DEPLOY)).stdout
    # The namespace is created for real (dry-run cannot put objects into a namespace it only
    # pretends to create).
    create_namespace(control_plane, "juliarun-system", {"pod-security.kubernetes.io/enforce": "restricted"})
    without_crds = "---\n".join(
        yaml.safe_dump(o) for o in objects(manifest) if o["kind"] != "CustomResourceDefinition"
    )
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=without_crds)
    assert "deployment.apps/juliarun-operator created (server dry run)" in result.stdout


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    # Enforcement applies to Pods; warn makes the apiserver also judge pod templates.
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}


@pytest.mark.parametrize("source", ["chart", "chart-replicas2", "deploy"])
def test_pod_meets_restricted_standard(control_plane, helm, crds_installed, source):
    """Real apply into a restricted namespace: the workload draws no warning and its Pod is admitted.

    There is no controller-manager here, so the Pod is created from the workload's
    template by the test; enforcement is what would refuse it.
    """
    namespace = unique_ns("jr-psa")
    create_namespace(control_plane, namespace, RESTRICTED)
    if source == "deploy":
        objs = [
            o
            for o in objects(control_plane.kubectl("kustomize", str(DEPLOY)).stdout)
            if o["kind"] in ("ServiceAccount", "Deployment")
        ]
    else:
        sets = ["replicas=2"] if source == "chart-replicas2" else []
        objs = [
            o
            for o in objects(render(helm, *sets, namespace=namespace, release="psa"))
            if o["kind"] in ("ServiceAccount", "Deployment")
        ]
    for o in objs:
        o["metadata"]["namespace"] = namespace
    result = control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    assert "Warning" not in result.stderr and "violate" not in result.stderr, result.stderr
    workload = _workload(objs)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "operator-pod",
            "namespace": namespace,
            "labels": workload["spec"]["template"]["metadata"]["labels"],
        },
        "spec": workload["spec"]["template"]["spec"],
    }
    result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr
    # The control: the same Pod as root is refused, so enforcement really is on.
    root = json.loads(json.dumps(pod))
    root["metadata"]["name"] = "root-pod"
    root["spec"]["securityContext"]["runAsUser"] = 0
    root["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    refused = control_plane.kubectl("apply", "-f", "-", input=json.dumps(root), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


# --- RBAC: the operator runs as the chart's ServiceAccount -------------------------------


def _token_kubeconfig(control_plane, token: str, path: Path) -> Path:
    """A kubeconfig with the fixture's server and CA and only the ServiceAccount's token."""
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}
                ],
                "current-context": "operator",
            }
        )
    )
    path.chmod(0o600)
    return path


class Process:
    """A child process whose output goes to a file, stopped in teardown."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]):
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            args, stdout=self._out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def _wait(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def operator_release(control_plane, helm, crds_installed):
    """The chart's ServiceAccount and RBAC, rendered with watchNamespaces, applied for real."""
    release_ns, watched, other = unique_ns("jr-op"), unique_ns("jr-work"), unique_ns("jr-other")
    for ns in (release_ns, watched, other):
        create_namespace(control_plane, ns)
    release = f"rbac{uuid.uuid4().hex[:4]}"
    objs = [
        o
        for o in objects(
            render(
                helm,
                f"watchNamespaces={{{watched}}}",
                f"rbac.secretNamespaces={{{watched}}}",
                namespace=release_ns,
                release=release,
            )
        )
        if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    (sa,) = by_kind(objs, "ServiceAccount")
    yield {
        "namespace": release_ns,
        "watched": watched,
        "other": other,
        "sa": sa["metadata"]["name"],
        "user": f"system:serviceaccount:{release_ns}:{sa['metadata']['name']}",
    }
    control_plane.kubectl(
        "delete", "--ignore-not-found", "--wait=false", "-f", "-", input=yaml.safe_dump_all(objs), check=False
    )
    control_plane.kubectl("delete", "namespace", release_ns, other, "--wait=false", check=False)


def _listening_port(emulator: Process) -> int:
    def port():
        m = re.search(r"listening on http://[^:]+:(\d+)", emulator.output())
        return int(m.group(1)) if m else None

    return _wait(port, 30, "the emulator to listen")


def test_operator_runs_a_job_with_chart_rbac(control_plane, operator_release, k8s_api_client, tmp_path):
    from kubernetes import client

    rel = operator_release
    token = control_plane.kubectl(
        "create", "token", rel["sa"], "-n", rel["namespace"], "--duration=1h"
    ).stdout.strip()
    kubeconfig = _token_kubeconfig(control_plane, token, tmp_path / "operator.kubeconfig")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("JULIARUN_", "KUBECONFIG"))}
    emulator = Process(
        [
            str(JULIARUN),
            "emulator",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--run-time",
            "2",
            "--create-delay",
            "0.2",
            "--worker-delay",
            "0.1",
        ],
        tmp_path / "emulator.log",
        base_env,
    )
    operator = None
    try:
        port = _listening_port(emulator)
        url = f"http://127.0.0.1:{port}"
        operator = Process(
            [str(JULIARUN), "operator", "--standalone", "--metrics-port", "0"],
            tmp_path / "operator.log",
            {
                **base_env,
                "KUBECONFIG": str(kubeconfig),
                "JULIARUN_URL": url,
                "JULIARUN_TOKEN": "test-token",
                "JULIARUN_NAMESPACE": "juliarun",
                "JULIARUN_SYNC_INTERVAL": "0.5",
                "WATCH_NAMESPACES": rel["watched"],
            },
        )
        # An object older than the acting process waits out the landing window of a submit an
        # earlier process may have sent (reconcile/decide.py): create it once this one acts.
        _wait(lambda: "acting:" in operator.output(), 60, "the operator to act")
        api = client.CustomObjectsApi(k8s_api_client)
        job = yaml.safe_load((REPO / "examples" / "julia-batch.yaml").read_text())
        job["metadata"] = {"name": "rbac-hello", "namespace": rel["watched"]}
        api.create_namespaced_custom_object("juliarun.dev", "v1alpha1", rel["watched"], "juliarunjobs", job)

        seen: list[str] = []
        last_status: list = []

        def phase_is(wanted: str):
            assert operator.proc.poll() is None, f"operator exited:\n{operator.output()}"
            obj = api.get_namespaced_custom_object(
                "juliarun.dev", "v1alpha1", rel["watched"], "juliarunjobs", "rbac-hello"
            )
            phase = (obj.get("status") or {}).get("phase")
            last_status[:] = [obj.get("status")]
            if phase and (not seen or seen[-1] != phase):
                seen.append(phase)
            return phase == wanted or (wanted == "Running" and phase == "Completed")

        try:
            _wait(lambda: phase_is("Running"), 60, "phase Running")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; phases seen {seen}, status {last_status}") from None
        _wait(lambda: phase_is("Completed"), 60, f"phase Completed (seen {seen})")
        assert "Running" in seen, f"phases seen: {seen}"
        assert requests.get(f"{url}/_emulator/healthz", timeout=5).json()["jobs"] == 1

        control_plane.kubectl("delete", "juliarunjob", "rbac-hello", "-n", rel["watched"], "--timeout=60s")
        gone = control_plane.kubectl("get", "juliarunjob", "rbac-hello", "-n", rel["watched"], check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
        assert requests.get(f"{url}/_emulator/healthz", timeout=5).json()["jobs"] == 0
        # Events were posted (RBAC for events), and nothing was forbidden on the way.
        events = control_plane.kubectl("get", "events", "-n", rel["watched"], "-o", "json").stdout
        reasons = {e["reason"] for e in json.loads(events)["items"]}
        assert {"Completed", "Deleted"} <= reasons, reasons
        log = operator.output()
        # (Not a bare "403": log timestamps have milliseconds.)
        assert not any(s in log for s in ("HTTP 403", "Forbidden", "Not enough permissions")), log
    finally:
        try:
            if operator:  # deleted while it runs: only the operator removes the finalizer
                Kube(control_plane).clean_up(rel["watched"])
        finally:
            if operator:
                operator.stop()
            emulator.stop()


def _can_i(control_plane, user: str, *args: str) -> bool:
    result = control_plane.kubectl("auth", "can-i", *args, "--as", user, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def test_rbac_allows_what_the_operator_needs(control_plane, operator_release):
    rel = operator_release
    user, watched = rel["user"], rel["watched"]
    for args in (
        ["patch", "juliarunjobs.juliarun.dev", "--subresource=status", "-n", watched],
        ["update", "juliarunjobs.juliarun.dev", "--subresource=finalizers", "-n", watched],
        ["watch", "juliarunjobs.juliarun.dev", "-n", watched],
        ["create", "events", "-n", watched],
        ["delete", "juliarunjobs.juliarun.dev", "-n", watched],  # ttlSecondsAfterFinished
        ["get", "secrets", "-n", watched],
        ["watch", "customresourcedefinitions.apiextensions.k8s.io"],
        ["list", "namespaces"],
    ):
        assert _can_i(control_plane, user, *args), f"{user} cannot {' '.join(args)}"


def test_rbac_refuses_what_the_operator_does_not_need(control_plane, operator_release):
    rel = operator_release
    user = rel["user"]
    for args in (
        ["get", "secrets", "-n", rel["other"]],
        ["list", "secrets", "-n", rel["watched"]],
        ["list", "juliarunjobs.juliarun.dev", "-n", rel["other"]],
        ["list", "juliarunjobs.juliarun.dev", "--all-namespaces"],
        ["create", "customresourcedefinitions.apiextensions.k8s.io"],
        ["patch", "customresourcedefinitions.apiextensions.k8s.io"],
        ["create", "roles.rbac.authorization.k8s.io", "-n", rel["watched"]],
        ["create", "rolebindings.rbac.authorization.k8s.io", "-n", rel["watched"]],
        ["create", "clusterroles.rbac.authorization.k8s.io"],
        ["create", "clusterrolebindings.rbac.authorization.k8s.io"],
        ["delete", "juliarunjobs.juliarun.dev", "-n", rel["other"]],
        ["create", "pods", "-n", rel["watched"]],
    ):
        assert not _can_i(control_plane, user, *args), f"{user} can {' '.join(args)}"


def test_rbac_clusterwide_defaults(control_plane, helm, crds_installed):
    """Without watchNamespaces the operator works everywhere, but reads Secrets nowhere
    (namespaces opt in: tests/integration/test_chart_security.py)."""
    release_ns = unique_ns("jr-cw")
    create_namespace(control_plane, release_ns)
    release = f"cw{uuid.uuid4().hex[:4]}"
    objs = [
        o
        for o in objects(render(helm, namespace=release_ns, release=release))
        if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    try:
        user = f"system:serviceaccount:{release_ns}:{release}-juliarun-operator"
        assert _can_i(control_plane, user, "list", "juliarunjobs.juliarun.dev", "--all-namespaces")
        assert not _can_i(control_plane, user, "get", "secrets", "-n", "kube-system")
        assert not _can_i(control_plane, user, "list", "secrets", "-n", "kube-system")
        assert not _can_i(
            control_plane, user, "update", "leases.coordination.k8s.io", "-n", release_ns
        )  # standalone
    finally:
        control_plane.kubectl(
            "delete", "--wait=false", "-f", "-", input=yaml.safe_dump_all(objs), check=False
        )
        control_plane.kubectl("delete", "namespace", release_ns, "--wait=false", check=False)


def _leaf_paths(values: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        # resources is one documented value; so are the free-form maps (labels, annotations).
        if isinstance(value, dict) and value and key != "resources":
            paths += _leaf_paths(value, path + ".")
        else:
            paths.append(path)
    return paths


def test_every_value_is_documented_and_in_the_schema():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = (REPO / "docs" / "install.md").read_text()
    schema = json.loads((CHART / "values.schema.json").read_text())
    for path in _leaf_paths(values):
        assert f"| `{path}` |" in docs, f"docs/install.md has no row for chart value {path}"
        node = schema
        for part in path.split("."):
            assert part in node.get("properties", {}), f"values.schema.json does not describe {path}"
            node = node["properties"][part]


def test_two_replicas_with_chart_rbac_share_the_lease(
    control_plane, helm, crds_installed, k8s_api_client, tmp_path
):
    """Two operators as the Deployment runs them: one holds the chart's Lease and acts, the other
    stands by and takes over when the first stops. RBAC from the chart, token of its ServiceAccount."""
    from kubernetes import client

    release_ns, watched = unique_ns("jr-peer"), unique_ns("jr-peerwork")
    for ns in (release_ns, watched):
        create_namespace(control_plane, ns)
    objs = [
        o
        for o in objects(
            render(helm, "replicas=2", f"watchNamespaces={{{watched}}}", namespace=release_ns, release="peer")
        )
        if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    (sa,) = by_kind(objs, "ServiceAccount")
    env = _env(
        _workload(objects(render(helm, "replicas=2", namespace=release_ns, release="peer")))["spec"][
            "template"
        ]["spec"]["containers"][0]
    )
    token = control_plane.kubectl(
        "create", "token", sa["metadata"]["name"], "-n", release_ns, "--duration=1h"
    ).stdout.strip()
    kubeconfig = _token_kubeconfig(control_plane, token, tmp_path / "operator.kubeconfig")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("JULIARUN_", "KUBECONFIG"))}
    emulator = Process(
        [
            str(JULIARUN),
            "emulator",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--run-time",
            "30",
            "--create-delay",
            "0.2",
            "--worker-delay",
            "0.1",
        ],
        tmp_path / "emulator.log",
        base_env,
    )
    operators: dict[int, Process] = {}
    api = client.CustomObjectsApi(k8s_api_client)
    try:
        url = f"http://127.0.0.1:{_listening_port(emulator)}"
        for replica in (0, 1):
            operators[replica] = Process(
                [str(JULIARUN), "operator", "--metrics-port", "0"],
                tmp_path / f"operator-{replica}.log",
                {
                    **base_env,
                    "KUBECONFIG": str(kubeconfig),
                    "JULIARUN_URL": url,
                    "JULIARUN_TOKEN": "t",
                    "JULIARUN_NAMESPACE": "juliarun",
                    "JULIARUN_SYNC_INTERVAL": "0.5",
                    "WATCH_NAMESPACES": watched,
                    "LEASE_NAME": env["LEASE_NAME"],
                    "LEASE_NAMESPACE": release_ns,
                    "LEASE_DURATION": "5",
                    "POD_NAME": f"peer-{replica}",
                },
            )
            if replica == 0:
                _wait(
                    lambda: "acting: this replica" in operators[0].output(), 60, "replica 0 to take the Lease"
                )

        def holder() -> str:
            lease = json.loads(
                control_plane.kubectl(
                    "get", "lease", env["LEASE_NAME"], "-n", release_ns, "-o", "json"
                ).stdout
            )
            return lease["spec"].get("holderIdentity") or ""

        assert holder().startswith("peer-0_")

        def submit_and_run(name: str) -> dict:
            job = yaml.safe_load((REPO / "examples" / "julia-batch.yaml").read_text())
            job["metadata"] = {"name": name, "namespace": watched}
            api.create_namespaced_custom_object("juliarun.dev", "v1alpha1", watched, "juliarunjobs", job)
            return _wait(
                lambda: (
                    (
                        api.get_namespaced_custom_object(
                            "juliarun.dev", "v1alpha1", watched, "juliarunjobs", name
                        ).get("status")
                        or {}
                    ).get("phase")
                    in ("Running", "Completed")
                ),
                60,
                f"{name} to run",
            )

        submit_and_run("peer-one")
        assert "acting: this replica" not in operators[1].output()
        # The acting replica stops and releases the Lease: the standby takes over at once.
        operators[0].stop()
        _wait(lambda: "acting: this replica" in operators[1].output(), 30, "replica 1 to take over")
        assert holder().startswith("peer-1_")
        submit_and_run("peer-two")
        for name in ("peer-one", "peer-two"):
            control_plane.kubectl("delete", "juliarunjob", name, "-n", watched, "--timeout=60s")
        assert requests.get(f"{url}/_emulator/healthz", timeout=5).json()["jobs"] == 0
        for op in operators.values():
            assert "Forbidden" not in op.output() and "forbidden" not in op.output(), op.output()
    finally:
        try:
            if operators:  # deleted while they run: only the operator removes the finalizer
                Kube(control_plane).clean_up(watched)
        finally:
            for op in operators.values():
                op.stop()
            emulator.stop()
        control_plane.kubectl(
            "delete",
            "--wait=false",
            "-f",
            "-",
            input=yaml.safe_dump_all([o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]),
            check=False,
        )
        control_plane.kubectl("delete", "namespace", release_ns, "--wait=false", check=False)
