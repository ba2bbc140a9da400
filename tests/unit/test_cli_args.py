"""The `juliarun` command line without a server: parsing options and PARAM=VALUE values."""

from __future__ import annotations

import json

import pytest

from juliarun_operator import cli
from juliarun_operator.juliarun import ParameterError
from juliarun_operator.output import cell, flow_yaml, format_table, render

# --- PARAM=VALUE ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pair, expected",
    [
        ("image=1.0", {"image": "1.0"}),  # YAML would read a float
        ("start_script=yes", {"start_script": "yes"}),  # YAML 1.1 would read True
        ("run_volume=null", {"run_volume": "null"}),
        ("memory=4Gi", {"memory": "4Gi"}),
        ("restart=Never", {"restart": "Never"}),
        ("passwd=123456", {"passwd": "123456"}),
        ("shell=a=b.sh", {"shell": "a=b.sh"}),  # only the first '=' separates
        ("start_script=", {"start_script": ""}),
        ("start_script=[x]", {"start_script": "[x]"}),  # text, not a list
    ],
)
def test_text_parameters_keep_the_raw_text(pair, expected):
    assert cli.parse_params([pair]) == expected


@pytest.mark.parametrize(
    "pair, expected",
    [
        ("cpu=0.5", {"cpu": 0.5}),
        ("cpu=2", {"cpu": 2}),
        ("nworkers=4", {"nworkers": 4}),
        ("external=true", {"external": True}),
        ("external=false", {"external": False}),
        ("additional_volumes=[data, scratch]", {"additional_volumes": ["data", "scratch"]}),
        ("ports={http: [8080, 80]}", {"ports": {"http": [8080, 80]}}),
        ("ports={nb: [8888, 8888], api: [9000, 90]}", {"ports": {"nb": [8888, 8888], "api": [9000, 90]}}),
    ],
)
def test_other_parameters_are_yaml_flow(pair, expected):
    assert cli.parse_params([pair]) == expected


def test_string_collections_keep_scalars_as_strings():
    params = cli.parse_params(["envvars={DEBUG: 1, FAST: true}", "command=[julia, 1.0, yes]"])
    assert params == {"envvars": {"DEBUG": "1", "FAST": "true"}, "command": ["julia", "1.0", "yes"]}


def test_unknown_parameter_passes_through_for_the_client_to_refuse():
    # The client names the job type's parameters in its refusal; the CLI must not guess.
    assert cli.parse_params(["colour={red"]) == {"colour": "{red"}


@pytest.mark.parametrize(
    "pair, name",
    [
        ("ports={http: [8080, 80]", "ports"),
        ("additional_volumes=[a, b", "additional_volumes"),
        ("envvars={A: 1", "envvars"),
        ("cpu=[", "cpu"),
    ],
)
def test_bad_yaml_names_the_parameter(pair, name):
    with pytest.raises(ParameterError) as info:
        cli.parse_params([pair])
    message = str(info.value)
    assert info.value.param == name
    assert message.startswith(f"parameter {name}: cannot read ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "pairs, text",
    [
        (["cpu"], "expected PARAM=VALUE, got 'cpu'"),
        (["=1"], "expected PARAM=VALUE, got '=1'"),
        (["cpu=1", "cpu=2"], "parameter cpu given more than once"),
    ],
)
def test_malformed_pairs(pairs, text):
    with pytest.raises(ParameterError, match=text):
        cli.parse_params(pairs)


def test_the_client_refuses_what_the_cli_passes_on():
    from juliarun_operator.juliarun.encoding import encode_params

    params = cli.parse_params(
        ["run_volume=jobs", "start_script=1.0", "cpu=0.5", "ports={http: [8080, 80]}", "envvars={N: 2}"]
    )
    wire = encode_params("JuliaParBatch", params)
    assert wire["start_script"] == "1.0"
    assert wire["envvars"] == 'Dict("N" => "2")'
    with pytest.raises(ParameterError, match="cpu: expected a non-negative number"):
        encode_params("JuliaBatch", cli.parse_params(["run_volume=v", "start_script=s", "cpu=lots"]))


# --- the parser -------------------------------------------------------------------------


def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def test_global_options_before_and_after_the_subcommand():
    before = parse("--url", "http://a", "--namespace", "ns", "--token-file", "/t", "jobs")
    after = parse("jobs", "--url", "http://a", "-n", "ns", "--token-file", "/t")
    for args in (before, after):
        assert (args.url, args.namespace, args.token_file) == ("http://a", "ns", "/t")


def test_a_subcommand_does_not_reset_options_given_before_it():
    args = parse("--url", "http://a", "status", "x", "-n", "ns")
    assert args.url == "http://a" and args.namespace == "ns"


def test_absent_connection_options_are_left_to_the_environment(monkeypatch):
    args = parse("jobs")
    assert not any(hasattr(args, a) for a in ("url", "namespace", "token_file", "ca_file", "insecure"))
    monkeypatch.setenv("JULIARUN_URL", "http://env:1")
    monkeypatch.delenv("JULIARUN_TOKEN_FILE", raising=False)
    monkeypatch.setenv("JULIARUN_TOKEN", "tok")
    monkeypatch.setenv("JULIARUN_NAMESPACE", "e")
    context = cli.context_from_args(args)
    assert (context.url, context.token, context.namespace) == ("http://env:1", "tok", "e")


