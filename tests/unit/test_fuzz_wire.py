"""Fuzzed specs through the spec-to-parameter mapping, the wire encoding and the query string.

No servers: the query is built exactly as `Client._call` builds it (`Client._query`), turned
into a URL by requests as `Client._send` does, and parsed back twice, with the standard
library and with yarl (what the aiohttp-based JuliaRun server reads it with).

Properties: no value can add, drop or change another query parameter (the parsed query has
exactly the expected keys once each; jruntok, jrunns and name are unchanged; each value is
its encoded text), and every spec either encodes faithfully (decode(encode(p)) == check(p))
or is refused with a ParameterError that names the offending field.
"""

from __future__ import annotations

import base64
import math
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import yarl
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from juliarun_operator.api import default_job_name
from juliarun_operator.juliarun import Client, Context, Job
from juliarun_operator.juliarun import jobtypes as jt
from juliarun_operator.juliarun.decoding import decode_params
from juliarun_operator.juliarun.encoding import check_job_name, check_params, encode_params
from juliarun_operator.juliarun.errors import ParameterError
from juliarun_operator.reconcile.decision.mapping import FIELD_TO_PARAM, job_params

TOKEN = "fuzz-t0ken/+=&?#"
URL = "http://juliarun.invalid:8080/base/"
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ------------------------------------------------------------------------------

# Characters that break naive query strings, Julia literals or shells.
NASTY = "&=#%?+;/ \"'\\$\n\r\t\x01\x1b\x7f\x85\u2028\ufeff{}[]()=>,:é中😀"
nasty_text = st.text(alphabet=st.sampled_from(NASTY), max_size=12)
# NUL (refused in plain strings; kept, escaped, inside lists and maps) comes from st.text
# now and then, and from the explicit examples.
any_text = st.one_of(
    st.text(max_size=20),
    nasty_text,
    st.lists(st.one_of(st.text(max_size=4), nasty_text), max_size=4).map("".join),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e-300),
    st.floats(min_value=1e300),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.sampled_from([0, 0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e6, 1e-5, 2**53 + 1]),
)
port_numbers = st.one_of(
    st.integers(min_value=-2, max_value=70000), st.sampled_from([0, 1, 65535, 65536, True, False, 1.0, "80"])
)
key_text = st.one_of(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,8}\Z"), any_text)
scalars = st.one_of(any_text, numbers, st.none())


def value_for(param: jt.Param) -> st.SearchStrategy:
    """Values of the CRD's shape for `param`'s field, mostly plausible, often wrong."""
    kind = param.kind
    if kind in (jt.STRING,):
        return st.one_of(any_text, any_text, numbers, st.lists(any_text, max_size=2))
    if kind == jt.NUMBER:
        return st.one_of(numbers, any_text)
    if kind == jt.INTEGER:
        return st.one_of(st.integers(min_value=0, max_value=2**70), numbers, any_text)
    if kind == jt.BOOLEAN:
        return st.one_of(st.booleans(), st.booleans(), numbers, any_text)
    if kind == jt.QUANTITY:
        return st.one_of(
            st.from_regex(r"\A[0-9]{1,5}(\.[0-9]{1,3})?(Ki|Mi|Gi|Ti|k|M|G)?\Z"), any_text, numbers
        )
    if kind == jt.ENUM:
        return st.one_of(st.sampled_from(param.choices), any_text, numbers)
    if kind == jt.STRING_LIST:
        return st.one_of(st.lists(any_text, max_size=4), st.lists(scalars, max_size=3), any_text)
    if kind == jt.PORTS:
        entry = st.fixed_dictionaries(
            {"name": key_text, "containerPort": port_numbers, "servicePort": port_numbers}
        )
        return st.lists(entry, max_size=4, unique_by=lambda e: e["name"])
    if kind == jt.ENV:
        entry = st.fixed_dictionaries({"name": key_text, "value": st.one_of(any_text, any_text, numbers)})
        return st.lists(entry, max_size=4, unique_by=lambda e: e["name"])
    if kind == jt.SECRET:
        return st.fixed_dictionaries({"name": st.just("pw"), "key": st.just("pw")})
    raise AssertionError(kind)


