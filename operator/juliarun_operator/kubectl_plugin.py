"""`kubectl juliarun`: the kubectl plugin (an executable named kubectl-juliarun on PATH).

    kubectl juliarun logs NAME [-n NAMESPACE] [--count N] [--stream stdout|stderr]

tails the JuliaRun job behind the JuliaRunJob NAME, with kubectl's way of naming namespaces.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import cli


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
    logs.add_argument("--kubeconfig")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    forwarded = ["logs", "--resource", args.name, "--count", str(args.count)]
    for flag, value in (
        ("--kube-namespace", args.namespace),
        ("--stream", args.stream),
        ("--kubeconfig", args.kubeconfig),
    ):
        if value:
            forwarded += [flag, value]
    return cli.main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
