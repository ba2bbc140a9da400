"""The Helm chart and the plain manifests in deploy/, against the real API server.

Renders the packaged chart (`helm package`, as released) with the helm built by
hack/controlplane, checks the values schema, applies
everything with server-side dry-run, checks the restricted Pod Security Standard on
a real apply, and runs the operator as the chart's ServiceAccount to show its RBAC
is enough (and no more than needed).
"""

from __future__ import annotations

import copy
import json
import signal
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from argocd_lua import argocd_health, offered, suspend_after
from chart_helpers import (
    CHART,
    DEPLOY,
    MAP_API,
    REPO,
    apply_rendered,
    by_kind,
    can_i,
    chart_operator,
    create_namespace,
    deployment_of,
    env_of,
    juliarun_server,
    objects,
    packaged,
    remove,
    render,
    run_helm,
    service_account_user,
    unique_ns,
)
from harness import Kube, Process, wait_for

HOOK = "helm.sh/hook"


def is_hook(obj: dict) -> bool:
    return HOOK in (obj["metadata"].get("annotations") or {})


pytestmark = pytest.mark.integration
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


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


# The chart's copies of gitops/argocd's Lua (Helm reads files inside the chart only).
ARGOCD_LUA_COPIES = {
    "files/argocd-health.lua": "health.lua",
    **{f"files/argocd-actions/{n}.lua": f"actions/{n}.lua" for n in ("discovery", "suspend", "resume")},
}


@pytest.mark.parametrize("copy", ARGOCD_LUA_COPIES)
def test_argocd_lua_copies_match(copy):
    original = ARGOCD_LUA_COPIES[copy]
    assert (CHART / copy).read_bytes() == (REPO / "gitops" / "argocd" / original).read_bytes(), (
        f"cp gitops/argocd/{original} charts/juliarun-operator/{copy}"
    )


def test_argocd_lua_copies_are_all_the_chart_has():
    shipped = {str(p.relative_to(CHART)) for p in (CHART / "files").rglob("*.lua")}
    assert shipped == set(ARGOCD_LUA_COPIES)


def _normalized(obj: dict) -> dict:
    """An object without what Helm alone adds (its labels) or kustomize alone sets (namespace, image tag)."""
    obj = json.loads(json.dumps(obj))
    for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
        for key in HELM_ONLY_LABELS:
            meta.get("labels", {}).pop(key, None)
        meta.pop("namespace", None)
    return obj


def test_deploy_manifests_match_chart_defaults(control_plane, helm):
    """deploy/ is the chart's default install (release juliarun-operator) as plain files,
    as rendered for any API server: the finalizer policy, which the chart renders only where
    it is served, is deploy/finalizer-policy.yaml, outside the kustomization."""
    # `helm test`'s Pod is Helm's alone: kustomize has no test hooks.
    chart = [o for o in objects(render(helm, release="juliarun-operator")) if not is_hook(o)]
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
        "argocdActions.enabled=true",
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


def test_render_defaults_is_one_replica_holding_a_lease(helm):
    """One replica that holds the Lease, replaced with a rolling update (the new pod waits
    for the old one's Lease); without the Lease, standalone and Recreate."""
    objs = objects(render(helm))
    workload = deployment_of(objs)
    assert workload["kind"] == "Deployment" and workload["spec"]["replicas"] == 1
    assert "strategy" not in workload["spec"]  # RollingUpdate
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator"]
    assert container["image"] == "juliarun-operator:0.2.0.dev0"
    assert env_of(container)["LEASE_NAME"] == "jro-juliarun-operator"
    assert "WATCH_NAMESPACES" not in env_of(container)
    (role,) = by_kind(objs, "Role")
    assert role["rules"][1]["resourceNames"] == ["jro-juliarun-operator"]
    assert len(by_kind(objs, "ClusterRoleBinding")) == 2
    alone = objects(render(helm, "leaderElection.enabled=false"))
    workload = deployment_of(alone)
    assert workload["spec"]["strategy"] == {"type": "Recreate"}
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator", "--standalone"]
    assert "LEASE_NAME" not in env_of(container)
    assert not by_kind(alone, "Role") and not by_kind(alone, "RoleBinding")