key_names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,8}\Z")


def good_value_for(param: jt.Param) -> st.SearchStrategy:
    """Values the table accepts for `param`'s field (text still arbitrary unicode)."""
    kind = param.kind
    if kind == jt.STRING:
        return any_text
    if kind == jt.NUMBER:
        return st.one_of(
            st.floats(min_value=0, allow_infinity=False),
            st.integers(0, 10**30),
            st.sampled_from([0, 5e-324, 1.7976931348623157e308, 1e6, 1e-5, 0.1]),
        )
    if kind == jt.INTEGER:
        return st.integers(min_value=0, max_value=2**70)
    if kind == jt.BOOLEAN:
        return st.booleans()
    if kind == jt.QUANTITY:
        return st.from_regex(r"\A[0-9]{1,5}(\.[0-9]{1,3})?(Ki|Mi|Gi|Ti|k|M|G)?\Z")
    if kind == jt.ENUM:
        return st.sampled_from(param.choices)
    if kind == jt.STRING_LIST:
        return st.lists(any_text, max_size=4)
    if kind == jt.PORTS:
        port = st.integers(1, 65535)
        entry = st.fixed_dictionaries({"name": key_names, "containerPort": port, "servicePort": port})
        return st.lists(entry, max_size=4, unique_by=lambda e: e["name"])
    if kind == jt.ENV:
        entry = st.fixed_dictionaries({"name": key_names, "value": any_text})
        return st.lists(entry, max_size=4, unique_by=lambda e: e["name"])
    return value_for(param)


@st.composite
def specs(draw):
    """A spec of a valid type: required fields present, some optional ones, rarely an unknown one.

    Half the specs take only values of the right kind (so they reach the wire); the others
    take each value from anything the CRD's shape allows.
    """
    job_type = draw(st.sampled_from(sorted(jt.JOB_TYPES)))
    spec_type = jt.JOB_TYPES[job_type]
    wild = draw(st.booleans())
    spec = {"type": job_type}
    for name in spec_type.params:
        param = jt.PARAMETERS[name]
        if name == "nworkers":
            continue  # set through spec.parallelism
        values = st.one_of(good_value_for(param), value_for(param)) if wild else good_value_for(param)
        if name in spec_type.required() or draw(st.integers(0, 2)) == 0:
            spec[param.field] = draw(values)
    if spec_type.scalable and draw(st.booleans()):
        spec["parallelism"] = draw(
            st.one_of(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=2**64))
        )
    if wild and draw(st.integers(0, 4)) == 0:  # a field of another type, or no field at all
        # (not passwordSecretRef: the CRD makes it an object; see MALFORMED for a string there)
        field = draw(
            st.sampled_from([*sorted(set(FIELD_TO_PARAM) - {"passwordSecretRef"}), "bogus", "nworkers"])
        )
        spec[field] = draw(any_text)
    return spec


dns_label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
job_names = st.one_of(
    dns_label,
    st.builds(default_job_name, dns_label, dns_label, st.uuids().map(str)),
    st.builds(default_job_name, any_text.filter(bool), any_text.filter(bool), any_text),
)


# --- the query as the client sends it -----------------------------------------------------------


def sent_url(namespace: str, job: Job, wire: dict[str, str]) -> tuple[str, dict[str, str]]:
    client = Client(Context(url=URL, token=TOKEN, namespace=namespace))
    query = client._query(job, wire)
    url = URL.rstrip("/") + f"/submitJob/{job.type}/"
    return requests.Request("GET", url, params=query).prepare().url, query


