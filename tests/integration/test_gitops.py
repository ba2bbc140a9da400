"""What GitOps tools make of a JuliaRunJob's status.

- Argo CD: gitops/argocd/health.lua run by a real Lua 5.4 (Argo CD embeds gopher-lua,
  a Lua 5.1; the script keeps to what both have).
- Flux, kpt, cli-utils: kstatus (hack/kstatus, built from sigs.k8s.io/cli-utils).

Both judge the same sample objects, written as the operator writes its status.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from argocd_lua import ACTIONS, HEALTH_LUA, argocd_health, lua_literal, offered, suspend_after

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _condition(ctype: str, status: str, reason: str, message: str, generation: int = 2) -> dict:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def _conditions(ready: tuple, reconciling: tuple, stalled: tuple, generation: int = 2) -> list[dict]:
    return [
        _condition("Ready", *ready, generation),
        _condition("Reconciling", *reconciling, generation),
        _condition("Stalled", *stalled, generation),
    ]


def _stalled(reason: str, message: str) -> list[dict]:
    """The kstatus conditions of an object that failed for good."""
    return _conditions(("False", reason, message), ("False", reason, ""), ("True", reason, message))


def _job(
    name: str, phase: str | None, conditions: list[dict] | None, generation: int = 2, observed: int | None = 2
) -> dict:
    obj = {
        "apiVersion": "juliarun.dev/v1alpha1",
        "kind": "JuliaRunJob",
        "metadata": {"name": name, "namespace": "team-a", "generation": generation},
        "spec": {"type": "JuliaBatch", "runVolume": "jobs", "startScript": "hello.jl"},
    }
    if phase is not None:
        obj["status"] = {"phase": phase, "conditions": conditions or []}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


# name -> (object, Argo CD health, kstatus status). kstatus knows no "suspended": it
# reads a Ready condition that is not True as InProgress, so a paused job (Ready
# Unknown) keeps a Flux Kustomization with `wait: true` waiting (docs/install.md).
SAMPLES = {
    "at-scale": (
        _job(
            "at-scale",
            "Running",
            _conditions(("True", "AtScale", ""), ("False", "AtScale", ""), ("False", "AtScale", "")),
        ),
        "Healthy",
        "Current",
    ),
    "completed": (
        _job(
            "completed",
            "Completed",
            _conditions(("True", "Completed", ""), ("False", "Completed", ""), ("False", "Completed", "")),
        ),
        "Healthy",
        "Current",
    ),
    "scaling": (
        _job(
            "scaling",
            "Running",
            _conditions(
                ("False", "Scaling", "1/2 workers"),
                ("True", "Scaling", "1/2 workers"),
                ("False", "Scaling", ""),
            ),
        ),
        "Progressing",
        "InProgress",
    ),
    "submitting": (
        _job(
            "submitting",
            "Pending",
            _conditions(
                ("False", "Submitting", "submitting"),
                ("True", "Submitting", "submitting"),
                ("False", "Submitting", ""),
            ),
        ),
        "Progressing",
        "InProgress",
    ),
    "juliarun-unavailable": (
        _job(
            "juliarun-unavailable",
            "Running",
            _conditions(
                ("Unknown", "JuliaRunUnavailable", "connection refused"),
                ("True", "WaitingForJuliaRun", "connection refused"),
                ("False", "Retrying", ""),
            ),
        ),
        "Progressing",
        "InProgress",
    ),
    # Ready says True, but for the previous generation: the operator has not caught up.
    "stale-generation": (
        _job(
            "stale-generation",
            "Running",
            _conditions(("True", "AtScale", ""), ("False", "AtScale", ""), ("False", "AtScale", "")),
            generation=3,
            observed=2,
        ),
        "Progressing",
        "InProgress",
    ),
    "job-failed": (
        _job(
            "job-failed",
            "Failed",
            _stalled("JobFailed", "exit code 1"),
        ),
        "Degraded",
        "Failed",
    ),
    "invalid-spec": (
        _job(
            "invalid-spec",
            "Pending",
            _stalled("InvalidSpec", "spec.cpu: too big"),
        ),
        "Degraded",
        "Failed",
    ),
    "paused": (
        _job(
            "paused",
            "Paused",
            _conditions(("Unknown", "Paused", "paused"), ("False", "Paused", ""), ("False", "Paused", "")),
        ),
        "Suspended",
        "InProgress",
    ),
    # Batch jobs: Job's conditions next to the kstatus ones, as the operator writes them.
    "complete": (
        _job(
            "complete",
            "Completed",
            [
                *_conditions(
                    ("True", "Completed", "job completed"),
                    ("False", "Completed", ""),
                    ("False", "Healthy", ""),
                ),
                _condition("Complete", "True", "Completed", "job completed"),
            ],
        ),
        "Healthy",
        "Current",
    ),
    "backoff-limit-exceeded": (
        _job(
            "backoff-limit-exceeded",
            "Failed",
            [
                *_stalled("BackoffLimitExceeded", "attempt 3 failed"),
                _condition("Failed", "True", "BackoffLimitExceeded", "attempt 3 failed"),
            ],
        ),
        "Degraded",
        "Failed",
    ),
    "deadline-exceeded": (
        _job(
            "deadline-exceeded",
            "Failed",
            [
                *_stalled("DeadlineExceeded", "active too long"),
                _condition("Failed", "True", "DeadlineExceeded", "active too long"),
            ],
        ),
        "Degraded",
        "Failed",
    ),
    # Suspended: not done, not failing. kstatus reads the Ready condition that is False as
    # InProgress, as it does for a paused job.
    "suspended": (
        _job(
            "suspended",
            "Suspended",
            [
                *_conditions(
                    ("False", "Suspended", "suspended"),
                    ("False", "Suspended", ""),
                    ("False", "Suspended", ""),
                ),
                _condition("Suspended", "True", "Suspended", "suspended"),
            ],
        ),
        "Suspended",
        "InProgress",
    ),
    # Not yet seen by the operator: Argo CD waits; kstatus has nothing to go on and says Current.
    "no-status": (_job("no-status", None, None), "Progressing", None),
}


# --- Argo CD: health.lua in a real Lua -----------------------------------------------------


def test_lua_literal_round_trip(lua, tmp_path):
    data = {"a": [1, "two", {"x": 'q"uote\\ and\nnewline'}], "b": True, "c": None}
    driver = tmp_path / "rt.lua"
    driver.write_text(
        f"local t = {lua_literal(data)}\n"
        "io.write(t.a[1], '|', t.a[2], '|', t.a[3].x, '|', tostring(t.b), '|', tostring(t.c))\n"
    )
    out = subprocess.run([lua, str(driver)], capture_output=True, text=True, check=True).stdout
    assert out == '1|two|q"uote\\ and\nnewline|true|nil'


@pytest.mark.parametrize("name", SAMPLES)
def test_argocd_health(lua, tmp_path, name):
    obj, expected, _ = SAMPLES[name]
    status, message = argocd_health(lua, obj, tmp_path)
    assert status == expected, f"{name}: {status} ({message})"
    assert message, f"{name}: no message"


def test_argocd_health_messages(lua, tmp_path):
    """The message says why: the Stalled message for a failure, the generation when behind."""
    assert argocd_health(lua, SAMPLES["job-failed"][0], tmp_path)[1] == "exit code 1"
    assert "generation 3" in argocd_health(lua, SAMPLES["stale-generation"][0], tmp_path)[1]
    assert argocd_health(lua, SAMPLES["scaling"][0], tmp_path)[1] == "1/2 workers"


@pytest.mark.parametrize(
    "name, suspend, wanted",
    [
        ("at-scale", None, {"suspend"}),  # a running batch job
        ("suspended", True, {"resume"}),
        ("complete", None, set()),  # ended: nothing to suspend
        ("backoff-limit-exceeded", None, set()),
    ],
)
def test_argocd_actions_offered(lua, tmp_path, name, suspend, wanted):
    obj = copy.deepcopy(SAMPLES[name][0])
    if suspend is not None:
        obj["spec"]["suspend"] = suspend
    assert offered(lua, obj, tmp_path) == wanted


def test_argocd_actions_not_offered_on_services(lua, tmp_path):
    obj = copy.deepcopy(SAMPLES["at-scale"][0])
    obj["spec"] = {"type": "Webserver", "runVolume": "w", "cfgFile": "c"}
    assert offered(lua, obj, tmp_path) == set()


@pytest.mark.parametrize("action, value", [("suspend", "true"), ("resume", "false")])
def test_argocd_actions_set_spec_suspend(lua, tmp_path, action, value):
    obj = copy.deepcopy(SAMPLES["at-scale"][0])
    # The rest of the object is left as it was.
    assert suspend_after(lua, obj, tmp_path, ACTIONS / f"{action}.lua") == f"{value}|hello.jl"


def test_argocd_cm_patch_carries_the_current_actions():
    cm = yaml.safe_load((REPO / "gitops" / "argocd" / "argocd-cm-patch.yaml").read_text())
    actions = yaml.safe_load(cm["data"]["resource.customizations.actions.juliarun.dev_JuliaRunJob"])
    assert actions["discovery.lua"] == (ACTIONS / "discovery.lua").read_text()
    assert {d["name"]: d["action.lua"] for d in actions["definitions"]} == {
        n: (ACTIONS / f"{n}.lua").read_text() for n in ("suspend", "resume")
    }


def test_argocd_cm_patch_carries_the_current_health_check():
    # (The chart's copy: tests/integration/test_chart.py.)
    cm = yaml.safe_load((REPO / "gitops" / "argocd" / "argocd-cm-patch.yaml").read_text())
    key = "resource.customizations.health.juliarun.dev_JuliaRunJob"
    assert cm["data"][key].strip() == HEALTH_LUA.read_text().strip(), (
        "gitops/argocd/argocd-cm-patch.yaml does not carry the current health.lua"
    )


# --- Flux and friends: kstatus ------------------------------------------------------------


@pytest.fixture(scope="session")
def kstatus() -> Path:
    """hack/kstatus built through the Go module proxy (cached by source hash)."""
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "kstatus" / "build.sh")], stdout=subprocess.PIPE, text=True, timeout=900
    )
    assert result.returncode == 0, "hack/kstatus/build.sh failed (see its output above)"
    return Path(result.stdout.strip().splitlines()[-1])


def test_kstatus(kstatus):
    named = {name: s for name, s in SAMPLES.items() if s[2] is not None}
    stream = yaml.safe_dump_all([obj for obj, _, _ in named.values()])
    result = subprocess.run([str(kstatus)], input=stream, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    got = {}
    for line in result.stdout.splitlines():
        ref, status, _message = line.split("\t")
        got[ref.rsplit("/", 1)[1]] = status
    assert got == {name: s[2] for name, s in named.items()}


def test_kstatus_reads_files_and_reports_errors(kstatus, tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(SAMPLES["job-failed"][0]))
    ok = subprocess.run([str(kstatus), str(path)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("JuliaRunJob/team-a/job-failed\tFailed\texit code 1")
    bad = subprocess.run([str(kstatus), str(tmp_path / "missing.yaml")], capture_output=True, text=True)
    assert bad.returncode == 1 and "missing.yaml" in bad.stderr
