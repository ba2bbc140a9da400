"""`kubectl juliarun`'s parser: every flag of every subcommand has help, and bad values are
refused as kubectl would (one usage error, exit 2), before anything is contacted."""

from __future__ import annotations

import argparse

import pytest

from juliarun_operator import kubectl_plugin


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = kubectl_plugin.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_flag_of_every_subcommand_has_help():
    found = subcommands()
    assert set(found) == {"logs", "attempts"}
    for name, parser in found.items():
        for action in parser._actions:
            flag = action.option_strings or action.dest
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {flag}: no help"


@pytest.mark.parametrize("argv", [["logs", "x", "--count", "0"], ["logs", "x", "--attempt", "-1"], ["logs"]])
def test_bad_arguments_are_a_usage_error(argv, capsys):
    assert kubectl_plugin.main(argv) == 2
    assert "usage: kubectl juliarun" in capsys.readouterr().err


def test_missing_credentials_are_named():
    assert kubectl_plugin.missing_credentials({}) == list(kubectl_plugin.CREDENTIAL_VARIABLES)
    env = {"JULIARUN_URL": "http://x", "JULIARUN_TOKEN_FILE": "/t"}
    assert kubectl_plugin.missing_credentials(env) == ["JULIARUN_NAMESPACE"]
    assert kubectl_plugin.missing_credentials({**env, "JULIARUN_NAMESPACE": "team"}) == []


def test_last_lines():
    assert kubectl_plugin.last_lines("a\nb\nc\n", 2) == "b\nc\n"
    assert kubectl_plugin.last_lines("", 5) == ""
