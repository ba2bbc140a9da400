"""The API server's cost per write of a JuliaRunJob, and each part of the CRD's share of it.

One fresh local control plane (devcluster). The shipped CRD (crds/) is installed several
times, each copy its own resource (group <variant>.cost.juliarun.dev), with parts of its
validation taken out:

- shipped: the CRD as it is;
- without <group>: one group of CEL rules removed (quantity, params-size, transitions,
  by-type, observe, other: see RULE_GROUPS);
- compare-<file>: another version of the CRD (--compare), as it is;
- no-cel: every CEL rule removed, the OpenAPI schema kept;
- schemaless: no schema at all (x-kubernetes-preserve-unknown-fields), status subresource kept.

For each variant, the same --clients threads write --objects objects three ways: creates,
spec updates (a merge patch of spec.parallelism) and status updates (the status the operator
ends with, status subresource). Measured: the API server's and etcd's CPU seconds (from
/proc) per 1,000 writes, and the wall time. Variants run in a rotating order, --rounds times;
the medians are reported. On two shared cores wall time moves with everything else that runs;
CPU per write moves much less, which is why it is the headline.

    MALLOC_ARENA_MAX=2 .venv/bin/python bench/write_cost.py [--objects 2000] [--clients 8] [--rounds 3]

Writes bench/results-write-cost.json (and prints a Markdown table).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from run import ROOT, VERSION, Cluster, cpu_seconds, final_status, job, log, machine, names, wait_for

from juliarun_dev import devcluster

KIND_PLURAL = "juliarunjobs"


def _is_quantity(rule: str) -> bool:
    return "matches(" in rule


def _is_params_size(rule: str) -> bool:
    return ".size()" in rule


def _is_transition(rule: str) -> bool:
    return "oldSelf" in rule


def _is_by_type(rule: str) -> bool:
    """What a job type requires or refuses: one rule per type, or (before) one per field."""
    return rule.startswith(("!(self.type == '", "self.type != '")) or " || self.type in [" in rule


def _is_observe(rule: str) -> bool:
    return "managementPolicy" in rule and not _is_by_type(rule)


# The first matching group names a rule; "other" takes the rest.
RULE_GROUPS: dict[str, Callable[[str], bool]] = {
    "quantity": _is_quantity,
    "params-size": _is_params_size,
    "transitions": _is_transition,
    "by-type": _is_by_type,
    "observe": _is_observe,
}


def group_of(rule: str) -> str:
    return next((g for g, match in RULE_GROUPS.items() if match(rule)), "other")


def _schemas(node: Any) -> Iterator[dict]:
    """Every schema object under `node`, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def rules_by_group(crd: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for schema in _schemas(crd["spec"]["versions"]):
        for rule in schema.get("x-kubernetes-validations") or []:
            counts[group_of(rule["rule"])] = counts.get(group_of(rule["rule"]), 0) + 1
    return counts


def variant(crd: dict, name: str, keep: Callable[[str], bool] | None, schemaless: bool = False) -> dict:
    """A copy of the CRD as its own resource, keeping only the CEL rules `keep` accepts."""
    out = copy.deepcopy(crd)
    group = f"{name}.cost.juliarun.dev"
    out["metadata"] = {"name": f"{KIND_PLURAL}.{group}"}
    out["spec"]["group"] = group
    out["spec"]["names"].pop("shortNames", None)
    out["spec"]["names"].pop("categories", None)
    for version in out["spec"]["versions"]:
        if schemaless:
            version["schema"] = {
                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            }
            version.pop("additionalPrinterColumns", None)
            version.pop("selectableFields", None)
            continue
        for schema in _schemas(version["schema"]):
            rules = schema.get("x-kubernetes-validations")
            if rules is None:
                continue
            kept = [r for r in rules if keep is not None and keep(r["rule"])]
            if kept:
                schema["x-kubernetes-validations"] = kept
            else:
                del schema["x-kubernetes-validations"]
    return out


def variants(crd: dict) -> dict[str, dict]:
    present = rules_by_group(crd)
    out = {"shipped": variant(crd, "shipped", keep=lambda r: True)}
    for g in [*RULE_GROUPS, "other"]:
        if present.get(g):
            out[f"without-{g}"] = variant(crd, f"without-{g}", keep=lambda r, g=g: group_of(r) != g)
    out["no-cel"] = variant(crd, "no-cel", keep=None)
    out["schemaless"] = variant(crd, "schemaless", keep=None, schemaless=True)
    return out


def timed(cluster: Cluster, clients: int, items: list[str], write: Callable[[str], object]) -> dict:
    cpu0 = cpu_seconds(cluster.info.apiserver_pid), cpu_seconds(cluster.info.etcd_pid)
    t0 = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(write, items))
    wall = time.monotonic() - t0
    api = cpu_seconds(cluster.info.apiserver_pid) - cpu0[0]
    etcd = cpu_seconds(cluster.info.etcd_pid) - cpu0[1]
    per_k = 1000 / len(items)
    return {
        "wall_s": round(wall, 2),
        "apiserver_cpu_ms_per_write": round(api * per_k, 3),
        "etcd_cpu_ms_per_write": round(etcd * per_k, 3),
    }


