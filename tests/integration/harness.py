"""Processes for operator tests: the JuliaRun server and the operator, each a real process.

A crash test needs a process to SIGKILL, so neither runs inside the test process.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

TOKEN = "op-s3cr3t-token-4242"
TOKEN_B64 = base64.b64encode(TOKEN.encode()).decode()
JRUN_NAMESPACE = "ops"
JULIARUN = [sys.executable, "-m", "juliarun_operator.cli"]


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
    def __init__(
        self, workdir: Path, kubeconfig: Path, emulator: Emulator, *flags: str, log_name: str = "operator.log"
    ):
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "JULIARUN_URL": emulator.url,
            "JULIARUN_TOKEN": TOKEN,
            "JULIARUN_NAMESPACE": JRUN_NAMESPACE,
            "JULIARUN_TIMEOUT": "2",
            "JULIARUN_TENANT_ALLOWED_HOSTS": "127.0.0.1",
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

    def job_name(self, namespace: str, name: str) -> str:
        """The default JuliaRun name of an object: it hashes the object's UID."""
        from juliarun_operator.reconcile.naming import default_job_name

        obj = self.get(namespace, name)
        assert obj, f"no JuliaRunJob {namespace}/{name}"
        return default_job_name(namespace, name, obj["metadata"]["uid"])

    def namespace(self, name: str) -> str:
        self.cp.kubectl("create", "namespace", name)
        return name

    def events(self, namespace: str, name: str) -> list[dict]:
        out = self.cp.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return [e for e in json.loads(out)["items"] if e["involvedObject"].get("name") == name]


def job(name: str, job_type: str, **spec: Any) -> dict:
    return {
        "apiVersion": "juliarun.dev/v1alpha1",
        "kind": "JuliaRunJob",
        "metadata": {"name": name},
        "spec": {"type": job_type, **spec},
    }
