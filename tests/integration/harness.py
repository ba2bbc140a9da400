"""Processes for operator tests: the JuliaRun server and the operator, each a real process.

A crash test needs a process to SIGKILL, so neither runs inside the test process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml

TOKEN = "op-s3cr3t-token-4242"
TOKEN_B64 = base64.b64encode(TOKEN.encode()).decode()
JRUN_NAMESPACE = "ops"
JULIARUN = [sys.executable, "-m", "juliarun_operator.cli"]
CRDS = Path(__file__).resolve().parents[2] / "crds"


def apply_crds(control_plane) -> None:
    """The repository's CRDs, established. Server-side: idempotent with other tests' applies."""
    for crd in sorted(CRDS.glob("*.yaml")):
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    # Looked at, not `kubectl wait`: that gave up (30 s) on a loaded machine, or on a CRD
    # applied again before the API server had written its first conditions.
    established = "jsonpath={.status.conditions[?(@.type=='Established')].status}"

    def is_established() -> bool:
        got = control_plane.kubectl("get", "crd/juliarunjobs.juliarun.dev", "-o", established, check=False)
        return got.returncode == 0 and got.stdout.strip() == "True"

    wait_for("the CRD Established", is_established, 120)


def metric(text: str, name: str) -> float:
    """The sum of a metric's samples in a Prometheus text page (0 if absent)."""
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; AssertionError naming `what` if never."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a not-yet-ready server or object: keep polling
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")


class Process:
    """A child process with its output in a log file that survives restarts."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]):
        self.args, self.log, self.env = args, log, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = self.log.open("a")
        self.proc = subprocess.Popen(
            self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        out.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


class Emulator(Process):
    def __init__(self, workdir: Path, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = workdir / "emulator-state.json"
        args = [*JULIARUN, "emulator", "--port", str(self.port), "--state", str(self.state), *flags]
        super().__init__(args, workdir / "emulator.log", dict(os.environ))

    def start(self) -> None:
        super().start()
        wait_for(
            "the JuliaRun server", lambda: requests.get(f"{self.url}/_emulator/healthz", timeout=1).ok, 30
        )

    def counters(self) -> dict:
        return requests.get(f"{self.url}/_emulator/counters", timeout=5).json()

    def calls(self, operation: str, name: str | None = None) -> int:
        counters = self.counters()
        if name is None:
            return counters["operations"].get(operation, 0)
        return counters["jobs"].get(JRUN_NAMESPACE, {}).get(name, {}).get(operation, 0)

    def set_faults(self, faults: dict) -> None:
        requests.put(f"{self.url}/_emulator/faults", json=faults, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.url}/_emulator/faults", timeout=5).raise_for_status()

    def jobs(self) -> dict[str, str]:
        from juliarun_operator.juliarun import Client, Context

        return Client(Context(url=self.url, token=TOKEN, namespace=JRUN_NAMESPACE)).list_jobs()


class Operator(Process):
    """The operator, watching the namespaces in `watch`.

    A test's operator watches only its test's namespaces: one watching every namespace acts on
    other tests' leftover objects (and they on it), so one failure would cascade into others.
    watch=None (every namespace) is for a test about cluster-wide watching alone.
    """

    def __init__(
        self,
        workdir: Path,
        kubeconfig: Path,
        emulator: Emulator,
        *flags: str,
        watch: Sequence[str] | None,
        log_name: str = "operator.log",
        tenant_urls: Sequence[str] = (),
    ):
        if watch is not None and not watch:
            raise ValueError("watch=[] would watch every namespace: name them, or pass None")
        self.watch = list(watch) if watch is not None else None
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "JULIARUN_URL": emulator.url,
            "JULIARUN_TOKEN": TOKEN,
            "JULIARUN_NAMESPACE": JRUN_NAMESPACE,
            "JULIARUN_TIMEOUT": "2",
            # Tenants may name the emulator and `tenant_urls`: each host at its own port.
            "JULIARUN_TENANT_ALLOWED_HOSTS": ",".join(
                f"{u.hostname}:{u.port}" for u in map(urlsplit, [emulator.url, *tenant_urls])
            ),
        }
        # Standalone unless the flags set up the Lease.
        peering = [] if any(f.startswith("--lease") for f in flags) else ["--standalone"]
        args = [
            *JULIARUN,
            "operator",
            *peering,
            "--sync-interval",
            "1",
            "--health-interval",
            "2",
            "--metrics-port",
            str(self.metrics_port),
            "--verbose",
            *[f"--watch-namespace={ns}" for ns in self.watch or ()],
            *flags,
        ]
        super().__init__(args, workdir / log_name, env)

    def start(self) -> None:
        super().start()
        wait_for(
            "the operator's health endpoint",
            lambda: requests.get(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=1).ok,
            60,
        )

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text


class Kube:
    """kubectl as the tests use it: JSON in, JSON out."""

    def __init__(self, control_plane):
        self.cp = control_plane

    def apply(self, namespace: str, *objects: dict) -> None:
        text = yaml.safe_dump_all(list(objects))
        self.cp.kubectl("apply", "-n", namespace, "-f", "-", input=text)

    def get(self, namespace: str, name: str) -> dict | None:
        result = self.cp.kubectl("get", "jrj", name, "-n", namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def status(self, namespace: str, name: str) -> dict:
        obj = self.get(namespace, name) or {}
        return obj.get("status") or {}

    def condition(self, namespace: str, name: str, ctype: str) -> dict:
        for c in self.status(namespace, name).get("conditions") or []:
            if c["type"] == ctype:
                return c
        return {}

    def ready(self, namespace: str, name: str) -> bool:
        return self.condition(namespace, name, "Ready").get("status") == "True"

    def at_scale(self, namespace: str, name: str, workers: int) -> bool:
        """Ready, with JuliaRun running and asked for exactly `workers`."""
        scale = self.status(namespace, name).get("scale")
        return scale == {"running": workers, "requested": workers} and self.ready(namespace, name)

    def job_name(self, namespace: str, name: str) -> str:
        """The default JuliaRun name of an object: it hashes the object's UID."""
        from juliarun_operator.api import default_job_name

        obj = self.get(namespace, name)
        assert obj, f"no JuliaRunJob {namespace}/{name}"
        return default_job_name(namespace, name, obj["metadata"]["uid"])

    def namespace(self, name: str) -> str:
        self.cp.kubectl("create", "namespace", name)
        return name

    def clean_up(self, *namespaces: str, timeout: float = 120) -> None:
        """Delete every JuliaRunJob in the namespaces and wait until they are gone.

        Call it while their operator still runs: only the operator removes the finalizer.
        Objects still there after `timeout` (their operator gone, or a bug) lose the finalizer
        by hand, so no later test meets them, and this fails naming them.
        """

        def left() -> dict[str, list[str]]:
            out = self.cp.kubectl("get", "jrj", "-A", "-o", "json").stdout
            names: dict[str, list[str]] = {}
            for o in json.loads(out)["items"]:
                if o["metadata"]["namespace"] in namespaces:
                    names.setdefault(o["metadata"]["namespace"], []).append(o["metadata"]["name"])
            return names

        for ns, names in left().items():
            self.cp.kubectl("delete", "jrj", *names, "-n", ns, "--wait=false")
        try:
            wait_for("the objects' deletion", lambda: not left(), timeout, 0.5)
        except AssertionError as timed_out:
            stuck = left()
            unfinalize = '{"metadata":{"finalizers":null}}'
            for ns, names in stuck.items():
                for name in names:
                    self.cp.kubectl(
                        "patch", "jrj", name, "-n", ns, "--type=merge", "-p", unfinalize, check=False
                    )
            raise AssertionError(
                f"still there {timeout:g} s after deletion (finalizer removed by hand): {stuck}"
            ) from timed_out

    def events(self, namespace: str, name: str) -> list[dict]:
        out = self.cp.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return [e for e in json.loads(out)["items"] if e["involvedObject"].get("name") == name]