def check_query(url: str, query: dict[str, str], namespace: str, job_name: str) -> None:
    raw = urlsplit(url).query
    assert "#" not in url and "\n" not in url and " " not in url
    stdlib = parse_qsl(raw, keep_blank_values=True)
    yarl_pairs = list(yarl.URL(url, encoded=True).query.items())
    for parsed in (stdlib, yarl_pairs):
        keys = [k for k, _ in parsed]
        assert sorted(keys) == sorted(query), f"keys changed: {keys} vs {list(query)}"
        assert len(set(keys)) == len(keys), f"a key appears twice: {keys}"
        got = dict(parsed)
        assert got == query
        assert got["jruntok"] == base64.b64encode(TOKEN.encode()).decode()
        assert got["jrunns"] == namespace
        assert got["name"] == job_name


# --- properties ------------------------------------------------------------------------------


def _read_secret(value: str):
    def read(namespace: str, name: str, key: str) -> str:
        return value

    return read


@SETTINGS
@given(spec=specs(), namespace=any_text, job_name=job_names, secret=any_text)
@example(
    spec={
        "type": "Webserver",
        "runVolume": "a&jruntok=x",
        "cfgFile": "b#c",
        "image": "x=1&name=evil",
        "envVars": [{"name": "A", "value": "1&jrunns=other"}],
    },
    namespace="ns&name=other",
    job_name="web",
    secret="",
)
@example(
    spec={"type": "Notebook", "runVolume": "v", "passwordSecretRef": {"name": "pw", "key": "pw"}},
    namespace="ns",
    job_name="nb",
    secret="pw\x00&passwd=",
)
@example(
    spec={
        "type": "Generic",
        "runVolume": "%00%26",
        "image": "i",
        "command": ["sh", "-c", "echo $HOME\n"],
        "args": ['"; rm -rf /', "\\"],
        "cpu": 1e-7,
        "memory": "1.5Gi",
    },
    namespace="%26",
    job_name="g",
    secret="",
)
def test_fuzzed_specs_encode_faithfully_or_are_refused_by_name(spec, namespace, job_name, secret):
    try:
        params = job_params(spec, namespace, _read_secret(secret))
    except ParameterError as exc:
        assert exc.param, f"ParameterError without a field: {exc}"
        assert exc.param in spec or (exc.param == "nworkers" and "parallelism" in spec), (exc.param, spec)
        assert f"spec.{exc.param}" in str(exc)
        event(f"refused by the mapping: {exc.param}")
        return
    assert set(params) <= set(jt.JOB_TYPES[spec["type"]].params)
    if secret and "passwordSecretRef" in spec:
        assert params["passwd"] == secret
    wire = encode_params(spec["type"], params)
    assert all(isinstance(v, str) for v in wire.values())
    assert decode_params(spec["type"], wire) == check_params(spec["type"], params)
    try:
        check_job_name(job_name)
    except ParameterError as exc:
        assert exc.param == "name"
        event("job name refused")
        return
    event("sent")
    job = Job(spec["type"], job_name)
    url, query = sent_url(namespace, job, wire)
    assert set(query) == {"jruntok", "jrunns", "name", *wire}
    check_query(url, query, namespace, job_name)
    decoded = decode_params(spec["type"], dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)))
    assert decoded == check_params(spec["type"], params)


@SETTINGS
@given(
    job_type=st.sampled_from(sorted(jt.JOB_TYPES)),
    params=st.dictionaries(
        st.sampled_from(sorted(jt.PARAMETERS)),
        scalars
        | st.lists(scalars, max_size=3)
        | st.dictionaries(any_text, st.one_of(any_text, st.tuples(port_numbers, port_numbers)), max_size=3),
        max_size=6,
    ),
    partial=st.booleans(),
)
def test_fuzzed_parameters_to_encode_params(job_type, params, partial):
    """The client's own entry point (submit_job/update_job kwargs): faithful or ParameterError."""
    try:
        wire = encode_params(job_type, params, partial=partial)
    except ParameterError as exc:
        assert exc.param in params or exc.param in jt.JOB_TYPES[job_type].required()
        return
    checked = check_params(job_type, params, partial=partial)
    assert decode_params(job_type, wire, partial=partial) == checked
    url, query = sent_url("ns", Job(job_type, "j"), wire)
    check_query(url, query, "ns", "j")


