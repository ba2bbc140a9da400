"""The operator's memory under what tenants control: many large labelled Secrets their objects
name, and the largest specs the CRD admits.

One fresh local control plane and JuliaRun emulator (bench/run.py's Env) and one operator as
the chart runs it (run.py's OperatorProc: a Lease, the chart's sync interval). In one
namespace, phase by phase, the operator's VmHWM (peak) and VmRSS from /proc:

1. idle: nothing to watch yet;
2. secrets: --secrets Secrets labelled juliarun.dev/credentials=true, each of about 0.9 MiB
   (a notebook password and 14 more keys of 64 KiB the operator is never asked for), a
   Notebook naming each (passwordSecretRef), and --oversized Secrets whose password alone is
   900 KiB (over the per-value cap: refused) with a Notebook each; until every Notebook is
   Ready or refused;
3. specs: --specs JuliaParBatch objects with the largest spec the CRD admits (text
   parameters 5,120 characters together, every list at its maxItems, every value at its
   maxLength), which the operator refuses before sending (the request line would be too
   long); until every one is refused;
4. resync: --hold seconds more, the Secrets read again after their TTL (60 s);
5. deleted: everything deleted, the operator's RSS after.

    .venv/bin/python bench/memory.py [--secrets 100] [--oversized 20] [--specs 300] [--bound 400]

Writes bench/results-memory.json (and prints it); exits 1 if the peak passes --bound MiB,
the figure docs/install.md states.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from run import GROUP, JRUN_NS, PLURAL, ROOT, VERSION, Env, OperatorProc, log, machine, memory_mb, wait_for

from juliarun_dev.gen.spec import item_overhead
from juliarun_operator.juliarun import jobtypes as jt

KIB = 1024
FILLER_KEYS = 14  # keys of 64 KiB in each Secret besides the password: ~0.9 MiB a Secret
NS = "tenant"


def secret(name: str, password: str, filler: int = FILLER_KEYS) -> dict:
    data = {"password": base64.b64encode(password.encode()).decode()}
    for k in range(filler):
        data[f"blob-{k:02d}"] = base64.b64encode(bytes([65 + k % 26]) * (64 * KIB)).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"juliarun.dev/credentials": "true"}},
        "data": data,
    }


def notebook(name: str, secret_name: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "JuliaRunJob",
        "metadata": {"name": name},
        "spec": {
            "type": "Notebook",
            "runVolume": "home",
            "passwordSecretRef": {"name": secret_name, "key": "password"},
        },
    }


def largest(name: str, i: int) -> dict:
    """About the largest spec the CRD admits, in the operator's memory: its 5,120 characters of
    parameters (each list item counted with its quotes and separators as sent) spent on the
    items that cost Python the most per character, environment variables and ports."""
    env_item, port_item = item_overhead(jt.ENV), item_overhead(jt.PORTS)

    def env(prefix: str) -> list[dict]:
        return [{"name": f"{prefix}{k}", "value": ""} for k in range(64)]

    spec = {
        "type": "JuliaParBatch",
        "runVolume": "v",
        "startScript": "s",
        "envVars": env("E"),
        "workerEnvVars": env("W"),
    }
    spent = 2 + sum(len(v["name"]) + env_item for v in spec["envVars"] + spec["workerEnvVars"])
    ports: list[dict] = []
    while spent + len(f"P{len(ports)}") + port_item <= 5120:
        spent += len(f"P{len(ports)}") + port_item
        ports.append(
            {"name": f"P{len(ports)}", "containerPort": 10000 + len(ports), "servicePort": 10000 + len(ports)}
        )
    spec["ports"] = ports
    spec["runVolume"] += f"{i:05d}"[: 5120 - spent]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "JuliaRunJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def conditions(obj: dict) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c["status"], c.get("reason", ""))
        for c in (obj.get("status") or {}).get("conditions") or []
    }


def settled(env: Env, prefix: str, count: int) -> dict[str, int]:
    """How the objects named `prefix`* stand, once each is Ready or stalled (None until then)."""
    items = env.cluster.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"]
    mine = [o for o in items if o["metadata"]["name"].startswith(prefix)]
    out: dict[str, int] = {}
    for o in mine:
        c = conditions(o)
        state = "Ready" if c.get("Ready", ("", ""))[0] == "True" else c.get("Stalled", ("", ""))[1]
        if not state or state == "Healthy":
            return {}
        out[state] = out.get(state, 0) + 1
    return out if len(mine) == count else {}


def phase(op: OperatorProc, name: str, started: float, results: dict, **extra: object) -> None:
    mem = memory_mb(op.proc.pid)
    results["phases"].append({"phase": name, "seconds": round(time.monotonic() - started, 1), **mem, **extra})
    log(f"{name}: {mem} {extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--secrets", type=int, default=100, help="labelled Secrets of ~0.9 MiB, one Notebook each"
    )
    parser.add_argument("--oversized", type=int, default=20, help="Secrets whose password is 900 KiB")
    parser.add_argument("--specs", type=int, default=300, help="objects with the largest admitted spec")
    parser.add_argument(
        "--hold", type=float, default=70.0, help="seconds after the last phase (TTL re-reads)"
    )
    parser.add_argument("--bound", type=float, default=400.0, help="MiB the peak must stay under")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-memory.json")
    args = parser.parse_args()

    results: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "phases": []}
    with tempfile.TemporaryDirectory(prefix="jr-bench-memory-") as tmp:
        env = Env(Path(tmp), interval=10.0)
        op = None
        try:
            env.cluster.namespace(NS)
            op = OperatorProc(env, NS, 16, JRUN_NS)
            started = time.monotonic()
            phase(op, "idle", started, results)

            core, custom = env.cluster.core, env.cluster.custom
            pool = ThreadPoolExecutor(8)
            secrets = [secret(f"s-{i:04d}", f"nb-pw-{i:04d}-Zq9!x") for i in range(args.secrets)]
            secrets += [secret(f"big-{i:04d}", "Zq9!" * (225 * KIB), filler=0) for i in range(args.oversized)]
            list(pool.map(lambda s: core.create_namespaced_secret(NS, s), secrets))
            books = [notebook(f"nb-{s['metadata']['name']}", s["metadata"]["name"]) for s in secrets]
            list(
                pool.map(
                    lambda b: custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, b), books
                )
            )
            counts = wait_for(
                "every Notebook Ready or refused", lambda: settled(env, "nb-", len(books)), 600, 2.0
            )
            size = sum(len(json.dumps(s)) for s in secrets)
            phase(op, "secrets", started, results, objects=counts, secret_bytes=size)

            bodies = [largest(f"big-spec-{i:05d}", i) for i in range(args.specs)]
            list(
                pool.map(
                    lambda b: custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, b), bodies
                )
            )
            counts = wait_for(
                "every large spec refused", lambda: settled(env, "big-spec-", len(bodies)), 600, 2.0
            )
            spec_bytes = len(json.dumps(bodies[0]["spec"]))
            phase(op, "specs", started, results, objects=counts, spec_bytes_each=spec_bytes)

            time.sleep(args.hold)  # the Secrets' TTL passes: each is read again
            phase(op, "resync", started, results)

            env.cluster.kubectl("delete", "jrj", "--all", "-n", NS, "--wait=false")
            wait_for(
                "every object gone",
                lambda: not custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"],
                600,
                2.0,
            )
            env.cluster.kubectl("delete", "secret", "--all", "-n", NS)
            time.sleep(5)
            phase(op, "deleted", started, results)
        finally:
            if op is not None:
                op.proc.terminate()
                op.proc.wait(timeout=30)
            env.close()

    peak = max(p["VmHWM"] for p in results["phases"])
    results["peak_mib"], results["bound_mib"], results["held"] = peak, args.bound, peak < args.bound
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    log(f"peak VmHWM {peak} MiB; bound {args.bound:g} MiB: {'held' if peak < args.bound else 'PASSED'}")
    return 0 if peak < args.bound else 1


if __name__ == "__main__":
    sys.exit(main())
