"""`juliarun`: the JuliaRun API from the shell, plus the project's other tools.

    juliarun system                       # is JuliaRun up?
    juliarun submit JuliaBatch hello run_volume=jobs start_script=hello.jl cpu=0.5
    juliarun jobs --all -o yaml
    juliarun logs hello --count 20

Every JuliaRun call goes through `juliarun.Client`; this package only turns arguments into
calls and results into text. Errors become one `error: ...` line on stderr and exit
status 1; no message printed here may contain the token.

This module is the dispatcher: the parser of every subcommand, the lazily imported ones
(SUBCOMMANDS) and `main`. params.py reads PARAM=VALUE, connection.py makes the Client,
commands.py and parser.py hold the JuliaRun commands, show.py prints their results.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ..envvars import EnvVarError
from ..juliarun import JuliaRunError
from ..juliarun.redact import redact
from .connection import EPILOG_CONNECTION, add_connection_options, connection_options, context_from_args
from .params import parse_params
from .parser import VersionAction, add_juliarun_commands
from .show import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE

__all__ = [
    "SUBCOMMANDS",
    "Subcommand",
    "build_parser",
    "context_from_args",
    "main",
    "parse_args",
    "parse_params",
]


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
    # In the development package (DEV_PACKAGE: a source checkout's, installed by `make setup`),
    # which the wheel and the image do not have.
    dev: bool = False


SUBCOMMANDS = (
    Subcommand(
        "emulator", "juliarun_operator.emulator", "run a JuliaRun-compatible server for development and tests"
    ),
    Subcommand(
        "cluster",
        "juliarun_dev.devcluster",
        "a local etcd + kube-apiserver (up --node adds a worker node for pods)",
        dev=True,
    ),
    Subcommand(
        "operator",
        "juliarun_operator.reconcile.main",
        "run the JuliaRunJob operator",
        connection=("--url", "--token-file", "--namespace"),
    ),
)
# The development tools' package (devtools/ of a source checkout); never in the wheel.
DEV_PACKAGE = "juliarun_dev"


class DevToolsMissing(Exception):
    """A subcommand of the development package, which is not installed."""


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
    command = next((c for c in SUBCOMMANDS if c.name == known.command), None)
    if command and command.dev and importlib.util.find_spec(DEV_PACKAGE) is None:
        raise DevToolsMissing(command.name)
    parser = build_parser(load=known.command) if command else first
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error (argparse printed it)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except EnvVarError as exc:  # a subcommand's defaults come from the environment
        print(f"juliarun: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DevToolsMissing as exc:
        return fail(
            f"`juliarun {exc}` is a development tool: it needs a source checkout of juliarun-operator "
            f"with `make setup` (package {DEV_PACKAGE}), not only the installed wheel"
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