@SETTINGS
@given(
    extra=st.dictionaries(
        st.one_of(any_text, st.sampled_from(["jruntok", "jrunns", "name"])), any_text, max_size=5
    )
)
def test_no_extra_query_value_overrides_the_connections_own(extra):
    """Keys other calls add (force, count, port, ...) can never replace jruntok/jrunns/name."""
    client = Client(Context(url=URL, token=TOKEN, namespace="ns"))
    try:
        query = client._query(Job("Webserver", "web"), extra)
    except ParameterError as exc:
        assert exc.param in ("jruntok", "jrunns", "name") and exc.param in extra
        return
    url = requests.Request("GET", URL, params=query).prepare().url
    check_query(url, query, "ns", "web")


@SETTINGS
@given(st.one_of(st.from_regex(r"\A[a-z0-9-]{1,70}\n?\Z"), any_text))
@example("abc\n")
def test_job_names_are_whole_dns_labels_or_refused(name):
    try:
        check_job_name(name)
    except ParameterError as exc:
        assert exc.param == "name"
        accepted = False
    else:
        accepted = True
    assert accepted == bool(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name))


# --- found by fuzzing (fixed in encoding.py / mapping.py: fullmatch, float overflow, mapping errors) ---


def test_validators_refuse_a_trailing_newline():
    refused = []
    for check in (
        lambda: check_job_name("abc\n"),
        lambda: check_params("Webserver", {"run_volume": "v", "cfg_file": "c", "memory": "512Mi\n"}),
        lambda: check_params("Webserver", {"run_volume": "v", "cfg_file": "c", "envvars": {"A\n": "1"}}),
        lambda: check_params("Webserver", {"run_volume": "v", "cfg_file": "c", "ports": {"p\n": (1, 2)}}),
    ):
        try:
            check()
        except ParameterError:
            refused.append(True)
        else:
            refused.append(False)
    assert all(refused), refused


MALFORMED = [
    ({"type": "Webserver", "runVolume": "v", "cfgFile": "c", "cpu": 10**400}, "cpu"),
    ({"type": "Webserver", "runVolume": "v", "cfgFile": "c", "ports": [{"name": "a"}]}, "ports"),
    ({"type": "Webserver", "runVolume": "v", "cfgFile": "c", "ports": "http"}, "ports"),
    ({"type": "Webserver", "runVolume": "v", "cfgFile": "c", "ports": 80}, "ports"),
    (
        {"type": "Webserver", "runVolume": "v", "cfgFile": "c", "envVars": [{"name": ["A"], "value": "1"}]},
        "envVars",
    ),
    ({"type": "Webserver", "runVolume": "v", "cfgFile": "c", "envVars": {"A": "1"}}, "envVars"),
    ({"type": "Webserver", "runVolume": "v", "cfgFile": "c", "parallelism": -1}, "parallelism"),
    ({"type": "Notebook", "runVolume": "v", "passwordSecretRef": "pw"}, "passwordSecretRef"),
]


@pytest.mark.parametrize("spec, field", MALFORMED, ids=[f"case{i}" for i in range(len(MALFORMED))])
def test_malformed_specs_are_parameter_errors(spec, field):
    """A spec the mapping cannot read is a ParameterError naming the spec's field.

    Found by fuzzing: a huge integer raised OverflowError in check_value, a malformed
    ports/envVars value KeyError/TypeError in mapping._from_spec (Runtime.ensure catches only
    ParameterError/ValueError), and an invalid parallelism was reported as spec.nworkers.
    """
    with pytest.raises(ParameterError) as caught:
        job_params(spec, "ns", _read_secret("pw"))
    assert caught.value.param == field
    assert f"spec.{field}" in str(caught.value)


def test_julia_float_round_trips_extremes():
    from juliarun_operator.juliarun.encoding import julia_float

    for value in (5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e16, 123456.0, 0.1 + 0.2):
        assert float(julia_float(value)) == value
    assert not math.isnan(float(julia_float(1.0)))
