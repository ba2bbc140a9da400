"""A whole operator run against a JuliaRun that answers with error pages echoing the request
line (token and notebook password in it, as aiohttp does for an over-long request line):
neither secret, in any encoding, reaches a log line, Event, status field, annotation or
metric."""

from __future__ import annotations

import base64
import json
import signal
import time
from urllib.parse import quote, quote_plus

import pytest

from harness import TOKEN, Emulator, Kube, Operator, apply_crds, job, wait_for

pytestmark = pytest.mark.integration
# base64 with "+", "/" and padding; no URL syntax (a tenant's password may not have any)
PASSWORD = "nb-pa55ÿé>word"


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    std, safe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    bases = {secret, std, std.rstrip("="), safe, safe.rstrip("=")}
    out = set()
    for b in bases:
        out |= {b, quote_plus(b), quote(b, safe=""), quote(b, safe="").lower()}
    return sorted(out)


def leaks(text: str) -> list[str]:
    return [f for secret in (TOKEN, PASSWORD) for f in forms(secret) if f in text]


def setup_stack(control_plane, tmp_path, prefix: str, *emulator_flags: str):
    apply_crds(control_plane)
    kube = Kube(control_plane)
    ns = kube.namespace(f"{prefix}-{int(time.time()) % 100000}")
    emulator = Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1", *emulator_flags)
    emulator.start()
    return kube, ns, emulator


def test_echoed_request_lines_leak_no_secret(control_plane, tmp_path):
    kube, ns, emulator = setup_stack(control_plane, tmp_path, "leak", "--run-time", "0")
    # From the first call on, every answer is an error page with the request line in it.
    emulator.set_faults({"*": {"echo_rate": 1, "echo_status": 502}})
    operator = Operator(tmp_path, control_plane.kubeconfig, emulator, watch=[ns])
    operator.start()

    def shown(status: int, *names: str) -> bool:
        """The echoed error reached each object: in its Events, status or the operator's log."""
        text = f"HTTP {status}"
        return all(
            text in json.dumps(kube.events(ns, n))
            or text in json.dumps(kube.get(ns, n))
            or (text in operator.text() and n in operator.text())
            for n in names
        )

    try:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "nb-password", "labels": {"juliarun.dev/credentials": "true"}},
            "stringData": {"password": PASSWORD},
        }
        kube.apply(
            ns,
            secret,
            job(
                "nb",
                "Notebook",
                runVolume="home",
                passwordSecretRef={"name": "nb-password", "key": "password"},
            ),
            job("web", "Webserver", runVolume="www", cfgFile="nginx.conf", parallelism=1),
        )
        # 5xx: the operator retries (Events, status messages, kopf's progress annotations).
        wait_for("echoed 502s to reach both objects", lambda: shown(502, "nb", "web"), 90)
        # 400: a refusal.
        emulator.set_faults({"*": {"echo_rate": 1, "echo_status": 400}})
        kube.apply(ns, job("batch", "JuliaBatch", runVolume="v", startScript="run.jl"))
        wait_for("an echoed 400 to reach the new object", lambda: shown(400, "batch"), 90)
        # JuliaRun recovers: the jobs run; then it fails again while they do (the status sync).
        emulator.clear_faults()
        wait_for("the notebook to run", lambda: kube.status(ns, "nb").get("phase") == "Running", 90)
        emulator.set_faults({"*": {"echo_rate": 1, "echo_status": 503}})
        wait_for(
            "the sync to see JuliaRun fail", lambda: "HTTP 503" in operator.text() or shown(503, "nb"), 60
        )
        objects = json.dumps([kube.get(ns, n) for n in ("nb", "web", "batch")])
        emulator.clear_faults()
        metrics = operator.metrics()
        for name in ("nb", "web", "batch"):
            control_plane.kubectl("delete", "jrj", name, "-n", ns, "--timeout=60s")
    finally:
        try:
            emulator.clear_faults()
            kube.clean_up(ns)
        finally:
            operator.kill(signal.SIGTERM)
            emulator.kill(signal.SIGTERM)

    seen = {
        "operator log": operator.text(),
        "events": control_plane.kubectl("get", "events", "-n", ns, "-o", "json").stdout,
        "objects (status, annotations)": objects,
        "metrics": metrics,
    }
    for what, text in seen.items():
        assert not leaks(text), f"{what} carries {leaks(text)}"
    # The control: the echoed request line itself reached them, scrubbed.
    assert "jruntok=REDACTED" in seen["operator log"] + seen["events"] + seen["objects (status, annotations)"]