def test_render_replicas_share_a_lease(helm):
    objs = objects(render(helm, "replicas=2"))
    workload = deployment_of(objs)
    assert workload["spec"]["replicas"] == 2 and "strategy" not in workload["spec"]
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator"]
    env = env_of(container)
    assert env["LEASE_NAME"] == "jro-juliarun-operator"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    (role,) = by_kind(objs, "Role")
    assert role["rules"][1]["resourceNames"] == ["jro-juliarun-operator"]


def test_render_watch_namespaces_binds_per_namespace(helm):
    objs = objects(
        render(helm, "watchNamespaces={team-a,team-b}", "replicas=2", "metrics.serviceMonitor.enabled=true")
    )
    env = env_of(deployment_of(objs)["spec"]["template"]["spec"]["containers"][0])
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
    """On by default, rendered only where the API server serves MutatingAdmissionPolicy,
    bound to the watched namespaces alone, accepted by a 1.36 API server;
    deploy/finalizer-policy.yaml is the same policy."""
    assert not by_kind(objects(render(helm)), "MutatingAdmissionPolicy")  # not served
    off = "finalizerPolicy.enabled=false"
    assert not by_kind(objects(render(helm, off, api_versions=(MAP_API,))), "MutatingAdmissionPolicy")
    on = "finalizerPolicy.enabled=true"
    plain = objects((DEPLOY / "finalizer-policy.yaml").read_text())
    chart = objects(render(helm, release="juliarun-operator", api_versions=(MAP_API,)))
    chart = [_normalized(o) for o in chart if o["kind"].startswith("MutatingAdmissionPolicy")]
    assert [_normalized(o) for o in plain] == chart
    objs = objects(render(helm, on, "watchNamespaces={team-a,team-b}", api_versions=(MAP_API,)))
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
    pod = deployment_of(objs)["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["JULIARUN_URL"] == "https://jr.example" and env["JULIARUN_NAMESPACE"] == "jobs"
    assert env["JULIARUN_TOKEN_FILE"] == "/var/run/secrets/juliarun/token/tok"
    assert env["JULIARUN_CA_FILE"] == "/var/run/secrets/juliarun/ca/ca.crt"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["juliarun-token"]["secret"]["secretName"] == "jr-token"
    assert volumes["juliarun-ca"]["secret"]["secretName"] == "jr-ca"


def argocd_scripts(helm: Path, *sets: str) -> dict[str, str]:
    """The Lua in the chart's Argo CD ConfigMaps, by name: health, discovery and each action."""
    data = {}
    for cm in by_kind(objects(render(helm, *sets)), "ConfigMap"):
        data.update(cm["data"])
    scripts = {}
    if health := data.get("resource.customizations.health.juliarun.dev_JuliaRunJob"):
        scripts["health"] = health
    if actions := data.get("resource.customizations.actions.juliarun.dev_JuliaRunJob"):
        actions = yaml.safe_load(actions)
        scripts["discovery"] = actions["discovery.lua"]
        scripts.update({d["name"]: d["action.lua"] for d in actions["definitions"]})
    return scripts


def test_render_argocd_health_and_actions_that_run(helm, lua, tmp_path):
    """Off by default; on, the ConfigMaps carry the keys argocd-cm takes, and the Lua in them
    runs as Argo CD runs it: suspend offered on a running batch job and setting spec.suspend,
    resume offered once it is suspended."""
    assert argocd_scripts(helm) == {}
    assert set(argocd_scripts(helm, "argocdHealthCheck.enabled=true")) == {"health"}
    scripts = argocd_scripts(helm, "argocdHealthCheck.enabled=true", "argocdActions.enabled=true")
    assert set(scripts) == {"health", "discovery", "suspend", "resume"}
    paths = {}
    for name, text in scripts.items():
        paths[name] = tmp_path / f"{name}.lua"
        paths[name].write_text(text)
    running = {
        "apiVersion": "juliarun.dev/v1alpha1",
        "kind": "JuliaRunJob",
        "metadata": {"name": "train", "namespace": "team-a", "generation": 1},
        "spec": {"type": "JuliaBatch", "runVolume": "jobs", "startScript": "train.jl"},
        "status": {"phase": "Running", "observedGeneration": 1, "conditions": []},
    }
    assert offered(lua, running, tmp_path, paths["discovery"]) == {"suspend"}
    assert suspend_after(lua, running, tmp_path, paths["suspend"]) == "true|train.jl"
    suspended = copy.deepcopy(running)
    suspended["spec"]["suspend"] = True
    suspended["status"]["phase"] = "Suspended"
    assert offered(lua, suspended, tmp_path, paths["discovery"]) == {"resume"}
    assert suspend_after(lua, suspended, tmp_path, paths["resume"]) == "false|train.jl"
    assert argocd_health(lua, suspended, tmp_path, paths["health"])[0] == "Suspended"


BAD_VALUES = {
    "negative sync interval": (["syncInterval=-1"], "/syncInterval"),
    "unknown log format": (["logFormat=xml"], "/logFormat"),
    "unknown top-level key": (["syncIntreval=5"], "syncIntreval"),
    "zero replicas": (["replicas=0"], "/replicas"),
    "bad pull policy": (["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    "namespace not a DNS label": (["watchNamespaces={Team_A}"], "/watchNamespaces/0"),
    "port out of range": (["metrics.port=70000"], "/metrics/port"),
    "memory not a quantity": (["resources.limits.memory=lots"], "/resources/limits/memory"),
    "unknown resources key": (["resources.limit.memory=1Gi"], "limit"),
    "policy port out of range": (["networkPolicy.apiServer.ports={0}"], "/networkPolicy/apiServer/ports/0"),
    "policy peer of no kind": (["networkPolicy.dns.to[0].cidr=10.0.0.0/8"], "/networkPolicy/dns/to/0"),
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
    rendered = render(helm, *sets, namespace=namespace, release=f"dry{uuid.uuid4().hex[:4]}")
    # What `helm install` applies: not `helm test`'s Pod (run by `helm test`, once the
    # ServiceAccount it runs as exists; test_pod_meets_restricted_standard admits it).
    applied = [o for o in objects(rendered) if not is_hook(o)]
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(applied))
    assert "Warning" not in result.stderr, result.stderr
    assert len(result.stdout.strip().splitlines()) == len(applied)


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
    workload = deployment_of(objs)
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
    if source != "deploy":
        # `helm test`'s Pod too (it runs as the operator's ServiceAccount, applied above).
        (test_pod,) = [o for o in objects(render(helm, namespace=namespace, release="psa")) if is_hook(o)]
        test_pod["metadata"]["namespace"] = namespace
        result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(test_pod), check=False)
        assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr
    # The control: the same Pod as root is refused, so enforcement really is on.
    root = json.loads(json.dumps(pod))
    root["metadata"]["name"] = "root-pod"
    root["spec"]["securityContext"]["runAsUser"] = 0
    root["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    refused = control_plane.kubectl("apply", "-f", "-", input=json.dumps(root), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


# --- the NetworkPolicy, ephemeral storage, `helm test` ----------------------------------------


def ports_of(rule: dict) -> set[tuple[int, str]]:
    return {(p["port"], p["protocol"]) for p in rule.get("ports", [])}


def test_network_policy_by_default_admitted_and_selecting_the_operator_alone(control_plane, helm):
    """Applied for real: the API server admits it as the chart renders it, and it selects the
    operator's pods, not `helm test`'s, with ingress to the metrics port only and egress to
    the API server, DNS and the default JuliaRun URL's port only."""
    namespace = unique_ns("jr-np")
    create_namespace(control_plane, namespace)
    objs = objects(render(helm, namespace=namespace, release="np"))
    (policy,) = by_kind(objs, "NetworkPolicy")
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(policy))
    stored = json.loads(
        control_plane.kubectl(
            "get", "networkpolicy", "np-juliarun-operator", "-n", namespace, "-o", "json"
        ).stdout
    )["spec"]
    template = deployment_of(objs)["spec"]["template"]
    selector = stored["podSelector"]["matchLabels"].items()
    assert selector <= template["metadata"]["labels"].items()
    (test_pod,) = [o for o in objs if is_hook(o)]
    assert not selector <= test_pod["metadata"]["labels"].items()
    (service,) = by_kind(objs, "Service")
    assert not service["spec"]["selector"].items() <= test_pod["metadata"]["labels"].items()
    assert stored["policyTypes"] == ["Ingress", "Egress"]
    (container,) = template["spec"]["containers"]
    (metrics_port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
    assert metrics_port == 9180
    assert [ports_of(r) for r in stored["ingress"]] == [{(9180, "TCP")}]
    assert [ports_of(r) for r in stored["egress"]] == [
        {(443, "TCP"), (6443, "TCP")},
        {(53, "UDP"), (53, "TCP")},
        {(80, "TCP")},
    ]
    # No peer named by default: any source or destination, on those ports alone.
    assert not any("from" in r for r in stored["ingress"]) and not any("to" in r for r in stored["egress"])
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def test_network_policy_values_widen_and_narrow_it(control_plane, helm):
    namespace = unique_ns("jr-np")
    create_namespace(control_plane, namespace)
    sets = [
        "juliarun.url=https://jr.example.com:8443",
        "metrics.port=9999",
        "networkPolicy.metrics.from[0].namespaceSelector.matchLabels.team=monitoring",
        "networkPolicy.apiServer.to[0].ipBlock.cidr=192.0.2.10/32",
        "networkPolicy.apiServer.ports={6443,16443}",
        r"networkPolicy.dns.to[0].namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=kube-system",
        "networkPolicy.extraEgress[0].ports[0].port=3128",
    ]
    (policy,) = by_kind(objects(render(helm, *sets, namespace=namespace, release="np")), "NetworkPolicy")
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(policy))
    assert "created (server dry run)" in result.stdout, result.stdout + result.stderr
    spec = policy["spec"]
    assert [ports_of(r) for r in spec["ingress"]] == [{(9999, "TCP")}]
    assert spec["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]
    api, dns, juliarun, proxy = spec["egress"]
    assert ports_of(api) == {(6443, "TCP"), (16443, "TCP")}
    assert api["to"] == [{"ipBlock": {"cidr": "192.0.2.10/32"}}]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert ports_of(juliarun) == {(8443, "TCP")}  # the URL's port
    assert proxy == {"ports": [{"port": 3128}]}
    https = by_kind(objects(render(helm, "juliarun.url=https://jr.example.com")), "NetworkPolicy")[0]
    assert ports_of(https["spec"]["egress"][2]) == {(443, "TCP")}
    listed = by_kind(objects(render(helm, "networkPolicy.juliarun.ports={8080}")), "NetworkPolicy")[0]
    assert ports_of(listed["spec"]["egress"][2]) == {(8080, "TCP")}
    assert not by_kind(objects(render(helm, "networkPolicy.enabled=false")), "NetworkPolicy")
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.mark.parametrize("source", ["chart", "deploy"])
def test_operator_requests_and_limits_ephemeral_storage(control_plane, helm, source):
    if source == "deploy":
        objs = objects(control_plane.kubectl("kustomize", str(DEPLOY)).stdout)
    else:
        objs = objects(render(helm))
    pod = deployment_of(objs)["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["ephemeral-storage"] == "64Mi"
    assert resources["limits"]["ephemeral-storage"] == "256Mi"
    # /tmp (an emptyDir, counted as ephemeral storage) fits within the limit.
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert tmp["emptyDir"]["sizeLimit"] == "64Mi"


def test_helm_test_pod_checks_the_operator_and_juliarun_with_its_credentials(helm):
    objs = objects(
        render(
            helm,
            "juliarun.url=https://jr.example.com",
            "juliarun.namespace=jobs",
            "juliarun.tokenSecret.name=jr-token",
            "juliarun.ca.configMapName=jr-ca",
            "metrics.service.port=9300",
        )
    )
    (pod,) = [o for o in objs if is_hook(o)]
    assert pod["metadata"]["annotations"][HOOK] == "test"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == deployment_of(objs)["spec"]["template"]["spec"]["serviceAccountName"]
    assert "initContainers" not in spec  # `helm test --logs` shows one container's log
    (answers,) = spec["containers"]
    script = answers["command"][2]
    assert "http://jro-juliarun-operator-metrics.juliarun-system.svc:9300/readyz" in script
    assert 'os.execvp("juliarun", ["juliarun", "jobs"])' in script
    operator = deployment_of(objs)["spec"]["template"]["spec"]["containers"][0]
    wanted = ("JULIARUN_URL", "JULIARUN_NAMESPACE", "JULIARUN_TOKEN_FILE", "JULIARUN_CA_FILE")
    assert {k: env_of(answers)[k] for k in wanted} == {k: env_of(operator)[k] for k in wanted}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["juliarun-token"]["secret"]["secretName"] == "jr-token"
    assert volumes["juliarun-ca"]["configMap"]["name"] == "jr-ca"
    # Without a Service there is nothing to ask; off when asked.
    assert not [o for o in objects(render(helm, "metrics.service.enabled=false")) if is_hook(o)]
    assert not [o for o in objects(render(helm, "tests.enabled=false")) if is_hook(o)]


# --- RBAC: the operator runs as the chart's ServiceAccount -------------------------------


@pytest.fixture(scope="module")
def operator_release(control_plane, helm, crds_installed):
    """The chart's ServiceAccount and RBAC, rendered with watchNamespaces, applied for real."""
    release_ns, watched, other = unique_ns("jr-op"), unique_ns("jr-work"), unique_ns("jr-other")
    for ns in (release_ns, watched, other):
        create_namespace(control_plane, ns)
    objs = apply_rendered(
        control_plane,
        helm,
        f"watchNamespaces={{{watched}}}",
        f"rbac.secretNamespaces={{{watched}}}",
        namespace=release_ns,
        release=f"rbac{uuid.uuid4().hex[:4]}",
    )
    (sa,) = by_kind(objs, "ServiceAccount")
    yield {
        "namespace": release_ns,
        "watched": watched,
        "other": other,
        "sa": sa["metadata"]["name"],
        "user": service_account_user(objs, release_ns),
    }
    remove(control_plane, objs, release_ns, other)


def test_operator_runs_a_job_with_chart_rbac(control_plane, operator_release, k8s_api_client, tmp_path):
    from kubernetes import client

    rel = operator_release
    token = control_plane.kubectl(
        "create", "token", rel["sa"], "-n", rel["namespace"], "--duration=1h"
    ).stdout.strip()
    kubeconfig = control_plane.token_kubeconfig(token)
    emulator, url = juliarun_server(tmp_path, run_time=2)
    operator = None
    try:
        operator = chart_operator(
            tmp_path / "operator.log",
            kubeconfig,
            url,
            "--standalone",
            JULIARUN_TOKEN="test-token",
            WATCH_NAMESPACES=rel["watched"],
        )
        # An object older than the acting process waits out the landing window of a submit an
        # earlier process may have sent (reconcile/decide.py): create it once this one acts.
        wait_for("the operator to act", lambda: "acting:" in operator.text(), 60)
        api = client.CustomObjectsApi(k8s_api_client)
        job = yaml.safe_load((REPO / "examples" / "julia-batch.yaml").read_text())
        job["metadata"] = {"name": "rbac-hello", "namespace": rel["watched"]}
        api.create_namespaced_custom_object("juliarun.dev", "v1alpha1", rel["watched"], "juliarunjobs", job)

        seen: list[str] = []
        last_status: list = []

        def phase_is(wanted: str):
            assert operator.proc.poll() is None, f"operator exited:\n{operator.text()}"
            obj = api.get_namespaced_custom_object(
                "juliarun.dev", "v1alpha1", rel["watched"], "juliarunjobs", "rbac-hello"
            )
            phase = (obj.get("status") or {}).get("phase")
            last_status[:] = [obj.get("status")]
            if phase and (not seen or seen[-1] != phase):
                seen.append(phase)
            return phase == wanted or (wanted == "Running" and phase == "Completed")

        try:
            wait_for("phase Running", lambda: phase_is("Running"), 60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; phases seen {seen}, status {last_status}") from None
        wait_for(f"phase Completed (seen {seen})", lambda: phase_is("Completed"), 60)
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
        log = operator.text()
        # (Not a bare "403": log timestamps have milliseconds.)
        assert not any(s in log for s in ("HTTP 403", "Forbidden", "Not enough permissions")), log
    finally:
        try:
            if operator:  # deleted while it runs: only the operator removes the finalizer
                Kube(control_plane).clean_up(rel["watched"])
        finally:
            if operator:
                operator.kill(signal.SIGTERM)
            emulator.kill(signal.SIGTERM)


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
        # a job's Service and EndpointSlice; its connection Secret where the namespace opted in
        ["create", "services", "-n", watched],
        ["patch", "endpointslices.discovery.k8s.io", "-n", watched],
        ["delete", "services", "-n", watched],
        ["create", "secrets", "-n", watched],
        ["watch", "customresourcedefinitions.apiextensions.k8s.io"],
        ["list", "namespaces"],
    ):
        assert can_i(control_plane, user, *args), f"{user} cannot {' '.join(args)}"


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
        ["create", "services", "-n", rel["other"]],
        ["create", "endpointslices.discovery.k8s.io", "-n", rel["other"]],
        ["list", "services", "-n", rel["watched"]],
        ["create", "secrets", "-n", rel["other"]],
    ):
        assert not can_i(control_plane, user, *args), f"{user} can {' '.join(args)}"


def test_rbac_clusterwide_defaults(control_plane, helm, crds_installed):
    """Without watchNamespaces the operator works everywhere, but reads Secrets nowhere
    (namespaces opt in: tests/integration/test_chart_security.py)."""
    release_ns = unique_ns("jr-cw")
    create_namespace(control_plane, release_ns)
    release = f"cw{uuid.uuid4().hex[:4]}"
    objs = apply_rendered(
        control_plane,
        helm,
        namespace=release_ns,
        release=release,
        kinds=("ServiceAccount", "ClusterRole", "ClusterRoleBinding"),
    )
    try:
        user = f"system:serviceaccount:{release_ns}:{release}-juliarun-operator"
        assert can_i(control_plane, user, "list", "juliarunjobs.juliarun.dev", "--all-namespaces")
        assert not can_i(control_plane, user, "get", "secrets", "-n", "kube-system")
        assert not can_i(control_plane, user, "list", "secrets", "-n", "kube-system")
        assert not can_i(
            control_plane, user, "update", "leases.coordination.k8s.io", "-n", release_ns
        )  # standalone
    finally:
        remove(control_plane, objs, release_ns)


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
    objs = apply_rendered(
        control_plane,
        helm,
        "replicas=2",
        f"watchNamespaces={{{watched}}}",
        namespace=release_ns,
        release="peer",
    )
    (sa,) = by_kind(objs, "ServiceAccount")
    env = env_of(
        deployment_of(objects(render(helm, "replicas=2", namespace=release_ns, release="peer")))["spec"][
            "template"
        ]["spec"]["containers"][0]
    )
    token = control_plane.kubectl(
        "create", "token", sa["metadata"]["name"], "-n", release_ns, "--duration=1h"
    ).stdout.strip()
    kubeconfig = control_plane.token_kubeconfig(token)
    emulator, url = juliarun_server(tmp_path, run_time=30)
    operators: dict[int, Process] = {}
    api = client.CustomObjectsApi(k8s_api_client)
    try:
        for replica in (0, 1):
            operators[replica] = chart_operator(
                tmp_path / f"operator-{replica}.log",
                kubeconfig,
                url,
                JULIARUN_TOKEN="t",
                WATCH_NAMESPACES=watched,
                LEASE_NAME=env["LEASE_NAME"],
                LEASE_NAMESPACE=release_ns,
                LEASE_DURATION="5",
                POD_NAME=f"peer-{replica}",
            )
            if replica == 0:
                wait_for(
                    "replica 0 to take the Lease", lambda: "acting: this replica" in operators[0].text(), 60
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
            return wait_for(
                f"{name} to run",
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
            )

        submit_and_run("peer-one")
        assert "acting: this replica" not in operators[1].text()
        # The acting replica stops and releases the Lease: the standby takes over at once.
        operators[0].kill(signal.SIGTERM)
        wait_for("replica 1 to take over", lambda: "acting: this replica" in operators[1].text(), 30)
        assert holder().startswith("peer-1_")
        submit_and_run("peer-two")
        for name in ("peer-one", "peer-two"):
            control_plane.kubectl("delete", "juliarunjob", name, "-n", watched, "--timeout=60s")
        assert requests.get(f"{url}/_emulator/healthz", timeout=5).json()["jobs"] == 0
        for op in operators.values():
            assert "Forbidden" not in op.text() and "forbidden" not in op.text(), op.text()
    finally:
        try:
            if operators:  # deleted while they run: only the operator removes the finalizer
                Kube(control_plane).clean_up(watched)
        finally:
            for op in operators.values():
                op.kill(signal.SIGTERM)
            emulator.kill(signal.SIGTERM)
        remove(
            control_plane, [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")], release_ns
        )
