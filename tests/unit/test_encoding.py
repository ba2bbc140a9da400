"""Job parameters: checking against the job-type table, and Julia's wire text."""

import pytest

from juliarun_operator.juliarun import jobtypes as jt
from juliarun_operator.juliarun.decoding import decode_params
from juliarun_operator.juliarun.encoding import (
    check_params,
    encode_params,
    julia_float,
    julia_string_literal,
)
from juliarun_operator.juliarun.errors import ParameterError


@pytest.mark.parametrize(
    "value, text",
    [
        (0.1, "0.1"),
        (1.0, "1.0"),
        (2, "2.0"),
        (0.5, "0.5"),
        (100000.0, "100000.0"),
        (1e6, "1.0e6"),
        (123456789.0, "1.23456789e8"),
        (0.0001, "0.0001"),
        (1e-5, "1.0e-5"),
        (1.5e-7, "1.5e-7"),
        (100.25, "100.25"),
        (0.0, "0.0"),
    ],
)
def test_floats_print_as_julia_prints_them(value, text):
    assert julia_float(value) == text


def test_collections_print_as_julia_string_does():
    wire = encode_params(
        "Notebook",
        {
            "run_volume": "vol",
            "additional_volumes": ["data", "scratch"],
            "ports": {"nb": (8888, 8888)},
            "external": True,
            "cpu": 0.5,
            "gpu": 1,
            "envvars": {"A": "1"},
        },
    )
    assert wire == {
        "run_volume": "vol",
        "additional_volumes": '["data", "scratch"]',
        "ports": 'Dict("nb" => (8888, 8888))',
        "external": "true",
        "cpu": "0.5",
        "gpu": "1",
        "envvars": 'Dict("A" => "1")',
    }


def test_strings_inside_collections_are_escaped_like_julia():
    assert julia_string_literal('a"b\\c$d\ne\x01') == '"a\\"b\\\\c\\$d\\ne\\x01"'


def test_decode_reads_back_what_encode_wrote():
    params = {
        "run_volume": "v",
        "start_script": "run.jl",
        "ports": {"p": (1, 2), "q": (3, 4)},
        "additional_volumes": ['we"ird', "$x", "back\\slash", "ünï"],
        "cpu": 2.5,
        "external": False,
        "nworkers": 3,
        "restart": "Never",
        "worker_envvars": {"K": "v=1&x=2"},
    }
    assert decode_params("JuliaParBatch", encode_params("JuliaParBatch", params)) == check_params(
        "JuliaParBatch", params
    )


@pytest.mark.parametrize(
    "job_type, params, param",
    [
        ("JuliaBatch", {"run_volume": "v"}, "start_script"),  # missing
        ("JuliaBatch", {"run_volume": "v", "start_script": "s", "passwd": "x"}, "passwd"),  # not taken
        ("JuliaBatch", {"run_volume": "v", "start_script": "s", "cpu": "lots"}, "cpu"),
        ("JuliaBatch", {"run_volume": "v", "start_script": "s", "cpu": -1}, "cpu"),
        ("JuliaBatch", {"run_volume": "v", "start_script": "s", "gpu": 1.5}, "gpu"),
        ("JuliaBatch", {"run_volume": "v", "start_script": "s", "external": "yes"}, "external"),
        ("JuliaBatch", {"run_volume": "v", "start_script": "s", "memory": "lots"}, "memory"),
        ("JuliaBatch", {"run_volume": 3, "start_script": "s"}, "run_volume"),
        ("JuliaBatch", {"run_volume": "v", "start_script": "s", "ports": {"x": [0, 80]}}, "ports"),
        ("JuliaBatch", {"run_volume": "v", "start_script": "s", "ports": {"x": [80]}}, "ports"),
        ("JuliaParBatch", {"run_volume": "v", "start_script": "s", "restart": "Sometimes"}, "restart"),
        ("Generic", {"run_volume": "v"}, "image"),
        ("Generic", {"run_volume": "v", "image": "i", "args": "not-a-list"}, "args"),
        ("Webserver", {"run_volume": "v", "cfg_file": "c", "envvars": {"A": 1}}, "envvars"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(job_type, params, param):
    with pytest.raises(ParameterError) as err:
        encode_params(job_type, params)
    assert err.value.param == param
    assert param in str(err.value)


def test_partial_parameters_skip_the_required_check_but_not_types():
    assert encode_params("JuliaBatch", {"cpu": 2}, partial=True) == {"cpu": "2.0"}
    with pytest.raises(ParameterError):
        encode_params("JuliaBatch", {"cpu": True}, partial=True)


def test_every_type_accepts_its_required_parameters_alone():
    for spec in jt.JOB_TYPES.values():
        params = dict.fromkeys(spec.required(), "x")
        assert set(encode_params(spec.name, params)) == set(spec.required())


def test_unknown_job_type_lists_the_valid_ones():
    with pytest.raises(ValueError, match="JuliaBatch, JuliaParBatch"):
        jt.job_type("Spark")
