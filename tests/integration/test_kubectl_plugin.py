"""`kubectl juliarun` for a tenant: a ServiceAccount that may only read JuliaRunJobs in its
namespace, with no JuliaRun credentials, gets the log lines the operator kept, told so; one
`error: ...` line for every failure of either subcommand; `--count` honoured; a
credentialsRef Secret's `ca.crt` used to verify JuliaRun."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from juliarun_dev import devpki

from harness import (
    JRUN_NAMESPACE,
    JULIARUN,
    TOKEN,
    Emulator,
    Namespaces,
    Operator,
    apply_crds,
    job,
    running,
    using,
)
from support.servers import Loopback

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


class TlsRelay(Loopback):
    """JuliaRun over TLS: a relay on loopback that terminates TLS with a certificate of its
    own CA (for 127.0.0.1) and forwards the plain bytes to the JuliaRun server."""

    def __init__(self, target_port: int, pki: Path):
        super().__init__()
        self.target_port = target_port
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        self.url = f"https://127.0.0.1:{self.port}"

    def serve(self, conn: socket.socket) -> None:
        try:
            client = self.tls.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust us hangs up
            conn.close()
            return
        server = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=pump, args=(server, client), daemon=True).start()
        pump(client, server)


def pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for s in (source, sink):
        with contextlib.suppress(OSError):
            s.close()


def test_a_credentials_secret_ca_crt_verifies_juliarun(stack, ns, control_plane, tmp_path):
    """JuliaRun behind TLS with a private CA: the plugin trusts it with the Secret's ca.crt,
    and without it refuses the connection in one line."""
    emulator, _, kube = stack
    pki = tmp_path / "pki"
    devpki.make_pki(pki)
    relay = TlsRelay(emulator.port, pki).start()
    try:
        # A job in JuliaRun, and an object standing for it: paused, so the operator leaves it,
        # with the status the operator would have written.
        submitted = subprocess.run(
            [
                *JULIARUN,
                "--url",
                emulator.url,
                "--namespace",
                JRUN_NAMESPACE,
                "submit",
                "JuliaBatch",
                f"{ns}-tls",
                "run_volume=jobs",
                "start_script=run.jl",
            ],
            env={**os.environ, "JULIARUN_TOKEN": TOKEN},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert submitted.returncode == 0, submitted.stderr
        for name, with_ca in (("tls", True), ("tls-no-ca", False)):
            data = {"url": relay.url, "token": TOKEN, "namespace": JRUN_NAMESPACE}
            if with_ca:
                data["ca.crt"] = (pki / "ca.crt").read_text()
            kube.apply(
                ns,
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name, "labels": {"juliarun.dev/credentials": "true"}},
                    "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
                },
            )
            # Orphan: deleting the object later asks nothing of this JuliaRun, which the operator
            # may not reach (its host is on no allow-list).
            spec = {"runVolume": "jobs", "startScript": "run.jl", "credentialsRef": {"name": name}}
            spec["deletionPolicy"] = "Orphan"
            obj = job(name, "JuliaBatch", **spec)
            obj["metadata"]["annotations"] = {"juliarun.dev/paused": "true"}
            kube.apply(ns, obj)
            status = {"status": {"jobName": f"{ns}-tls", "submitted": True}}
            control_plane.kubectl(
                "patch",
                "jrj",
                name,
                "-n",
                ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps(status),
            )
        trusted = plugin("logs", "tls", "-n", ns, "--count", "2", kubeconfig=control_plane.kubeconfig)
        assert trusted.returncode == 0 and len(trusted.stdout.splitlines()) == 2, trusted.stderr
        untrusted = one_error_line(plugin("logs", "tls-no-ca", "-n", ns, kubeconfig=control_plane.kubeconfig))
        assert "TLS handshake" in untrusted and "failed" in untrusted, untrusted
        assert TOKEN not in trusted.stderr + untrusted
    finally:
        relay.stop()
