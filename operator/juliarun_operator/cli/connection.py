"""Connecting to JuliaRun from the command line: the connection options, the Context they
make, the Client a command gets, and the job a NAME (and --type) stand for."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from typing import Any

import urllib3

from ..juliarun import Client, Context, Job, JuliaRunError

EPILOG_CONNECTION = """\
environment (the options above override it):
  JULIARUN_URL          JuliaRun's address (default: the in-cluster service)
  JULIARUN_TOKEN        the token itself, or JULIARUN_TOKEN_FILE: a file holding it
                        (default: the pod's service-account token)
  JULIARUN_NAMESPACE    the namespace (default: the pod's, else "default")
  JULIARUN_CA_FILE, JULIARUN_INSECURE=true   TLS verification
"""


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
