"""`juliarun`: the JuliaRun API from the shell, plus the project's other tools.

    juliarun system                       # is JuliaRun up?
    juliarun submit JuliaBatch hello run_volume=jobs start_script=hello.jl cpu=0.5
    juliarun jobs --all -o yaml
    juliarun logs hello --count 20

Every JuliaRun call goes through `juliarun.Client`; this module only turns arguments into
calls and results into text. Errors become one `error: ...` line on stderr and exit
status 1; no message printed here may contain the token.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import urllib3
import yaml

from .envvars import EnvVarError
from .juliarun import (
    JOB_TYPES,
    PARAMETERS,
    Client,
    Context,
    Job,
    JobInfo,
    JobStatus,
    JuliaRunError,
    ParameterError,
)
from .juliarun import jobtypes as jt
from .juliarun.redact import redact
from .output import FORMATS, cell, flow_yaml, render


@dataclass(frozen=True)
class Subcommand:
    """A subcommand another module adds with its configure_parser(subparsers).

    Its module is imported only when the subcommand is chosen: `juliarun --help` and the
    JuliaRun commands need neither aiohttp, kubernetes nor kopf. `help` is repeated here
    for the list in `juliarun --help` (a test keeps it equal to the module's).
    """

    name: str
    module: str
    help: str
    # Connection options it also accepts after its name (`juliarun operator --url ...`).
    connection: tuple[str, ...] = ()
    # Needs the files of a source checkout (hack/), not only the installed package.
    source_tree: bool = False


SUBCOMMANDS = (
    Subcommand(
        "emulator", "juliarun_operator.emulator", "run a JuliaRun-compatible server for development and tests"
    ),
    Subcommand(
        "cluster",
        "juliarun_operator.devcluster",
        "a local etcd + kube-apiserver (no nodes, no pods)",
        source_tree=True,
    ),
    Subcommand(
        "operator",
        "juliarun_operator.reconcile.main",
        "run the JuliaRunJob operator",
        connection=("--url", "--token-file", "--namespace"),
    ),
)
# A source checkout: the package's directory is operator/juliarun_operator in it.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
SOURCE_TREE_MARKER = SOURCE_ROOT / "hack" / "controlplane" / "versions.env"

# Kinds whose PARAM=VALUE text is the value itself: YAML would turn `image=1.0` or
# `start_script=yes` into a number or a boolean.
RAW_KINDS = frozenset({jt.STRING, jt.QUANTITY, jt.SECRET, jt.ENUM})
# Kinds that are collections of strings: YAML's base loader keeps every scalar in them a
# string, so `envvars={DEBUG: 1}` means "1", not 1.
STRING_COLLECTION_KINDS = frozenset({jt.STRING_LIST, jt.ENV})

EXIT_ERROR = 1
EXIT_USAGE = 2  # as argparse's usage errors
EXIT_INTERRUPTED = 130

if TYPE_CHECKING:  # generic in typeshed only, not at run time
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

EPILOG_CONNECTION = """\
environment (the options above override it):
  JULIARUN_URL          JuliaRun's address (default: the in-cluster service)
  JULIARUN_TOKEN        the token itself, or JULIARUN_TOKEN_FILE: a file holding it
                        (default: the pod's service-account token)
  JULIARUN_NAMESPACE    the namespace (default: the pod's, else "default")
  JULIARUN_CA_FILE, JULIARUN_INSECURE=true   TLS verification
"""

EPILOG_MAIN = (
    EPILOG_CONNECTION
    + """
examples:
  export JULIARUN_URL=http://127.0.0.1:8080 JULIARUN_TOKEN_FILE=~/.juliarun-token
  juliarun types JuliaParBatch
  juliarun submit JuliaParBatch sim run_volume=jobs start_script=sim.jl nworkers=2
  juliarun status sim
  juliarun scale sim 4 --wait
  juliarun jobs --all -o json
  juliarun delete sim --force
"""
)

EPILOG_PARAMS = """\
PARAM=VALUE: a parameter of the job type (see `juliarun types TYPE`). Text parameters
(scripts, image, memory, restart, passwd) take the text as it is; the others take YAML
flow syntax:
  cpu=0.5  nworkers=4  external=true  memory=4Gi  image=julia:1.10
  additional_volumes=[data, scratch]  ports={http: [8080, 80]}  envvars={DEBUG: 1}
"""


# --- PARAM=VALUE ------------------------------------------------------------------------


def parse_value(name: str, text: str) -> Any:
    """The value of parameter `name` written as `text`, read according to its kind."""
    param = PARAMETERS.get(name)
    if param is None or param.kind in RAW_KINDS:
        # Unknown names pass through untouched: the client refuses them, naming the
        # parameters the job type does take.
        return text
    loader = yaml.BaseLoader if param.kind in STRING_COLLECTION_KINDS else yaml.SafeLoader
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - both loaders are safe
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ParameterError(f"parameter {name}: cannot read {text!r}: {problem}", name) from None


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """PARAM=VALUE arguments as a parameter dict; ParameterError names the faulty one."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"expected PARAM=VALUE, got {pair!r}", name or None)
        if name in params:
            raise ParameterError(f"parameter {name} given more than once", name)
        params[name] = parse_value(name, text)
    return params


# --- connecting -------------------------------------------------------------------------


def context_from_args(args: argparse.Namespace) -> Context:
    """The connection: global options first, then JULIARUN_* variables, then defaults."""
    verify: bool | str | None = None
    if getattr(args, "insecure", False):
        verify = False
    elif getattr(args, "ca_file", None):
        verify = args.ca_file
    return Context.from_env(
        url=getattr(args, "url", None),
        token_file=getattr(args, "token_file", None),
        namespace=getattr(args, "namespace", None),
        verify=verify,
    )


def connected(command: Callable[[Client, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`command` as a subcommand func: it gets a Client built from the options and env."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        context = context_from_args(args)
        if context.verify is False:
            # The user chose not to verify; a warning on every request adds nothing.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        client = Client(context)
        try:
            return command(client, args)
        finally:
            client.close()

    return run


def find_job(client: Client, args: argparse.Namespace) -> Job:
    """The job NAME, with its type from --type or, failing that, from listJobs."""
    if args.type:
        return Job(args.type, args.name)
    jobs = client.list_jobs()
    if args.name not in jobs:
        raise JuliaRunError(f"no job named {args.name!r} in {client.context.describe()}")
    try:
        return Job(jobs[args.name], args.name)
    except ValueError:  # a type this client does not know: say so instead of crashing
        raise JuliaRunError(f"job {args.name!r} has unknown type {jobs[args.name]!r}") from None


# --- showing results --------------------------------------------------------------------


def show(
    args: argparse.Namespace,
    data: Any,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    empty: str | None = None,
) -> None:
    """Print a result; `empty` is said (on stderr, as a remark) instead of a bare header."""
    if empty and not rows and args.output == "table":
        print(empty, file=sys.stderr)
        return
    print(render(args.output, data, headers, [[cell(c) for c in row] for row in rows]))


def state(status: JobStatus) -> str:
    """One word for a job's progress: Scheduled until JuliaRun has created it."""
    if status.completed:
        return "Completed"
    return "Running" if status.created else "Scheduled"


def status_data(job: Job, status: JobStatus) -> dict[str, Any]:
    return {"name": job.name, "type": job.type, "state": state(status), **asdict(status)}


def info_data(info: JobInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "type": info.type,
        "state": state(info.status),
        "status": asdict(info.status),
        "scale": asdict(info.scale),
        "endpoints": info.endpoints,
    }


# --- JuliaRun commands ------------------------------------------------------------------


@connected
def cmd_system(client: Client, args: argparse.Namespace) -> int:
    ready = client.get_system_status()
    show(
        args,
        {"ready": ready, "url": client.context.url, "namespace": client.context.namespace},
        ["URL", "NAMESPACE", "READY"],
        [[client.context.url, client.context.namespace, ready]],
    )
    return 0 if ready else EXIT_ERROR


def no_jobs(client: Client) -> str:
    return f"no jobs in {client.context.describe()}"


@connected
def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    if not args.all:
        jobs = sorted(client.list_jobs().items())
        show(args, [{"name": n, "type": t} for n, t in jobs], ["NAME", "TYPE"], jobs, empty=no_jobs(client))
        return 0
    infos = sorted(client.get_all_job_info().values(), key=lambda i: i.name)
    show(
        args,
        [info_data(i) for i in infos],
        ["NAME", "TYPE", "STATUS", "RUNNING/REQUESTED", "ENDPOINT"],
        [
            [i.name, i.type, state(i.status), f"{i.scale.running}/{i.scale.requested}", i.endpoints]
            for i in infos
        ],
        empty=no_jobs(client),
    )
    return 0


@connected
def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    job = Job(args.job_type, args.name)
    client.submit_job(job, **parse_params(args.params))
    print(f"submitted {job.type} {job.name}")
    return 0


@connected
def cmd_update(client: Client, args: argparse.Namespace) -> int:
    params = parse_params(args.params)  # before find_job: a typo needs no round trip
    if not params:
        raise ParameterError("nothing to update: give at least one PARAM=VALUE")
    job = find_job(client, args)
    client.update_job(job, **params)
    print(f"updated {job.type} {job.name}: {', '.join(params)}")
    return 0


@connected
def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = find_job(client, args)
    status = client.get_job_status(job)
    show(
        args,
        status_data(job, status),
        ["NAME", "TYPE", "STATUS", "CREATED", "WORKERS STARTED", "WORKERS SUCCEEDED", "NOTEBOOK"],
        [
            [
                job.name,
                job.type,
                state(status),
                status.created,
                status.workers_started,
                status.workers_succeeded,
                status.notebook,
            ]
        ],
    )
    return 0


@connected
def cmd_scale(client: Client, args: argparse.Namespace) -> int:
    if args.wait and args.count is None:
        raise ParameterError("--wait needs N, the number of workers to wait for")
    job = find_job(client, args)
    if args.count is None:
        scale = client.get_job_scale(job)
        show(
            args,
            {"name": job.name, **asdict(scale)},
            ["NAME", "RUNNING", "REQUESTED"],
            [[job.name, scale.running, scale.requested]],
        )
        return 0
    if not client.set_job_scale(job, args.count):
        raise JuliaRunError(f"JuliaRun did not accept scale {args.count} for {job.name}")
    print(f"{job.name}: requested {args.count}")
    if args.wait:
        scale = client.wait_for_workers(job, args.count, timeout=args.timeout, interval=0.5)
        print(f"{job.name}: {scale.running} running")
    return 0


@connected
def cmd_endpoint(client: Client, args: argparse.Namespace) -> int:
    job = find_job(client, args)
    endpoints = client.get_job_endpoint(job)
    show(args, endpoints, ["ENDPOINT"], [[e] for e in endpoints], empty=f"{job.name} has no endpoints")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Logs of a JuliaRun job, or (--resource) of the job behind a JuliaRunJob."""
    context = context_from_args(args)
    if args.resource:
        from . import resources  # the kubernetes client: only for --resource

        job, context = resources.resolve(args.name, args.kube_namespace, args.kubeconfig, context)
    client = Client(context)
    try:
        job = job if args.resource else find_job(client, args)
        text = client.tail_job(job, stream=args.stream, count=args.count)
    finally:
        client.close()
    print(text, end="" if text.endswith("\n") or not text else "\n")
    return 0


@connected
def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    job = find_job(client, args)
    if not client.delete_job(job, force=args.force):
        raise JuliaRunError(f"JuliaRun did not delete {job.name}")
    print(f"deleted {job.type} {job.name}")
    return 0


@connected
def cmd_url(client: Client, args: argparse.Namespace) -> int:
    print(client.get_encoded_url(find_job(client, args), args.port))
    return 0


# --- the job-type table (no connection needed) ------------------------------------------


def kind_text(param: jt.Param) -> str:
    return f"{param.kind}({'|'.join(param.choices)})" if param.choices else param.kind


def use_text(default: Any) -> str:
    """How a type takes a parameter: required, optional, or its default in PARAM=VALUE syntax."""
    if default is jt.REQUIRED:
        return "required"
    if default is jt.OPTIONAL:
        return "optional"
    return "default " + (default if isinstance(default, str) else flow_yaml(default))


def cmd_types(args: argparse.Namespace) -> int:
    types = [JOB_TYPES[args.job_type]] if args.job_type else list(JOB_TYPES.values())
    data = [
        {
            "type": t.name,
            "description": t.description,
            "scalable": t.scalable,
            "completes": t.completes,
            "parameters": [
                {
                    "name": n,
                    "kind": PARAMETERS[n].kind,
                    "required": d is jt.REQUIRED,
                    **({} if d in (jt.REQUIRED, jt.OPTIONAL) else {"default": d}),
                    **({"choices": list(PARAMETERS[n].choices)} if PARAMETERS[n].choices else {}),
                    "description": PARAMETERS[n].description,
                }
                for n, d in t.params.items()
            ],
        }
        for t in types
    ]
    rows = [
        [t.name, n, kind_text(PARAMETERS[n]), use_text(d), PARAMETERS[n].description]
        for t in types
        for n, d in t.params.items()
    ]
    show(args, data, ["TYPE", "PARAMETER", "KIND", "USE", "DESCRIPTION"], rows)
    return 0


# --- the parser -------------------------------------------------------------------------


def add_connection_options(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """The connection options (all, or `only` these), on a parser of its own or a subcommand's.

    SUPPRESS as default: a subparser otherwise writes its own default over a value
    given before the subcommand (`juliarun --url X jobs`).
    """
    taken = set(parser._option_string_actions)  # a module may define some itself

    def add(container: Any, *flags: str, **kwargs: Any) -> None:
        if (only is None or flags[0] in only) and not taken.intersection(flags):
            container.add_argument(*flags, default=argparse.SUPPRESS, **kwargs)

    add(parser, "--url", help="JuliaRun's address (JULIARUN_URL)")
    add(
        parser,
        "--token-file",
        metavar="FILE",
        help="file holding the token (JULIARUN_TOKEN_FILE; or JULIARUN_TOKEN)",
    )
    add(parser, "--namespace", "-n", help="JuliaRun namespace (JULIARUN_NAMESPACE)")
    if only is None:
        tls = parser.add_mutually_exclusive_group()
        add(
            tls,
            "--ca-file",
            metavar="FILE",
            help="CA bundle to verify JuliaRun's certificate (JULIARUN_CA_FILE)",
        )
        add(
            tls,
            "--insecure",
            action="store_true",
            help="do not verify JuliaRun's certificate (JULIARUN_INSECURE=true)",
        )


def connection_options() -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    add_connection_options(parent)
    return parent


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
        from . import __version__

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


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    """The `juliarun` parser; of SUBCOMMANDS only `load`'s module is imported and configured,
    the others are placeholders that take any arguments (see parse_args)."""
    conn = connection_options()
    parser = argparse.ArgumentParser(
        prog="juliarun",
        parents=[conn],
        description="Run JuliaRun jobs from the shell, and the tools of juliarun-operator.",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_juliarun_commands(sub, conn)
    for command in SUBCOMMANDS:
        if command.name == load:
            importlib.import_module(command.module).configure_parser(sub)
            if command.connection:
                add_connection_options(sub.choices[command.name], only=command.connection)
        else:
            sub.add_parser(command.name, help=command.help, add_help=False)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse in two passes: the first finds the subcommand, the second parses its arguments
    with its module loaded (only then: aiohttp, kubernetes and kopf stay unimported unless
    needed). Errors and --help exit as argparse does (SystemExit)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = build_parser()
    known, _ = first.parse_known_args(argv)
    lazy = {c.name for c in SUBCOMMANDS}
    parser = build_parser(load=known.command) if known.command in lazy else first
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error (argparse printed it)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except EnvVarError as exc:  # a subcommand's defaults come from the environment
        print(f"juliarun: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command = next((c for c in SUBCOMMANDS if c.name == args.command), None)
    if command and command.source_tree and not SOURCE_TREE_MARKER.is_file():
        return fail(
            f"`juliarun {command.name}` needs a source checkout of juliarun-operator (it runs "
            f"hack/controlplane/): run it from a clone, e.g. `make cluster-up`"
        )
    try:
        result: int = args.func(args)
        return result
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (JuliaRunError, TimeoutError, EnvVarError) as exc:
        return fail(str(exc))
    except Exception as exc:  # a bug: still one line, and nothing from a URL's query
        return fail(f"unexpected {type(exc).__name__}: {exc}")


def fail(message: str) -> int:
    print(f"error: {redact(message)}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
