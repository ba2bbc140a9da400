"""What the chart's tests (test_chart.py, test_chart_security.py) share: the chart rendered
as released, its objects applied to the API server and removed again, and the operator run
as the chart's ServiceAccount."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import requests
import yaml

from harness import Process, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "juliarun-operator"
DEPLOY = REPO / "deploy"
JULIARUN = Path(sys.executable).with_name("juliarun")
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


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


def deployment_of(objs: list[dict]) -> dict:
    (deployment,) = by_kind(objs, "Deployment")
    return deployment


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def unique_ns(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_namespace(control_plane, name: str, labels: dict[str, str] | None = None) -> None:
    meta = {"name": name, "labels": labels or {}}
    control_plane.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    )


def apply_rendered(
    control_plane,
    helm: Path,
    *sets: str,
    namespace: str,
    release: str,
    kinds: tuple[str, ...] = RBAC_KINDS,
) -> list[dict]:
    """Render the chart, apply its objects of `kinds` (by default its ServiceAccount and
    RBAC) for real; the objects applied."""
    objs = [
        o for o in objects(render(helm, *sets, namespace=namespace, release=release)) if o["kind"] in kinds
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    return objs


def remove(control_plane, objs: list[dict], *namespaces: str) -> None:
    """Delete the objects and the namespaces, without waiting (no namespace controller here)."""
    control_plane.kubectl(
        "delete", "--ignore-not-found", "--wait=false", "-f", "-", input=yaml.safe_dump_all(objs), check=False
    )
    if namespaces:
        control_plane.kubectl("delete", "namespace", *namespaces, "--wait=false", check=False)


def service_account_user(objs: list[dict], namespace: str) -> str:
    """The user name of the chart's ServiceAccount among `objs`."""
    (sa,) = by_kind(objs, "ServiceAccount")
    return f"system:serviceaccount:{namespace}:{sa['metadata']['name']}"


def can_i(control_plane, user: str, *args: str) -> bool:
    result = control_plane.kubectl("auth", "can-i", *args, "--as", user, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


# --- processes as the chart runs them ---------------------------------------------------------

# Neither process may see this session's JuliaRun or Kubernetes settings: only what a pod has.
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("JULIARUN_", "KUBECONFIG"))}


def juliarun_server(workdir: Path, run_time: float) -> tuple[Process, str]:
    """A JuliaRun server on a port of its choosing, started; with its URL."""
    flags = ["--port", "0", "--host", "127.0.0.1", "--run-time", str(run_time)]
    server = Process(
        [str(JULIARUN), "emulator", *flags, "--create-delay", "0.2", "--worker-delay", "0.1"],
        workdir / "emulator.log",
        BASE_ENV,
    )
    server.start()
    try:
        port = wait_for(
            "the JuliaRun server to listen",
            lambda: (m := re.search(r"listening on http://[^:]+:(\d+)", server.text())) and int(m.group(1)),
            30,
        )
    except AssertionError:
        server.kill()
        raise
    return server, f"http://127.0.0.1:{port}"


def chart_operator(log: Path, kubeconfig: Path, url: str, *args: str, **env: str) -> Process:
    """`juliarun operator` with only the ServiceAccount's kubeconfig and the settings the
    chart's Deployment gives it (`env`), started."""
    operator = Process(
        [str(JULIARUN), "operator", *args, "--metrics-port", "0"],
        log,
        {
            **BASE_ENV,
            "KUBECONFIG": str(kubeconfig),
            "JULIARUN_URL": url,
            "JULIARUN_NAMESPACE": "juliarun",
            "JULIARUN_SYNC_INTERVAL": "0.5",
            **env,
        },
    )
    operator.start()
    return operator


# --- an OCI registry on loopback (hack/registry/registry.sh) ----------------------------------


class Registry(Process):
    """A registry (Debian's docker-registry: CNCF Distribution) on a loopback port, storing in
    `workdir`; plain http, as `helm push/install --plain-http` expect of a local one."""

    def __init__(self, workdir: Path):
        binary = subprocess.run(
            ["bash", str(REPO / "hack" / "registry" / "registry.sh")],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
            timeout=300,
        ).stdout.strip()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = workdir / "registry.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "version": 0.1,
                    "log": {"level": "warn"},
                    "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
                    "http": {"addr": self.host},
                }
            )
        )
        super().__init__([binary, "serve", str(config)], workdir / "registry.log", BASE_ENV)

    def start(self) -> None:
        super().start()
        wait_for("the registry", lambda: requests.get(f"http://{self.host}/v2/", timeout=1).ok, 30)

    def tags(self, repository: str) -> list[str]:
        return requests.get(f"http://{self.host}/v2/{repository}/tags/list", timeout=5).json()["tags"]