def measure(cluster: Cluster, crd: dict, n: int, clients: int, label: str) -> dict:
    group = crd["spec"]["group"]
    ns = cluster.namespace(f"cost-{label}")
    custom = cluster.custom
    items = names(n)

    def create(name: str) -> object:
        body = job(name) | {"apiVersion": f"{group}/{VERSION}"}
        return custom.create_namespaced_custom_object(group, VERSION, ns, KIND_PLURAL, body)

    def update_spec(name: str) -> object:
        return custom.patch_namespaced_custom_object(
            group, VERSION, ns, KIND_PLURAL, name, {"spec": {"parallelism": 2}}
        )

    def update_status(name: str) -> object:
        return custom.patch_namespaced_custom_object_status(
            group, VERSION, ns, KIND_PLURAL, name, {"status": final_status(ns, name)}
        )

    out = {
        "create": timed(cluster, clients, items, create),
        "spec_update": timed(cluster, clients, items, update_spec),
        "status_update": timed(cluster, clients, items, update_status),
    }
    custom.delete_collection_namespaced_custom_object(group, VERSION, ns, KIND_PLURAL)
    cluster.core.delete_namespace(ns)
    return out


def medians(rounds: list[dict]) -> dict:
    return {
        op: {k: round(statistics.median(r[op][k] for r in rounds), 3) for k in rounds[0][op]}
        for op in rounds[0]
    }


def table(results: dict[str, dict]) -> str:
    base = results["shipped"]
    lines = [
        "| variant | create ms/write | spec update ms/write | status update ms/write | "
        "create / spec / status wall s |",
        "|---|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        cells = []
        for op in ("create", "spec_update", "status_update"):
            ms = r[op]["apiserver_cpu_ms_per_write"] + r[op]["etcd_cpu_ms_per_write"]
            shipped = base[op]["apiserver_cpu_ms_per_write"] + base[op]["etcd_cpu_ms_per_write"]
            cells.append(f"{ms:.2f}" + ("" if name == "shipped" else f" ({ms - shipped:+.2f})"))
        walls = " / ".join(f"{r[op]['wall_s']:.1f}" for op in ("create", "spec_update", "status_update"))
        lines.append(f"| {name} | {' | '.join(cells)} | {walls} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=2000, help="objects per variant and round")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        help="another version of the CRD (a file), measured beside these as variant compare-<file stem>",
    )
    parser.add_argument("--only", default="", help="comma-separated variants to run (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-write-cost.json")
    args = parser.parse_args()
    crd = yaml.safe_load((ROOT / "crds" / f"juliarun.dev_{KIND_PLURAL}.yaml").read_text())
    todo = variants(crd)
    for path in args.compare:
        name = f"compare-{path.stem.replace('_', '-').replace('.', '-')}".lower()
        todo[name] = variant(yaml.safe_load(path.read_text()), name, keep=lambda r: True)
    if args.only:
        todo = {k: v for k, v in todo.items() if k in args.only.split(",") or k == "shipped"}
    workdir = Path(tempfile.mkdtemp(prefix="juliarun-write-cost-"))
    log(f"logs in {workdir}; rules by group: {rules_by_group(crd)}")
    info = devcluster.up(state_dir=workdir / "cluster")
    report: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    report["rules_by_group"] = rules_by_group(crd)
    try:
        cluster = Cluster(info)
        for body in todo.values():
            cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
        for body in todo.values():
            wait_for(
                f"{body['metadata']['name']} served",
                lambda b=body: (
                    cluster.kubectl("get", "-A", b["metadata"]["name"]) is not None
                ),  # raises until served
                30,
            )
        measure(cluster, todo["shipped"], 500, args.clients, "warm-up")  # a fresh API server is slow at first
        per_variant: dict[str, list[dict]] = {name: [] for name in todo}
        order = list(todo)
        for r in range(args.rounds):
            for name in order[r % len(order) :] + order[: r % len(order)]:
                result = measure(cluster, todo[name], args.objects, args.clients, f"{name}-{r}")
                log(f"round {r} {name}: {result}")
                per_variant[name].append(result)
        report["results"] = {name: medians(rounds) for name, rounds in per_variant.items()}
        report["rounds"] = per_variant
    finally:
        devcluster.down(state_dir=workdir / "cluster")
    args.out.write_text(json.dumps(report, indent=1))
    print(table(report["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
