"""`kubectl juliarun`: the kubectl plugin (an executable named kubectl-juliarun on PATH).

    kubectl juliarun logs NAME [-n NAMESPACE] [--count N] [--stream stdout|stderr] [--attempt N]
    kubectl juliarun attempts NAME [-n NAMESPACE] [-o json]

`logs` tails the JuliaRun job behind the JuliaRunJob NAME (its current attempt, or attempt
N), with kubectl's way of naming namespaces; once that job is gone from JuliaRun (suspend or
a deadline deleted it) it prints the last lines the operator kept in the resource's status.
`attempts` lists a batch job's attempts: each one's JuliaRun job and how it ended.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import cli


def attempts(args: argparse.Namespace) -> int:
    from . import resources  # the kubernetes client: only when asked
    from .juliarun import JuliaRunError

    try:
        obj, _ = resources.load(args.name, args.namespace, args.kubeconfig)
    except JuliaRunError as exc:
        print(f"kubectl juliarun: {exc}", file=sys.stderr)
        return 1
    rows = resources.attempts(obj)
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"{args.name}: no attempt yet")
        return 0
    table = [["ATTEMPT", "JOB", "RESULT", "ENDED", "MESSAGE"]]
    table += [
        [
            str(r.get("attempt", "")),
            r.get("jobName", ""),
            r.get("result", ""),
            r.get("endTime", ""),
            r.get("message", ""),
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("   ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "   " + row[4])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubectl juliarun", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    logs = sub.add_parser("logs", help="tail the JuliaRun job of a JuliaRunJob")
    logs.add_argument("name", help="the JuliaRunJob")
    logs.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig's)")
    logs.add_argument("--count", "-c", type=int, default=50)
    logs.add_argument("--stream", choices=["stdout", "stderr"])
    logs.add_argument("--attempt", type=int, help="this attempt's JuliaRun job (default: the current one)")
    logs.add_argument("--kubeconfig")
    listed = sub.add_parser("attempts", help="list a batch JuliaRunJob's attempts and how each ended")
    listed.add_argument("name", help="the JuliaRunJob")
    listed.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig's)")
    listed.add_argument("-o", "--output", choices=["table", "json"], default="table")
    listed.add_argument("--kubeconfig")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    if args.command == "attempts":
        return attempts(args)
    forwarded = ["logs", "--resource", args.name, "--count", str(args.count)]
    for flag, value in (
        ("--kube-namespace", args.namespace),
        ("--stream", args.stream),
        ("--attempt", None if args.attempt is None else str(args.attempt)),
        ("--kubeconfig", args.kubeconfig),
    ):
        if value:
            forwarded += [flag, value]
    return cli.main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
