"""The control plane is a real Kubernetes API: CRDs with CEL and subresources,
watches, finalizers, RBAC and TokenRequest all behave as in a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, watch

from juliarun_dev import devcluster

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "test.juliarun.dev", "v1", "widgets"
RESOURCE = f"{PLURAL}.{GROUP}"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": RESOURCE},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
                },
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {
                                        "type": "string",
                                        "x-kubernetes-validations": [
                                            {"rule": "self == oldSelf", "message": "size is immutable"}
                                        ],
                                    },
                                    "replicas": {"type": "integer", "minimum": 0},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "replicas": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def eventually(condition, timeout: float = 30.0, interval: float = 0.2):
    """Poll condition() until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture(scope="module")
def namespace(control_plane):
    name = f"jr-it-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    # Without a controller-manager the namespace stays Terminating; harmless.
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def widget_crd(control_plane):
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(CRD))
    control_plane.kubectl("wait", "--for=condition=Established", f"crd/{RESOURCE}", "--timeout=60s")
    yield RESOURCE
    control_plane.kubectl("delete", "crd", RESOURCE, "--wait=false")


@pytest.fixture
def make_widget(control_plane, namespace, widget_crd):
    """Create a Widget with a fresh name; returns that name."""

    def make(size: str = "small", replicas: int = 1, finalizers: list[str] | None = None) -> str:
        name = f"w-{uuid.uuid4().hex[:8]}"
        metadata = {"name": name, "namespace": namespace, "finalizers": finalizers or []}
        obj = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": metadata,
            "spec": {"size": size, "replicas": replicas},
        }
        control_plane.kubectl("create", "-f", "-", input=json.dumps(obj))
        return name

    return make


def get_widget(control_plane, namespace: str, name: str) -> dict:
    return json.loads(control_plane.kubectl("get", RESOURCE, name, "-n", namespace, "-o", "json").stdout)


