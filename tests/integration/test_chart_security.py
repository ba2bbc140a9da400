"""The chart's security settings on the real API server: no cluster-wide Secret read in any
install mode, namespaces that opt in, roles for people, the JuliaRun token's audience and
the tenancy values the operator reads."""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest
import yaml

from juliarun_operator import tenancy

from chart_helpers import (
    CHART,
    DEPLOY,
    REPO,
    apply_rendered,
    by_kind,
    can_i,
    create_namespace,
    deployment_of,
    objects,
    remove,
    render,
    run_helm,
    service_account_user,
    unique_ns,
)
from support.docs import run_block

pytestmark = pytest.mark.integration

MODES = {
    "all-namespaces": [],
    "watched-namespaces": ["watchNamespaces={WATCHED}"],
    "lease-replicas": ["replicas=2"],
    "watched-with-lease": ["replicas=2", "watchNamespaces={WATCHED}"],
}


def applied_rbac(control_plane, helm, sets: list[str], *namespaces: str):
    """Render the chart with `sets`, apply its RBAC objects; (user, objects) for cleanup."""
    release_ns = unique_ns("jr-sec")
    for ns in (release_ns, *namespaces):
        create_namespace(control_plane, ns)
    objs = apply_rendered(
        control_plane, helm, *sets, namespace=release_ns, release=f"sec{uuid.uuid4().hex[:4]}"
    )
    return service_account_user(objs, release_ns), objs, release_ns


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_no_install_mode_reads_kube_system_secrets(control_plane, helm, crds_installed, mode):
    watched, opted, other = unique_ns("jr-w"), unique_ns("jr-in"), unique_ns("jr-out")
    sets = [s.replace("WATCHED", f"{watched},{opted}") for s in mode] + [f"rbac.secretNamespaces={{{opted}}}"]
    user, objs, release_ns = applied_rbac(control_plane, helm, sets, watched, opted, other)
    try:
        assert not can_i(control_plane, user, "get", "secrets", "-n", "kube-system")
        assert not can_i(control_plane, user, "get", "secrets", "-n", release_ns)
        assert not can_i(control_plane, user, "get", "secrets", "-n", other)
        assert not can_i(control_plane, user, "get", "secrets", "-n", watched)  # watched, not opted in
        assert not can_i(control_plane, user, "get", "secrets", "--all-namespaces")
        assert can_i(control_plane, user, "get", "secrets", "-n", opted)  # opted in
        assert not can_i(control_plane, user, "list", "secrets", "-n", opted)
        assert not can_i(control_plane, user, "watch", "secrets", "-n", opted)
        # The operator's work is unaffected.
        assert can_i(
            control_plane, user, "patch", "juliarunjobs.juliarun.dev", "--subresource=status", "-n", watched
        )
    finally:
        remove(control_plane, objs, release_ns, watched, opted, other)


def test_a_namespace_opts_in_with_the_documented_command(control_plane, helm):
    """The default install (release juliarun-operator in juliarun-system, as deploy/ has it)
    and the command docs/install.md gives a namespace admin, run as written."""
    release_ns, team = "juliarun-system", "team-a"
    for ns in (release_ns, team):
        create_namespace(control_plane, ns)
    objs = apply_rendered(control_plane, helm, release="juliarun-operator", namespace=release_ns)
    user = "system:serviceaccount:juliarun-system:juliarun-operator"
    try:
        assert not can_i(control_plane, user, "get", "secrets", "-n", team)
        run_block("docs/install.md", "secrets-opt-in", env=_kubectl_on_path(control_plane), timeout=60)
        assert can_i(control_plane, user, "get", "secrets", "-n", team)
        assert not can_i(control_plane, user, "get", "secrets", "-n", "kube-system")
        # The owner marks a Secret for the operator, as documented.
        control_plane.kubectl(
            "create", "secret", "generic", "nb-password", "-n", team, "--from-literal=password=change-me"
        )
        run_block("docs/install.md", "secrets-mark", env=_kubectl_on_path(control_plane), timeout=60)
        secret = control_plane.kubectl("get", "secret", "nb-password", "-n", team, "-o", "json").stdout
        assert tenancy.secret_is_marked(json.loads(secret)["metadata"]["labels"])
    finally:
        control_plane.kubectl("delete", "secret", "nb-password", "-n", team, "--ignore-not-found")
        control_plane.kubectl(
            "delete", "rolebinding", "juliarun-operator-secrets", "-n", team, "--ignore-not-found"
        )
        remove(control_plane, [o for o in objs if o["kind"] != "ServiceAccount"])


def _kubectl_on_path(control_plane) -> dict[str, str]:
    # The documented command says `kubectl`: the test's kubectl comes first on PATH.
    return {
        **control_plane.env,
        "PATH": f"{control_plane.kubectl_path.parent}:{control_plane.env.get('PATH', '')}",
    }


