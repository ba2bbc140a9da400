"""A whole operator run against a JuliaRun that answers with error pages echoing the request
line (token and notebook password in it, as aiohttp does for an over-long request line):
neither secret, in any encoding, reaches a log line (text and JSON formats), Event, status
field, annotation or metric; nor with a ServiceAccount-like token and tenant passwords
overlapping its start (the attack review's `jruntok=ZXlK`, and a piece of its base64)."""

from __future__ import annotations

import base64
import json
import re
import signal
import time
from typing import NamedTuple
from urllib.parse import quote, quote_plus

import pytest

from harness import TOKEN, Emulator, Kube, Operator, apply_crds, job, wait_for

pytestmark = pytest.mark.integration
# base64 with "+", "/" and padding; no URL syntax (a tenant's password may not have any)
PASSWORD = "nb-pa55ÿé>word"
# A ServiceAccount token's shape: every JWT's base64 starts with ZXlK ("eyJ").
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6b3BzOmpyIn0.c2lnbmF0dXJl"
JWT_B64 = base64.b64encode(JWT.encode()).decode()


class Case(NamedTuple):
    token: str
    password: str  # the notebook's, sent (and echoed)
    refused: str  # another notebook's, which the operator must refuse before sending ("": none)
    log_format: str


CASES = {
    "text log": Case(TOKEN, PASSWORD, "", "text"),
    # The password starts as the token's base64 does; the refused one is the review's
    # reproduction, which ran from the parameter's name into the token's base64.
    "JSON log, passwords overlapping the token": Case(JWT, JWT_B64[:16], "jruntok=" + JWT_B64[:4], "json"),
}


def forms(secret: str) -> list[str]:
    """Every form a secret may take in a message: as it is, base64 (standard and URL-safe,
    with and without padding), each of those URL-encoded (+ or %20; escapes in either case)."""
    raw = secret.encode()
    std, safe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    bases = {secret, std, std.rstrip("="), safe, safe.rstrip("=")}
    out = set()
    for b in bases:
        quoted = quote(b, safe="")
        lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted)
        out |= {b, quote_plus(b), quoted, lower, quoted.lower()}
    return sorted(out)


def leaks(text: str, *secrets: str) -> list[str]:
    return [f for secret in secrets for f in forms(secret) if f in text]


def setup_stack(control_plane, tmp_path, prefix: str, *emulator_flags: str):
    apply_crds(control_plane)
    kube = Kube(control_plane)
    ns = kube.namespace(f"{prefix}-{int(time.time()) % 100000}")
    emulator = Emulator(tmp_path, "--create-delay", "0.2", "--worker-delay", "0.1", *emulator_flags)
    emulator.start()
    return kube, ns, emulator


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_echoed_request_lines_leak_no_secret(control_plane, tmp_path, case):
    kube, ns, emulator = setup_stack(control_plane, tmp_path, "leak", "--run-time", "0")
    # From the first call on, every answer is an error page with the request line in it.
    emulator.set_faults({"*": {"echo_rate": 1, "echo_status": 502}})
    operator = Operator(
        tmp_path, control_plane.kubeconfig, emulator, "--log-format", case.log_format, watch=[ns]
    )
    operator.env["JULIARUN_TOKEN"] = case.token
    operator.start()
    secrets = [case.token, case.password, *([case.refused] if case.refused else [])]

    def shown(status: int, *names: str) -> bool:
        """The echoed error reached each object: in its Events, status or the operator's log."""
        text = f"HTTP {status}"
        return all(
            text in json.dumps(kube.events(ns, n))
            or text in json.dumps(kube.get(ns, n))
            or (text in operator.text() and n in operator.text())
            for n in names
        )

    def notebook(name: str, password: str) -> list[dict]:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": f"{name}-password", "labels": {"juliarun.dev/credentials": "true"}},
            "stringData": {"password": password},
        }
        ref = {"name": f"{name}-password", "key": "password"}
        return [secret, job(name, "Notebook", runVolume="home", passwordSecretRef=ref)]

    names = ["nb", "web", "batch", *(["nb-refused"] if case.refused else [])]
    try:
        kube.apply(
            ns,
            *notebook("nb", case.password),
            *(notebook("nb-refused", case.refused) if case.refused else []),
            job("web", "Webserver", runVolume="www", cfgFile="nginx.conf", parallelism=1),
        )
        # 5xx: the operator retries (Events, status messages, kopf's progress annotations).
        wait_for("echoed 502s to reach both objects", lambda: shown(502, "nb", "web"), 90)
        if case.refused:  # refused before anything is sent, saying why without the value
            stalled = wait_for(
                "the overlapping password refused",
                lambda: (
                    (c := kube.condition(ns, "nb-refused", "Stalled")).get("reason") == "InvalidSpec" and c
                ),
                30,
            )
            assert "URL syntax" in stalled["message"], stalled
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
        objects = json.dumps([kube.get(ns, n) for n in names])
        emulator.clear_faults()
        metrics = operator.metrics()
        for name in names:
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
        assert not leaks(text, *secrets), f"{what} carries {leaks(text, *secrets)}"
    if case.log_format == "json":  # every line of the log is a JSON record
        records = [json.loads(line) for line in operator.text().splitlines() if line.startswith("{")]
        assert len(records) > 10
    # The control: the echoed request line itself reached them, scrubbed.
    assert "jruntok=REDACTED" in seen["operator log"] + seen["events"] + seen["objects (status, annotations)"]
