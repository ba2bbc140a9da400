"""`kubectl juliarun`: the kubectl plugin (an executable named kubectl-juliarun on PATH).

    kubectl juliarun logs NAME [-n NAMESPACE] [--count N] [--stream stdout|stderr] [--attempt N]
    kubectl juliarun attempts NAME [-n NAMESPACE] [-o table|json]

`logs` tails the JuliaRun job behind the JuliaRunJob NAME (its current attempt, or attempt
N). It needs JuliaRun credentials: the JuliaRunJob's credentialsRef Secret, if you may read
it, or JULIARUN_URL, JULIARUN_TOKEN (or JULIARUN_TOKEN_FILE) and JULIARUN_NAMESPACE. With
only kubectl access, or once the job is gone from JuliaRun (suspend or a deadline deleted
it), it prints the last lines the operator kept in the resource's status (status.lastLogs:
the latest attempt that ended), and says so on stderr.
`attempts` lists a batch job's attempts: each one's JuliaRun job and how it ended; it needs
only kubectl access.

Errors are one line on stderr, `error: ...` (as kubectl's), exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from .juliarun import JuliaRunError
from .juliarun.redact import redact

# What `logs` needs to reach JuliaRun without a credentialsRef.
CREDENTIAL_VARIABLES = ("JULIARUN_URL", "JULIARUN_TOKEN or JULIARUN_TOKEN_FILE", "JULIARUN_NAMESPACE")
EPILOG = """examples:
  kubectl juliarun logs train --count 20          # the job of JuliaRunJob train, kubeconfig's namespace
  kubectl juliarun logs train -n team-a --attempt 1
  kubectl juliarun attempts train -o json
"""


def missing_credentials(env: Mapping[str, str]) -> list[str]:
    """The JULIARUN_* settings `logs` lacks to reach JuliaRun itself (none: it can)."""
    have = {
        "JULIARUN_URL": bool(env.get("JULIARUN_URL")),
        CREDENTIAL_VARIABLES[1]: bool(env.get("JULIARUN_TOKEN") or env.get("JULIARUN_TOKEN_FILE")),
        "JULIARUN_NAMESPACE": bool(env.get("JULIARUN_NAMESPACE")),
    }
    return [name for name in CREDENTIAL_VARIABLES if not have[name]]


def last_lines(text: str, count: int) -> str:
    lines = text.splitlines()
    return "\n".join(lines[-count:]) + "\n" if lines and count > 0 else ""


def logs(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from . import resources  # the kubernetes client: only when asked
    from .juliarun import ApiError, Client, Context

    obj, namespace = resources.load(args.name, args.namespace, args.kubeconfig)
    target = resources.target(obj, namespace, args.attempt)
    where = f'juliarunjob "{args.name}" in namespace "{namespace}"'
    context, why_not = resources.connection(obj, namespace)
    if context is None and why_not is None:  # the operator's default connection: the user's own
        missing = missing_credentials(env)
        if missing:
            why_not = f"no JuliaRun credentials ({', '.join(missing)} not set)"
        else:
            context = Context.from_env(env)
    if context is None:
        if not target.kept:
            raise JuliaRunError(
                f"{why_not}, and the operator has kept no log lines of {where} yet "
                "(status.lastLogs is written when an attempt ends)"
            )
        print(f"# {why_not}: the last lines the operator kept (status.lastLogs)", file=sys.stderr)
        sys.stdout.write(last_lines(target.kept, args.count))
        return 0
    client = Client(context)
    try:
        text = client.tail_job(target.job, stream=args.stream, count=args.count)
    except ApiError as exc:  # JuliaRun answered: no such job (deleted by suspend or a deadline)
        if not target.kept:
            raise
        note = f"# JuliaRun job {target.job.name}: {exc.reason}; its last lines, as the operator kept them"
        print(note, file=sys.stderr)
        text = last_lines(target.kept, args.count)
    finally:
        client.close()
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def attempts(args: argparse.Namespace) -> int:
    import json

    from . import resources  # the kubernetes client: only when asked

    obj, _ = resources.load(args.name, args.namespace, args.kubeconfig)
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


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl juliarun",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # kubectl's own options, with kubectl's names, for both subcommands.
    kube = argparse.ArgumentParser(add_help=False)
    kube.add_argument(
        "-n", "--namespace", help="the JuliaRunJob's namespace (default: the kubeconfig context's)"
    )
    kube.add_argument("--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    logs_parser = sub.add_parser(
        "logs",
        parents=[kube],
        help="tail the JuliaRun job of a JuliaRunJob (or the lines the operator kept)",
        description=__doc__.split("\n\n")[1],
    )
    logs_parser.add_argument("name", metavar="NAME", help="the JuliaRunJob")
    logs_parser.add_argument(
        "--count", "-c", type=positive, default=50, help="the last COUNT lines (default %(default)s)"
    )
    logs_parser.add_argument(
        "--stream", choices=["stdout", "stderr"], help="only this stream of the job (default: both)"
    )
    logs_parser.add_argument(
        "--attempt", type=positive, help="a batch job's attempt N (default: the current one)"
    )
    listed = sub.add_parser(
        "attempts", parents=[kube], help="list a batch JuliaRunJob's attempts and how each ended"
    )
    listed.add_argument("name", metavar="NAME", help="the JuliaRunJob")
    listed.add_argument(
        "-o", "--output", choices=["table", "json"], default="table", help="output format (default table)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else 1
    try:
        return logs(args, os.environ) if args.command == "logs" else attempts(args)
    except KeyboardInterrupt:
        return 130
    except JuliaRunError as exc:
        return fail(str(exc))
    except Exception as exc:  # the API server or JuliaRun unreachable, a bug: still one line
        return fail(f"{type(exc).__name__}: {exc}")


def fail(message: str) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"error: {redact(first)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
