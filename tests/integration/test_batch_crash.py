"""Crash safety of batch jobs: retries and TTLs under SIGKILL churn.

Batch objects that succeed, fail once, always fail, with and without a TTL, are created in
waves while the operator is SIGKILLed at seeded random moments. Afterwards: every JuliaRun
name got one submitJob (no attempt submitted twice), each object made exactly the attempts
its failures call for, objects past their TTL are gone (none stuck on the finalizer) and
JuliaRun holds no job of a deleted object.
"""

from __future__ import annotations

import json
import random
import signal
import time

import pytest
import yaml

from juliarun_operator.emulator.state import FAIL_ENV

from harness import (
    JRUN_NAMESPACE,
    Emulator,
    Kube,
    Operator,
    apply_crds,
    job,
    namespace_name,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration
SEED = 1212
WAVES = 4
PER_WAVE = 12  # three of each kind below
KILLS = 6
TTL = 4
# kind -> (job variable, backoffLimit, ttl, attempts it makes, how it ends)
KINDS = {
    "ok": ("", 0, TTL, 1, "Complete"),
    "once": ("", 2, TTL, 2, "Complete"),  # a fault rule fails its first attempt
    "bad": ("crash", 2, TTL, 3, "Failed"),
    "kept": ("crash", 1, None, 2, "Failed"),  # no TTL: stays, with both attempts in JuliaRun
}


def batch(name: str, kind: str) -> dict:
    fail, limit, ttl, _, _ = KINDS[kind]
    spec: dict = {"backoffLimit": limit}
    if fail:
        spec["envVars"] = [{"name": FAIL_ENV, "value": fail}]
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return job(name, "JuliaBatch", runVolume="jobs", startScript="run.jl", **spec)


def finished(obj: dict) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return c["type"]
    return ""


@pytest.fixture
def ns(control_plane):
    return Kube(control_plane).namespace(namespace_name("bcrash"))


@pytest.fixture
def stack(control_plane, tmp_path, ns):
    apply_crds(control_plane)
    emulator = Emulator(tmp_path, "--create-delay", "0.3", "--run-time", "3", "--seed", "7")
    operator = Operator(
        tmp_path, control_plane.kubeconfig, emulator, "--submit-landing-window", "5", watch=[ns]
    )
    with running(control_plane, emulator, operator) as stack:
        yield stack


def test_retries_and_ttls_under_sigkill_churn(stack, ns, control_plane):
    emulator, operator, _ = stack
    cp = control_plane
    rng = random.Random(SEED)  # noqa: S311 (seeded test moments, not secrets)
    kinds: dict[str, str] = {}
    for wave in range(WAVES):
        for i in range(PER_WAVE):
            kinds[f"{list(KINDS)[i % 4]}{wave}{i:02d}"] = list(KINDS)[i % 4]
    # One failure for each "once" object's first attempt (its default name starts so).
    emulator.set_faults(
        {
            "jobs": [
                {"match": f"{ns}-{n}-*", "fail": "all", "count": 1} for n, k in kinds.items() if k == "once"
            ]
        }
    )
    names = list(kinds)
    kill_at = set(rng.sample(range(WAVES * 3), KILLS))
    step = 0
    for wave in range(WAVES):
        docs = [batch(n, kinds[n]) for n in names[wave * PER_WAVE : (wave + 1) * PER_WAVE]]
        cp.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))
        for _ in range(3):  # three random moments per wave, some of them a SIGKILL
            time.sleep(rng.uniform(0.3, 2.5))
            if step in kill_at:
                operator.kill(signal.SIGKILL)
                time.sleep(rng.uniform(0.0, 1.5))
                operator.start()
            step += 1

    def settled():
        objs = {
            o["metadata"]["name"]: o
            for o in json.loads(cp.kubectl("get", "jrj", "-n", ns, "-o", "json").stdout)["items"]
        }
        ttl_left = sorted(n for n in objs if KINDS[kinds[n]][2] is not None)
        unfinished = sorted(n for n, o in objs.items() if not finished(o))
        if ttl_left or unfinished:
            return AssertionError(
                f"{len(ttl_left)} objects past TTL still there, e.g. {ttl_left[:3]}; "
                f"{len(unfinished)} not finished, e.g. {unfinished[:3]}"
            )
        return objs

    objs = wait_for("every object finished and past its TTL gone", settled, 240, 2.0)
    per_job = emulator.counters()["jobs"].get(JRUN_NAMESPACE, {})
    submits = {n: c.get("submitJob", 0) for n, c in per_job.items() if c.get("submitJob")}
    twice = {n: c for n, c in submits.items() if c != 1}
    assert not twice, f"attempts submitted more than once: {twice}"
    for name, kind in kinds.items():
        made = sorted(n for n in submits if n.startswith(f"{ns}-{name}-"))
        assert len(made) == KINDS[kind][3], f"{name} ({kind}) made attempts {made}"
    # Kept objects ended as their kind says, with every attempt still in JuliaRun; nothing else is.
    assert set(objs) == {n for n, k in kinds.items() if k == "kept"}
    for obj in objs.values():
        assert finished(obj) == "Failed" and obj["status"]["attempts"] == 2
    left = set(emulator.jobs())
    assert left == {n for n in submits if any(n.startswith(f"{ns}-{o}-") for o in objs)}
    assert operator.proc is not None and operator.proc.poll() is None
