"""The parsers of the JuliaRun commands and `types`, and the options they share."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from ..juliarun import JOB_TYPES
from ..output import FORMATS
from .commands import (
    cmd_delete,
    cmd_endpoint,
    cmd_import,
    cmd_jobs,
    cmd_logs,
    cmd_scale,
    cmd_status,
    cmd_submit,
    cmd_system,
    cmd_types,
    cmd_update,
    cmd_url,
)

if TYPE_CHECKING:  # generic in typeshed only, not at run time
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


EPILOG_PARAMS = """\
PARAM=VALUE: a parameter of the job type (see `juliarun types TYPE`). Text parameters
(scripts, image, memory, restart, passwd) take the text as it is; the others take YAML
flow syntax:
  cpu=0.5  nworkers=4  external=true  memory=4Gi  image=julia:1.10
  additional_volumes=[data, scratch]  ports={http: [8080, 80]}  envvars={DEBUG: 1}
"""


class VersionAction(argparse.Action):
    """--version, reading the installed version only when asked (importlib.metadata)."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str = argparse.SUPPRESS,
        default: Any = argparse.SUPPRESS,
        help: str = "show the version and exit",
    ) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from .. import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


def output_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="output format (default: table)"
    )
    return parent


def job_argument() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("name", metavar="NAME", help="the job's name")
    parent.add_argument(
        "--type",
        "-t",
        choices=list(JOB_TYPES),
        metavar="TYPE",
        help="the job's type (default: looked up by name)",
    )
    return parent


def add_juliarun_commands(sub: SubParsers, conn: argparse.ArgumentParser) -> None:
    out, named = output_option(), job_argument()

    def add(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        parents: Sequence[argparse.ArgumentParser] = (),
        epilog: str | None = None,
        **kwargs: Any,
    ) -> argparse.ArgumentParser:
        parser = sub.add_parser(
            name,
            parents=[*parents, conn],
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )
        parser.set_defaults(func=func)
        return parser

    add(
        "system",
        cmd_system,
        "show whether JuliaRun is ready (exit status 1 if not)",
        [out],
        epilog="example:\n  juliarun system -o json",
    )

    jobs = add(
        "jobs",
        cmd_jobs,
        "list the jobs in the namespace",
        [out],
        epilog="examples:\n  juliarun jobs\n  juliarun jobs --all -o yaml",
    )
    jobs.add_argument(
        "--all", "-a", action="store_true", help="show status, scale and endpoints of every job too"
    )

    submit = add(
        "submit",
        cmd_submit,
        "submit a new job",
        epilog=EPILOG_PARAMS
        + """
examples:
  juliarun submit JuliaBatch hello run_volume=jobs start_script=hello.jl
  juliarun submit JuliaParBatch sim run_volume=jobs start_script=sim.jl nworkers=2 cpu=0.5
""",
    )
    submit.add_argument(
        "job_type", metavar="TYPE", choices=list(JOB_TYPES), help="job type: " + ", ".join(JOB_TYPES)
    )
    submit.add_argument("name", metavar="NAME", help="the new job's name")
    submit.add_argument("params", metavar="PARAM=VALUE", nargs="*", help="job parameters")

    update = add(
        "update",
        cmd_update,
        "change parameters of a submitted job",
        [named],
        epilog=EPILOG_PARAMS + "\nexample:\n  juliarun update sim worker_cpu=1 image=julia:1.10\n",
    )
    update.add_argument("params", metavar="PARAM=VALUE", nargs="*", help="parameters to change")

    add(
        "status",
        cmd_status,
        "show a job's status",
        [named, out],
        epilog="STATUS is Scheduled (not yet created), Running or Completed.\n\n"
        "example:\n  juliarun status sim -o json",
    )

    scale = add(
        "scale",
        cmd_scale,
        "show a job's workers, or ask for N of them",
        [named, out],
        epilog="-o applies when showing.\n\nexamples:\n  juliarun scale sim\n"
        "  juliarun scale sim 4 --wait --timeout 120",
    )
    scale.add_argument("count", metavar="N", nargs="?", type=int, help="workers wanted")
    scale.add_argument("--wait", action="store_true", help="after setting, wait until N run")
    scale.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="how long --wait waits (default: 300)"
    )

    add(
        "endpoint",
        cmd_endpoint,
        "show a job's network endpoints",
        [named, out],
        epilog="example:\n  juliarun endpoint nb",
    )

    logs = add(
        "logs",
        cmd_logs,
        "show the last lines a job printed",
        [named],
        epilog="examples:\n  juliarun logs sim --count 100 --stream stderr\n"
        "  juliarun logs --resource sim -k team-a   # the job of JuliaRunJob team-a/sim\n"
        "  kubectl juliarun logs sim -n team-a       # the same, as a kubectl plugin",
    )
    logs.add_argument(
        "--resource",
        "-r",
        action="store_true",
        help="NAME is a JuliaRunJob: tail the JuliaRun job it stands for",
    )
    logs.add_argument(
        "--kube-namespace", "-k", metavar="NS", help="the JuliaRunJob's namespace (default: the kubeconfig's)"
    )
    logs.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
    logs.add_argument(
        "--attempt", type=int, help="with --resource: this attempt's JuliaRun job (default: the current one)"
    )
    logs.add_argument("--count", "-c", type=int, default=50, help="how many lines (default: 50)")
    logs.add_argument("--stream", choices=["stdout", "stderr"], help="only this stream (default: both)")

    delete = add(
        "delete", cmd_delete, "delete a job", [named], epilog="example:\n  juliarun delete sim --force"
    )
    delete.add_argument("--force", "-f", action="store_true", help="delete at once, without a graceful stop")

    url = add(
        "url",
        cmd_url,
        "show the encoded URL of a job's port",
        [named],
        epilog="example:\n  juliarun url nb 8888",
    )
    url.add_argument("port", metavar="PORT", type=int, help="the port")

    imports = add(
        "import",
        cmd_import,
        "print a JuliaRunJob manifest (managementPolicy Observe) for each job in the namespace",
        epilog="""\
Each manifest has the job's type, jobName and parallelism (JuliaRun's requested scale); JuliaRun
does not report a job's parameters, so comments list the fields to fill in before switching it
to managementPolicy Full. Only reads JuliaRun.

examples:
  juliarun import > jobs.yaml
  juliarun import --out-dir gitops/jobs --kube-namespace team-a
  juliarun import legacy-web --credentials-ref juliarun-team-a | kubectl apply -n team-a -f -
""",
    )
    imports.add_argument("names", metavar="NAME", nargs="*", help="only these jobs (default: all)")
    imports.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write one file per job, DIR/<job>.yaml, instead of one stream to stdout; "
        "refuses (writing nothing) if any of them exists",
    )
    imports.add_argument(
        "--kube-namespace",
        "-k",
        metavar="NS",
        help="metadata.namespace of the manifests (default: none; kubectl's namespace applies)",
    )
    imports.add_argument(
        "--credentials-ref",
        metavar="SECRET",
        help="spec.credentialsRef.name: the Secret in that namespace with this JuliaRun connection "
        "(default: none, the operator's default connection)",
    )

    types = sub.add_parser(
        "types",
        parents=[out],
        help="list job types and their parameters",
        description="List job types and the parameters each takes: required, "
        "optional, or the default JuliaRun uses.",
        epilog="examples:\n  juliarun types\n  juliarun types Notebook -o yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    types.add_argument("job_type", metavar="TYPE", nargs="?", choices=list(JOB_TYPES), help="only this type")
    types.set_defaults(func=cmd_types)