def test_only_someone_who_may_read_the_secrets_can_opt_a_namespace_in(control_plane, helm):
    """RBAC's escalation check: binding <fullname>-secrets needs get on Secrets there."""
    team = unique_ns("jr-team")
    user, objs, release_ns = applied_rbac(control_plane, helm, [], team)
    (secrets_role,) = [o for o in by_kind(objs, "ClusterRole") if o["metadata"]["name"].endswith("-secrets")]
    sa = user.rsplit(":", 1)[1]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "binder", "namespace": team},
        "rules": [
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]}
        ],
    }
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": who, "namespace": team},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "binder"},
            "subjects": [{"kind": "User", "name": who, "apiGroup": "rbac.authorization.k8s.io"}],
        }
        for who in ("no-secrets", "team-admin")
    ]
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "team-admin-reads", "namespace": team},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": secrets_role["metadata"]["name"],
        },
        "subjects": [{"kind": "User", "name": "team-admin", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, *bindings, reader]))
    opt_in = [
        "create",
        "rolebinding",
        "operator-secrets",
        "-n",
        team,
        f"--clusterrole={secrets_role['metadata']['name']}",
        f"--serviceaccount={release_ns}:{sa}",
    ]
    try:
        refused = control_plane.kubectl(*opt_in, "--as=no-secrets", check=False)
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()
        assert not can_i(control_plane, user, "get", "secrets", "-n", team)
        control_plane.kubectl(*opt_in, "--as=team-admin")
        assert can_i(control_plane, user, "get", "secrets", "-n", team)
    finally:
        remove(control_plane, objs, release_ns, team)


# --- roles for people ------------------------------------------------------------------------


def test_people_roles_aggregate_into_edit_admin_and_view(control_plane, helm):
    """The chart's -edit/-view roles carry the labels the cluster's own edit, admin and view
    roles aggregate (their aggregationRule, read from the API server)."""
    objs = objects(render(helm, release="agg"))
    roles = {o["metadata"]["name"]: o for o in by_kind(objs, "ClusterRole")}
    edit, view = roles["agg-juliarun-operator-edit"], roles["agg-juliarun-operator-view"]

    def selected_by(builtin: str, role: dict) -> bool:
        live = json.loads(control_plane.kubectl("get", "clusterrole", builtin, "-o", "json").stdout)
        labels = role["metadata"]["labels"]
        return any(
            all(labels.get(k) == v for k, v in sel["matchLabels"].items())
            for sel in live["aggregationRule"]["clusterRoleSelectors"]
        )

    assert selected_by("edit", edit) and selected_by("admin", edit) and not selected_by("view", edit)
    assert selected_by("view", view) and not selected_by("edit", view)
    assert not any(
        o["metadata"]["name"].endswith(("-edit", "-view"))
        for o in by_kind(objects(render(helm, "rbac.aggregateToDefaultRoles=false")), "ClusterRole")
    )


def test_people_roles_grant_what_they_say(control_plane, helm, crds_installed):
    """Bound directly (this API server has no controller-manager to aggregate them)."""
    team = unique_ns("jr-people")
    user, objs, release_ns = applied_rbac(control_plane, helm, [], team)
    fullname = user.rsplit(":", 1)[1]
    people = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{who}-binding", "namespace": team},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{fullname}-{who}",
            },
            "subjects": [{"kind": "User", "name": f"{who}-person", "apiGroup": "rbac.authorization.k8s.io"}],
        }
        for who in ("edit", "view")
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(people))
    jrj = "juliarunjobs.juliarun.dev"
    try:
        editor, viewer = "edit-person", "view-person"
        for verb in ("create", "update", "patch", "delete", "list", "watch"):
            assert can_i(control_plane, editor, verb, jrj, "-n", team), verb
        assert can_i(control_plane, editor, "patch", jrj, "--subresource=scale", "-n", team)
        assert not can_i(control_plane, editor, "patch", jrj, "--subresource=status", "-n", team)
        assert not can_i(control_plane, editor, "get", "secrets", "-n", team)
        assert can_i(control_plane, viewer, "list", jrj, "-n", team)
        assert can_i(control_plane, viewer, "get", jrj, "--subresource=status", "-n", team)
        for verb in ("create", "patch", "delete"):
            assert not can_i(control_plane, viewer, verb, jrj, "-n", team), verb
        assert not can_i(control_plane, editor, "list", jrj, "-n", release_ns)  # only where bound
    finally:
        remove(control_plane, [*objs, *people], release_ns, team)


# --- the JuliaRun token --------------------------------------------------------------------------