@contextlib.contextmanager
def started(control_plane) -> Iterator[Callable[[Process], Any]]:
    """`start(process)` for a test's processes. At the end, the objects in the namespaces its
    operators watch are deleted while they still run (only they remove the finalizer); then
    every process is stopped."""
    processes: list[Process] = []

    def start(process):
        process.start()
        processes.append(process)
        return process

    try:
        yield start
    finally:
        try:
            watched = {ns for p in processes if isinstance(p, Operator) for ns in p.watch or ()}
            Kube(control_plane).clean_up(*sorted(watched))
        finally:
            for process in reversed(processes):
                process.kill(signal.SIGTERM)


@contextlib.contextmanager
def running(
    control_plane, emulator: Emulator, operator: Operator
) -> Iterator[tuple[Emulator, Operator, Kube]]:
    """Both started, the emulator first; at the end as `started` ends them."""
    with started(control_plane) as start:
        yield start(emulator), start(operator), Kube(control_plane)


def namespace_name(prefix: str) -> str:
    """A namespace name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class Namespaces:
    """Names of a test module's namespaces, chosen before its operator starts to watch them."""

    def __init__(self, prefix: str, count: int):
        tag = uuid.uuid4().hex[:5]
        self.names = [f"{prefix}{i}-{tag}" for i in range(count)]
        self.taken = 0

    def take(self, kube: Kube) -> str:
        """The next name, created as a namespace."""
        if self.taken == len(self.names):
            raise AssertionError(f"all {len(self.names)} namespaces reserved for the operator are taken")
        self.taken += 1
        return kube.namespace(self.names[self.taken - 1])


def using(request, fixture: str) -> int:
    """How many of the session's tests in the requesting module use `fixture`."""
    return sum(
        1 for item in request.session.items if item.module is request.module and fixture in item.fixturenames
    )


def job(name: str, job_type: str, **spec: Any) -> dict:
    return {
        "apiVersion": "juliarun.dev/v1alpha1",
        "kind": "JuliaRunJob",
        "metadata": {"name": name},
        "spec": {"type": job_type, **spec},
    }


def deny_status_writes(control_plane, namespace: str, expression: str = "false") -> Callable[[], None]:
    """A ValidatingAdmissionPolicy refusing the status writes of JuliaRunJobs in `namespace`
    for which the CEL `expression` (of object and oldObject) is false: every one by default.
    Refused with 403 Forbidden, as a missing permission would be (the default reason is 422
    Invalid). Returns what removes it."""
    name = f"deny-status-{namespace}"
    objects = [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["juliarun.dev"],
                            "apiVersions": ["*"],
                            "operations": ["UPDATE"],
                            "resources": ["juliarunjobs/status"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": expression,
                        "message": "status writes denied by the test",
                        "reason": "Forbidden",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    ]
    text = yaml.safe_dump_all(objects)
    control_plane.kubectl("apply", "-f", "-", input=text)

    def remove() -> None:
        control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)

    return remove