def test_context_from_options_wins_over_the_environment(monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("from-file\n")
    monkeypatch.setenv("JULIARUN_URL", "http://env:1")
    monkeypatch.delenv("JULIARUN_TOKEN_FILE", raising=False)
    monkeypatch.setenv("JULIARUN_TOKEN", "from-env")
    monkeypatch.setenv("JULIARUN_NAMESPACE", "env-ns")
    context = cli.context_from_args(
        parse("--url", "http://opt:2", "jobs", "--token-file", str(token), "-n", "opt-ns", "--insecure")
    )
    assert (context.url, context.token, context.namespace, context.verify) == (
        "http://opt:2",
        "from-file",
        "opt-ns",
        False,
    )
    context = cli.context_from_args(parse("jobs", "--ca-file", "/ca.pem"))
    assert (context.url, context.token, context.namespace, context.verify) == (
        "http://env:1",
        "from-env",
        "env-ns",
        "/ca.pem",
    )


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["submit", "JuliaBatch", "j", "a=1", "b=2"],
            {"job_type": "JuliaBatch", "name": "j", "params": ["a=1", "b=2"]},
        ),
        (
            ["update", "j", "cpu=1", "--type", "Notebook"],
            {"name": "j", "params": ["cpu=1"], "type": "Notebook"},
        ),
        (["status", "j"], {"name": "j", "type": None, "output": "table"}),
        (["scale", "j"], {"count": None, "wait": False}),
        (["scale", "j", "3", "--wait", "--timeout", "5"], {"count": 3, "wait": True, "timeout": 5.0}),
        (["logs", "j", "--count", "7", "--stream", "stderr"], {"count": 7, "stream": "stderr"}),
        (["logs", "j"], {"count": 50, "stream": None}),
        (["delete", "j", "--force"], {"force": True}),
        (["url", "j", "8888"], {"port": 8888}),
        (["jobs", "--all", "-o", "json"], {"all": True, "output": "json"}),
        (["types", "Notebook", "-o", "yaml"], {"job_type": "Notebook", "output": "yaml"}),
        (["system"], {"output": "table"}),
    ],
)
def test_subcommand_arguments(argv, expected):
    args = vars(parse(*argv))
    assert {k: args[k] for k in expected} == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "NoSuchType", "j"],
        ["status"],
        ["scale", "j", "many"],
        ["jobs", "-o", "xml"],
        ["logs", "j", "--stream", "both"],
        ["jobs", "--ca-file", "x", "--insecure"],
        ["nonsense"],
        [],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        "system",
        "jobs",
        "submit",
        "update",
        "status",
        "scale",
        "endpoint",
        "logs",
        "delete",
        "url",
        "types",
        "cluster",
    ],
)
def test_every_subcommand_has_help(command, capsys):
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: juliarun {command}")


def test_registered_modules_add_their_subcommands():
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    for name in ("system", "jobs", "types", "cluster"):
        assert name in commands


def test_wait_without_a_count_is_refused_before_any_request(capsys):
    assert cli.main(["--url", "http://127.0.0.1:9", "scale", "j", "--wait"]) == 1
    assert capsys.readouterr().err == "error: --wait needs N, the number of workers to wait for\n"


def test_parameter_error_is_one_line_exit_1_before_any_request(capsys):
    # A dead port: a request would fail differently, so the parameter check came first.
    code = cli.main(["--url", "http://127.0.0.1:9", "submit", "JuliaBatch", "j", "ports={x: [1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: parameter ports: cannot read")
    assert err.count("\n") == 1


# --- rendering --------------------------------------------------------------------------


def test_table_columns_are_aligned_without_trailing_blanks():
    text = format_table(["NAME", "TYPE"], [["a", "JuliaBatch"], ["longer-name", "Notebook"]])
    lines = text.splitlines()
    assert lines[0].index("TYPE") == lines[1].index("JuliaBatch") == lines[2].index("Notebook")
    assert all(line == line.rstrip() for line in lines)


def test_cells_and_formats():
    assert cell([]) == "-" and cell(None) == "-" and cell(["a", "b"]) == "a,b"
    assert cell(True) == "true" and cell(0) == "0"
    assert flow_yaml({"nb": (8888, 8888)}) == "{nb: [8888, 8888]}"
    assert flow_yaml(False) == "false"
    assert render("json", {"a": (1, 2)}, [], []) == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert render("yaml", {"a": (1, 2)}, [], []) == "a:\n- 1\n- 2"


def test_types_needs_no_connection(capsys):
    assert cli.main(["types", "JuliaBatch"]) == 0
    out = capsys.readouterr().out
    assert "start_script" in out and "required" in out and "default 0.1" in out
    assert "CRD FIELD" in out and "spec.startScript" in out


def test_types_names_the_crd_field_of_every_parameter(capsys):
    """Each parameter's field as the generated CRD has it, for writing a JuliaRunJob."""
    from juliarun_dev import gen

    spec = gen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert cli.main(["types", "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    for job_type in listed:
        for param in job_type["parameters"]:
            assert param["field"].removeprefix("spec.") in spec, (job_type["type"], param)
