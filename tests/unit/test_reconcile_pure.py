"""The operator's pure parts: names, spec-to-parameter mapping, status and conditions."""

import pytest

from juliarun_operator.api import default_job_name
from juliarun_operator.juliarun.encoding import JOB_NAME_RE
from juliarun_operator.juliarun.errors import ParameterError
from juliarun_operator.reconcile.decision import status as st
from juliarun_operator.reconcile.decision.mapping import changed_params, job_params

NOW = "2026-11-25T10:00:00Z"


# --- names ---------------------------------------------------------------------------


def test_default_names_are_valid_deterministic_and_the_objects_alone():
    uid = "9d3f0a52-1c4b-4e0e-8f1e-2a7b5c6d8e90"
    assert default_job_name("team-a", "sim", uid) == default_job_name("team-a", "sim", uid)
    # Another object of the same namespace and name (deleted and re-created) gets another name.
    assert default_job_name("team-a", "sim", uid) != default_job_name("team-a", "sim", uid[::-1])
    long = "x" * 63
    names = {default_job_name(long, long, f"uid-{i}") for i in range(5)}
    assert len(names) == 5
    for name in names | {default_job_name("team-a", "my.job", uid), default_job_name("n", "-", uid)}:
        assert JOB_NAME_RE.fullmatch(name), name


# --- mapping -------------------------------------------------------------------------


def secrets(ns, name, key):
    if (ns, name, key) == ("team", "nb", "pw"):
        return "hunter2"
    raise LookupError(f"Secret {ns}/{name} not found")


def test_spec_fields_map_to_juliarun_parameters():
    spec = {
        "type": "Notebook",
        "runVolume": "v",
        "cpu": 2,
        "parallelism": 3,
        "ports": [{"name": "nb", "containerPort": 8888, "servicePort": 80}],
        "envVars": [{"name": "A", "value": "1"}],
        "passwordSecretRef": {"name": "nb", "key": "pw"},
        "deletionPolicy": "Orphan",
        "jobName": "x",
    }
    assert job_params(spec, "team", secrets) == {
        "run_volume": "v",
        "cpu": 2.0,
        "ports": {"nb": (8888, 80)},
        "envvars": {"A": "1"},
        "passwd": "hunter2",
    }


def test_parallelism_becomes_nworkers_where_the_type_takes_it():
    spec = {"type": "JuliaParBatch", "runVolume": "v", "startScript": "s", "parallelism": 4}
    assert job_params(spec, "ns")["nworkers"] == 4


@pytest.mark.parametrize(
    "spec, field",
    [
        (
            {"type": "Notebook", "runVolume": "v", "passwordSecretRef": {"name": "gone", "key": "pw"}},
            "passwordSecretRef",
        ),
        ({"type": "JuliaBatch", "runVolume": "v"}, "startScript"),
        ({"type": "JuliaBatch", "runVolume": "v", "startScript": "s", "cpu": -1}, "cpu"),
        ({"type": "JuliaBatch", "runVolume": "v", "startScript": "s", "bogus": 1}, "bogus"),
    ],
)
def test_bad_specs_name_the_spec_field(spec, field):
    with pytest.raises(ParameterError) as err:
        job_params(spec, "team", secrets)
    assert err.value.param == field and f"spec.{field}" in str(err.value)


def test_changed_parameters_send_changes_and_restore_defaults():
    old = {"run_volume": "v", "start_script": "s", "cpu": 2.0, "memory": "1Gi", "nworkers": 2}
    new = {"run_volume": "v", "start_script": "t", "nworkers": 5}
    assert changed_params(old, new, "JuliaParBatch") == {"start_script": "t", "cpu": 0.1, "memory": "512Mi"}


# --- status --------------------------------------------------------------------------
# (what JuliaRun's view makes of an object's status is tested through decide: test_decide.py)


def test_transition_time_moves_only_when_status_does():
    ready = st.Cond("True", "AtScale", "2/2")
    first = st.conditions_for({}, 3, "2026-01-01T00:00:00Z", st.Conditions("Running", ready, ready, ready))
    again = st.conditions_for(
        {"conditions": first}, 3, "2026-01-02T00:00:00Z", st.Conditions("Running", ready, ready, ready)
    )
    assert again == first
    down = st.Cond("False", "Scaling", "1/2")
    later = st.conditions_for(
        {"conditions": first}, 3, "2026-01-03T00:00:00Z", st.Conditions("Running", down, ready, ready)
    )
    assert [c["lastTransitionTime"] for c in later] == [
        "2026-01-03T00:00:00Z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
    ]
    assert [c["type"] for c in later] == ["Ready", "Reconciling", "Stalled"]