def test_binaries_report_pinned_versions(control_plane):
    versions = devcluster.read_versions()
    binaries = devcluster.ensure_binaries()
    kubectl = subprocess.run(
        [binaries["kubectl"], "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    )
    assert json.loads(kubectl.stdout)["clientVersion"]["gitVersion"] == versions["KUBERNETES_VERSION"]
    if not control_plane.external:
        server = json.loads(control_plane.kubectl("version", "-o", "json").stdout)["serverVersion"]
        assert server["gitVersion"] == versions["KUBERNETES_VERSION"]
        assert (server["major"], server["minor"]) == ("1", versions["KUBERNETES_VERSION"].split(".")[1])
    helm = subprocess.run(
        [binaries["helm"], "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert helm.stdout.strip() == versions["HELM_VERSION"]
    etcd = subprocess.run([binaries["etcd"], "--version"], capture_output=True, text=True, check=True)
    assert f"etcd Version: {versions['ETCD_VERSION'].lstrip('v')}" in etcd.stdout


def test_watch_sees_created_object(control_plane, k8s_api_client, namespace, widget_crd, make_widget):
    api = client.CustomObjectsApi(k8s_api_client)
    # Watching from this resourceVersion delivers the creation even though it
    # happens before the watch starts, so there is no race to sleep over.
    rv = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["metadata"]["resourceVersion"]
    name = make_widget()
    w = watch.Watch()
    events = w.stream(
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        resource_version=rv,
        timeout_seconds=30,
    )
    seen = next((e for e in events if e["object"]["metadata"]["name"] == name), None)
    w.stop()
    assert seen is not None, "watch ended without the event"
    assert seen["type"] == "ADDED"
    assert seen["object"]["spec"] == {"size": "small", "replicas": 1}


def test_status_only_changes_through_status_subresource(control_plane, namespace, make_widget):
    name = make_widget()
    patch = json.dumps({"status": {"phase": "Ready", "replicas": 1}})
    control_plane.kubectl("patch", RESOURCE, name, "-n", namespace, "--type=merge", "-p", patch)
    assert "status" not in get_widget(control_plane, namespace, name)

    control_plane.kubectl(
        "patch", RESOURCE, name, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch
    )
    assert get_widget(control_plane, namespace, name)["status"] == {"phase": "Ready", "replicas": 1}


def test_scale_subresource_sets_spec_replicas(control_plane, namespace, make_widget):
    name = make_widget(replicas=1)
    control_plane.kubectl("scale", RESOURCE, name, "-n", namespace, "--replicas=4")
    assert get_widget(control_plane, namespace, name)["spec"]["replicas"] == 4
    scale = json.loads(
        control_plane.kubectl(
            "get", RESOURCE, name, "-n", namespace, "--subresource=scale", "-o", "json"
        ).stdout
    )
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 4


def test_cel_rule_refuses_bad_update(control_plane, namespace, make_widget):
    name = make_widget(size="small")
    result = control_plane.kubectl(
        "patch",
        RESOURCE,
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"size": "large"}}',
        check=False,
    )
    assert result.returncode != 0
    assert "size is immutable" in result.stderr
    assert get_widget(control_plane, namespace, name)["spec"]["size"] == "small"


def test_finalizer_holds_deletion_until_removed(control_plane, namespace, make_widget):
    name = make_widget(finalizers=["test.juliarun.dev/hold"])
    control_plane.kubectl("delete", RESOURCE, name, "-n", namespace, "--wait=false")

    held = get_widget(control_plane, namespace, name)
    assert "deletionTimestamp" in held["metadata"]
    assert held["metadata"]["finalizers"] == ["test.juliarun.dev/hold"]

    control_plane.kubectl(
        "patch", RESOURCE, name, "-n", namespace, "--type=merge", "-p", '{"metadata": {"finalizers": null}}'
    )
    control_plane.kubectl("wait", "--for=delete", f"{RESOURCE}/{name}", "-n", namespace, "--timeout=30s")
    gone = control_plane.kubectl("get", RESOURCE, name, "-n", namespace, check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr


def test_service_account_token_is_authorized_by_rbac(control_plane, namespace, widget_crd, make_widget):
    make_widget()
    kubectl = control_plane.kubectl
    kubectl("create", "serviceaccount", "reader", "-n", namespace)
    kubectl(
        "create", "role", "widget-reader", "--verb=get,list,watch", f"--resource={RESOURCE}", "-n", namespace
    )
    kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=widget-reader",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    token = kubectl("create", "token", "reader", "-n", namespace, "--duration=10m").stdout.strip()

    whoami = kubectl("auth", "whoami", "-o", "json", as_token=token)
    assert (
        json.loads(whoami.stdout)["status"]["userInfo"]["username"]
        == f"system:serviceaccount:{namespace}:reader"
    )
    # The authorizer learns of new RBAC objects through a watch: wait for it.
    eventually(
        lambda: (
            kubectl(
                "auth", "can-i", "list", RESOURCE, "-n", namespace, as_token=token, check=False
            ).stdout.strip()
            == "yes"
        )
    )

    allowed = kubectl("get", RESOURCE, "-n", namespace, "-o", "name", as_token=token)
    assert allowed.stdout.strip()
    denied = kubectl("get", "configmaps", "-n", namespace, as_token=token, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert (
        kubectl(
            "auth", "can-i", "delete", RESOURCE, "-n", namespace, as_token=token, check=False
        ).stdout.strip()
        == "no"
    )


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return pids


def test_down_leaves_no_process_and_no_state_dir(tmp_path):
    # The only test that starts a second cluster; it runs beside the session one.
    state_dir = tmp_path / "second-cluster"
    info = devcluster.up(state_dir=state_dir)
    assert devcluster.status(state_dir) == info
    assert yaml.safe_load(info.kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == info.server
    assert set(_processes_mentioning(str(state_dir))) == {info.etcd_pid, info.apiserver_pid}

    devcluster.down(state_dir)

    assert _processes_mentioning(str(state_dir)) == []
    assert not state_dir.exists()
    assert devcluster.status(state_dir) is None
    devcluster.down(state_dir)  # idempotent


def test_down_takes_the_options_up_took(tmp_path):
    # `cluster up --kubeconfig FILE` then the same options with `down`: it stops (it used to be
    # refused, leaving the cluster running); another kubeconfig is refused and stops nothing.
    state_dir, kubeconfig = tmp_path / "cli-cluster", tmp_path / "my.kubeconfig"
    options = ["--state-dir", str(state_dir), "--kubeconfig", str(kubeconfig)]
    juliarun = [sys.executable, "-m", "juliarun_operator.cli", "cluster"]
    subprocess.run([*juliarun, "up", *options], check=True, capture_output=True, timeout=120)
    try:
        info = devcluster.status(state_dir)
        assert info is not None and info.kubeconfig == kubeconfig
        refused = subprocess.run(
            [*juliarun, "down", "--state-dir", str(state_dir), "--kubeconfig", str(tmp_path / "other")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "not" in refused.stderr
        assert devcluster.status(state_dir) == info
        subprocess.run([*juliarun, "down", *options], check=True, capture_output=True, timeout=60)
        assert devcluster.status(state_dir) is None
        assert not kubeconfig.exists() and not state_dir.exists()
    finally:
        devcluster.down(state_dir)