def test_default_token_is_projected_with_its_own_audience_and_a_short_life(helm):
    pod = deployment_of(objects(render(helm)))["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    (source,) = volumes["juliarun-token"]["projected"]["sources"]
    assert source["serviceAccountToken"] == {
        "audience": "juliarun",
        "expirationSeconds": 3600,
        "path": "token",
    }
    assert env["JULIARUN_TOKEN_FILE"] == f"{mounts['juliarun-token']}/token"
    # With an explicit Secret, that Secret and nothing projected.
    pod = deployment_of(objects(render(helm, "juliarun.tokenSecret.name=jr")))["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["juliarun-token"] == {
        "name": "juliarun-token",
        "secret": {"secretName": "jr", "items": [{"key": "token", "path": "token"}]},
    }


def test_a_token_of_the_juliarun_audience_is_no_key_to_the_cluster(control_plane, helm):
    """What a JuliaRun access log could keep: the API server refuses it; the same
    ServiceAccount's token for the API server's own audience works (the control)."""
    user, objs, release_ns = applied_rbac(control_plane, helm, [])
    sa = user.rsplit(":", 1)[1]
    try:

        def token(*audience: str) -> str:
            return control_plane.kubectl(
                "create", "token", sa, "-n", release_ns, "--duration=10m", *audience
            ).stdout.strip()

        juliarun = token("--audience=juliarun")
        refused = control_plane.kubectl("get", "crd", as_token=juliarun, check=False)
        assert refused.returncode != 0 and "Unauthorized" in refused.stderr, refused.stderr
        assert control_plane.kubectl("get", "crd", as_token=token()).returncode == 0
    finally:
        remove(control_plane, objs, release_ns)


def test_expiration_below_kubernetes_minimum_is_refused(helm):
    result = run_helm(
        helm,
        "template",
        "jro",
        str(CHART),
        "--set",
        "juliarun.serviceAccountToken.expirationSeconds=60",
        check=False,
    )
    assert result.returncode != 0 and "/juliarun/serviceAccountToken/expirationSeconds" in result.stderr


# --- tenancy values ------------------------------------------------------------------------------


def test_tenancy_and_transport_values_reach_the_operator(helm):
    env = {
        e["name"]: e.get("value")
        for e in deployment_of(
            objects(
                render(
                    helm,
                    "tenancy.allowedHosts={jr.example.com,*.jr.internal:443}",
                    "juliarun.allowInsecureHttp=true",
                    "juliarun.useEnvProxy=true",
                )
            )
        )["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert tenancy.allowed_hosts_from_env(env) == ("jr.example.com", "*.jr.internal:443")
    assert tenancy.insecure_http_allowed(env) and env["JULIARUN_USE_ENV_PROXY"] == "true"
    defaults = {
        e["name"]
        for e in deployment_of(objects(render(helm)))["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert not defaults & {
        "JULIARUN_TENANT_ALLOWED_HOSTS",
        "JULIARUN_ALLOW_INSECURE_HTTP",
        "JULIARUN_USE_ENV_PROXY",
    }


@pytest.mark.parametrize("entry", ["https://jr.example.com", "jr.example.com/path", "*.*.example", "user@jr"])
def test_schema_refuses_allowed_hosts_that_are_not_hosts(helm, entry):
    result = run_helm(
        helm, "template", "jro", str(CHART), "--set", f"tenancy.allowedHosts={{{entry}}}", check=False
    )
    assert result.returncode != 0 and "/tenancy/allowedHosts/0" in result.stderr
    with pytest.raises(ValueError):
        tenancy.parse_allowed_hosts(entry)


def test_kustomize_overlay_in_the_docs_swaps_the_token_for_a_secret(control_plane, tmp_path):
    """docs/install.md's overlay, built against deploy/: one token volume, from the Secret."""
    text = (REPO / "docs" / "install.md").read_text()
    overlay = re.search(r"```yaml\n# overlays/prod/kustomization.yaml\n(.*?)```", text, re.S).group(1)
    data = yaml.safe_load(overlay)
    data["resources"] = [os.path.relpath(DEPLOY, tmp_path)]  # kustomize takes no absolute paths
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(data))
    built = objects(
        control_plane.kubectl("kustomize", str(tmp_path), "--load-restrictor=LoadRestrictionsNone").stdout
    )
    pod = deployment_of(built)["spec"]["template"]["spec"]
    tokens = [v for v in pod["volumes"] if v["name"] == "juliarun-token"]
    assert tokens == [{"name": "juliarun-token", "secret": {"secretName": "juliarun-token"}}]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["JULIARUN_TOKEN_FILE"] == "/var/run/secrets/juliarun/token/token"
    assert env["JULIARUN_URL"].startswith("https://")
