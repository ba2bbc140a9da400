"""The `juliarun` parser with subcommand modules loaded on demand: what each command
imports, connection flags after `operator`, and one-line errors for bad environment
values and for the development tools, which need a source checkout."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from juliarun_operator import cli

REPO = Path(__file__).resolve().parents[2]
HEAVY = (
    "aiohttp",
    "kubernetes",
    "kopf",
    "juliarun_operator.reconcile",
    "juliarun_operator.emulator",
    "juliarun_dev",
    "juliarun_operator.resources",
)


def imported_by(*argv: str) -> list[str]:
    """The heavy modules a fresh interpreter has imported after `juliarun ARGV`."""
    code = (
        "import contextlib, io, json, sys\n"
        "from juliarun_operator import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = cli.main({list(argv)!r})\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    code, modules = json.loads(out)
    assert code == 0, f"juliarun {' '.join(argv)} exited {code}"
    return [m for m in modules if m.startswith(HEAVY)]


@pytest.mark.parametrize(
    "argv", [["--help"], ["types"], ["types", "Notebook", "-o", "json"], ["jobs", "--help"], ["--version"]]
)
def test_commands_without_a_cluster_import_no_heavy_modules(argv):
    assert imported_by(*argv) == []


def test_a_chosen_subcommand_loads_its_module():
    assert "juliarun_operator.emulator" in imported_by("emulator", "--help")


def test_placeholders_show_the_modules_own_help():
    top = cli.build_parser()
    for command in cli.SUBCOMMANDS:
        choices = cli.build_parser(load=command.name)._subparsers._group_actions[0]._choices_actions
        (action,) = [a for a in choices if a.dest == command.name]
        assert action.help == command.help, f"SUBCOMMANDS[{command.name!r}].help differs from its module's"
        assert command.name in top._subparsers._group_actions[0].choices


def readme_operator_command() -> list[str]:
    """The `juliarun operator ...` command of README.md's "Running it", as the shell splits it."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(juliarun operator \\\n.*?)```", readme, re.DOTALL).group(1)
    return shlex.split(block.replace("\\\n", " "))


def test_the_readme_operator_command_parses():
    argv = readme_operator_command()
    assert argv[:2] == ["juliarun", "operator"]
    args = cli.parse_args(argv[1:])
    assert args.command == "operator" and args.func.__name__ == "run"
    flags = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert (args.url, args.token_file, args.namespace) == (
        flags["--url"],
        flags["--token-file"],
        flags["--namespace"],
    )
    assert args.sync_interval == float(flags["--sync-interval"])
    assert args.metrics_port == int(flags["--metrics-port"]) and args.log_format == flags["--log-format"]


def test_operator_connection_flags_before_and_after_the_subcommand():
    args = cli.parse_args(["--url", "http://before:1", "operator", "--namespace", "after", "--standalone"])
    assert (args.url, args.namespace, args.standalone) == ("http://before:1", "after", True)
    assert not hasattr(args, "token_file")  # left to JULIARUN_TOKEN(_FILE)
    args = cli.parse_args(["--url", "http://before:1", "operator", "--url", "http://after:2"])
    assert args.url == "http://after:2"


def test_emulator_and_cluster_take_no_connection_flags(capsys):
    assert cli.main(["emulator", "--url", "http://x"]) == 2
    assert "unrecognized arguments: --url" in capsys.readouterr().err


@pytest.mark.parametrize("name, value", [("JULIARUN_SYNC_INTERVAL", "abc"), ("WORKERS", "x")])
def test_a_bad_environment_value_is_one_line(monkeypatch, capsys, name, value):
    """Read when the operator starts (not when any command parses), before it touches anything."""
    monkeypatch.setenv(name, value)
    assert cli.main(["operator"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: environment variable {name}={value!r}: " + (
        "expected a number\n" if name.startswith("JULIARUN") else "expected a whole number\n"
    )


def test_a_bad_environment_value_leaves_other_commands_alone(monkeypatch, capsys):
    monkeypatch.setenv("JULIARUN_SYNC_INTERVAL", "abc")
    assert cli.main(["types", "JuliaBatch"]) == 0


def test_cluster_without_the_development_package_is_one_line(monkeypatch, capsys):
    """As from the wheel, which has no juliarun_dev (tests/integration/test_wheel.py runs it)."""
    monkeypatch.setattr(cli, "DEV_PACKAGE", "juliarun_dev_not_installed")
    for argv in (["cluster", "status"], ["cluster", "--help"]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith("error: `juliarun cluster` is a development tool: it needs a source checkout")
    assert cli.main(["types"]) == 0  # the package's own commands are unaffected
