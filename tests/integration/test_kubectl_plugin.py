"""`kubectl juliarun` for a tenant: a ServiceAccount that may only read JuliaRunJobs in its
namespace, with no JuliaRun credentials, gets the log lines the operator kept, told so; one
`error: ...` line for every failure of either subcommand; `--count` honoured; a
credentialsRef Secret's `ca.crt` used to verify JuliaRun."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import JRUN_NAMESPACE, TOKEN, Emulator, Namespaces, Operator, apply_crds, job, running, using

pytestmark = pytest.mark.integration
PLUGIN = str(Path(sys.executable).with_name("kubectl-juliarun"))
TENANT_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: jrj-reader}
rules:
- apiGroups: [juliarun.dev]
  resources: [juliarunjobs]
  verbs: [get, list, watch]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: tenant}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tenant-reads-jrj}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: jrj-reader}
subjects:
- {kind: ServiceAccount, name: tenant}
"""


@pytest.fixture(scope="module")
def namespaces(request) -> Namespaces:
    return Namespaces("kp", using(request, "ns"))


@pytest.fixture(scope="module")
def stack(control_plane, tmp_path_factory, namespaces):
    workdir = tmp_path_factory.mktemp("plugin")
    apply_crds(control_plane)
    emulator = Emulator(workdir, "--create-delay", "0.2", "--run-time", "2")
    operator = Operator(workdir, control_plane.kubeconfig, emulator, watch=namespaces.names)
    with running(control_plane, emulator, operator) as stack:
        yield stack


@pytest.fixture
def ns(stack, namespaces):
    return namespaces.take(stack[2])


def tenant_kubeconfig(control_plane, ns: str) -> Path:
    """A kubeconfig whose user may read JuliaRunJobs in ns, and nothing else (no Secrets)."""
    control_plane.kubectl("apply", "-n", ns, "-f", "-", input=TENANT_ROLE)
    token = control_plane.kubectl("create", "token", "tenant", "-n", ns).stdout.strip()
    assert control_plane.kubectl("get", "secrets", "-n", ns, as_token=token, check=False).returncode != 0
    return control_plane.token_kubeconfig(token)


def plugin(*args: str, kubeconfig: Path, **juliarun: str) -> subprocess.CompletedProcess[str]:
    """kubectl-juliarun in a shell that has a kubeconfig and only the JULIARUN_* given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JULIARUN_")}
    env |= {"KUBECONFIG": str(kubeconfig), **juliarun}
    return subprocess.run([PLUGIN, *args], env=env, capture_output=True, text=True, timeout=60)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1 and result.stdout == "", result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def finished(control_plane, kube, ns: str, name: str) -> dict:
    kube.apply(ns, job(name, "JuliaBatch", runVolume="jobs", startScript="run.jl"))
    control_plane.kubectl("wait", "--for=condition=Complete", f"jrj/{name}", "-n", ns, "--timeout=60s")
    return kube.status(ns, name)


def test_a_tenant_with_only_kubectl_gets_the_kept_lines(stack, ns, control_plane):
    _, _, kube = stack
    status = finished(control_plane, kube, ns, "train")
    kept = status["lastLogs"].splitlines()
    assert len(kept) > 3
    tenant = tenant_kubeconfig(control_plane, ns)
    result = plugin("logs", "train", "-n", ns, "--count", "3", kubeconfig=tenant)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == kept[-3:]  # --count honoured on the kept lines too
    missing = "JULIARUN_URL, JULIARUN_TOKEN or JULIARUN_TOKEN_FILE, JULIARUN_NAMESPACE not set"
    assert f"no JuliaRun credentials ({missing})" in result.stderr
    assert "status.lastLogs" in result.stderr
    # Without JULIARUN_NAMESPACE no guess at JuliaRun's namespace ("default"): the kept lines, and why.
    partial = plugin(
        "logs", "train", "-n", ns, kubeconfig=tenant, JULIARUN_URL="http://127.0.0.1:9", JULIARUN_TOKEN=TOKEN
    )
    assert partial.returncode == 0 and partial.stdout.splitlines() == kept[-20:], partial.stderr
    assert "JULIARUN_NAMESPACE not set" in partial.stderr and "default" not in partial.stderr
    assert TOKEN not in partial.stdout + partial.stderr


def test_with_credentials_the_job_is_tailed_and_count_honoured(stack, ns, control_plane):
    emulator, _, kube = stack
    finished(control_plane, kube, ns, "tailed")
    creds = {"JULIARUN_URL": emulator.url, "JULIARUN_TOKEN": TOKEN, "JULIARUN_NAMESPACE": JRUN_NAMESPACE}
    for count in ("1", "4"):
        args = ("logs", "tailed", "-n", ns, "--count", count)
        result = plugin(*args, kubeconfig=control_plane.kubeconfig, **creds)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert len(result.stdout.splitlines()) == int(count)


def test_nothing_kept_and_no_credentials_is_one_error_line(stack, ns, control_plane):
    _, _, kube = stack
    kube.apply(ns, job("web", "Webserver", runVolume="v", cfgFile="c"))
    control_plane.kubectl("wait", "--for=jsonpath={.status.jobName}", "jrj/web", "-n", ns, "--timeout=60s")
    err = one_error_line(plugin("logs", "web", "-n", ns, kubeconfig=tenant_kubeconfig(control_plane, ns)))
    assert "no JuliaRun credentials" in err and "has kept no log lines" in err


def test_errors_are_kubectls_one_line_in_every_subcommand(stack, ns, control_plane):
    tenant = tenant_kubeconfig(control_plane, ns)
    for args in (("logs", "nothing"), ("attempts", "nothing")):
        err = one_error_line(plugin(*args, "-n", ns, kubeconfig=tenant))
        assert err == f'error: juliarunjobs.juliarun.dev "nothing" not found in namespace "{ns}"\n'
    forbidden = one_error_line(plugin("attempts", "x", "-n", "kube-system", kubeconfig=tenant))
    assert "forbidden" in forbidden and "cannot get resource" in forbidden
    nowhere = one_error_line(plugin("logs", "x", kubeconfig=tenant.parent / "absent.yaml"))
    assert "kubeconfig" in nowhere


def test_a_credentials_secret_ca_crt_is_the_ca_bundle(stack, ns, control_plane):
    """The Secret's ca.crt becomes the CA bundle the client verifies JuliaRun with."""
    import kubernetes

    from juliarun_operator import resources

    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    data = {"url": "https://juliarun.example", "token": TOKEN, "namespace": "team", "ca.crt": pem}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "labels": {"juliarun.dev/credentials": "true"}},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    _, _, kube = stack
    kube.apply(ns, secret)
    kubernetes.config.load_kube_config(config_file=str(control_plane.kubeconfig))
    obj = job("x", "JuliaBatch", credentialsRef={"name": "creds"})
    context, why_not = resources.connection(obj, ns)
    assert why_not is None and context is not None
    assert isinstance(context.verify, str) and Path(context.verify).read_text() == pem
    plain = {k: v for k, v in secret["data"].items() if k != "ca.crt"}
    without = {**secret, "metadata": {"name": "plain"}, "data": plain}
    kube.apply(ns, without)
    context, _ = resources.connection(job("y", "JuliaBatch", credentialsRef={"name": "plain"}), ns)
    assert context is not None and context.verify is True
