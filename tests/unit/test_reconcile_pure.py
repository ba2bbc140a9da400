"""The operator's pure parts: names, spec-to-parameter mapping, status and conditions."""

import pytest

from juliarun_operator.juliarun.client import JobInfo, JobScale, JobStatus
from juliarun_operator.juliarun.errors import ParameterError
from juliarun_operator.juliarun.encoding import JOB_NAME_RE
from juliarun_operator.reconcile import status as st
from juliarun_operator.reconcile.mapping import changed_params, job_params
from juliarun_operator.reconcile.naming import default_job_name

NOW = "2026-11-25T10:00:00Z"


# --- names ---------------------------------------------------------------------------

def test_default_names_are_valid_deterministic_and_distinct():
    assert default_job_name("team-a", "sim") == default_job_name("team-a", "sim")
    assert default_job_name("a-b", "c") != default_job_name("a", "b-c")
    long = "x" * 63
    names = {default_job_name(long, long + "y" * i) for i in range(5)}
    assert len(names) == 5
    for name in names | {default_job_name("team-a", "my.job"), default_job_name("n", "-")}:
        assert JOB_NAME_RE.match(name), name


# --- mapping -------------------------------------------------------------------------

def secrets(ns, name, key):
    if (ns, name, key) == ("team", "nb", "pw"):
        return "hunter2"
    raise LookupError(f"Secret {ns}/{name} not found")


def test_spec_fields_map_to_juliarun_parameters():
    spec = {"type": "Notebook", "runVolume": "v", "cpu": 2, "parallelism": 3,
            "ports": [{"name": "nb", "containerPort": 8888, "servicePort": 80}],
            "envVars": [{"name": "A", "value": "1"}], "passwordSecretRef": {"name": "nb", "key": "pw"},
            "deletionPolicy": "Orphan", "jobName": "x"}
    assert job_params(spec, "team", secrets) == {
        "run_volume": "v", "cpu": 2.0, "ports": {"nb": (8888, 80)}, "envvars": {"A": "1"},
        "passwd": "hunter2"}


def test_parallelism_becomes_nworkers_where_the_type_takes_it():
    spec = {"type": "JuliaParBatch", "runVolume": "v", "startScript": "s", "parallelism": 4}
    assert job_params(spec, "ns")["nworkers"] == 4


@pytest.mark.parametrize("spec, field", [
    ({"type": "Notebook", "runVolume": "v", "passwordSecretRef": {"name": "gone", "key": "pw"}}, "passwordSecretRef"),
    ({"type": "JuliaBatch", "runVolume": "v"}, "startScript"),
    ({"type": "JuliaBatch", "runVolume": "v", "startScript": "s", "cpu": -1}, "cpu"),
    ({"type": "JuliaBatch", "runVolume": "v", "startScript": "s", "bogus": 1}, "bogus"),
])
def test_bad_specs_name_the_spec_field(spec, field):
    with pytest.raises(ParameterError) as err:
        job_params(spec, "team", secrets)
    assert err.value.param == field and f"spec.{field}" in str(err.value)


def test_changed_parameters_send_changes_and_restore_defaults():
    old = {"run_volume": "v", "start_script": "s", "cpu": 2.0, "memory": "1Gi", "nworkers": 2}
    new = {"run_volume": "v", "start_script": "t", "nworkers": 5}
    assert changed_params(old, new, "JuliaParBatch") == {"start_script": "t", "cpu": 0.1, "memory": "512Mi"}


# --- status --------------------------------------------------------------------------

def view(**status):
    spec = {"type": "Webserver", "parallelism": 2}
    return st.ObjectView("ns", "web", 3, spec, {"jobName": "j", "submitted": True, **status})


def info(created=True, completed=False, succeeded=0, started=2, running=2, requested=2):
    return JobInfo("j", "Webserver", JobStatus(completed, succeeded, started, created, False),
                   JobScale(running, requested), ["10.0.0.1:80"])


def conditions(fields):
    return {c["type"]: (c["status"], c["reason"]) for c in fields["conditions"]}


def test_at_scale_is_ready_and_idle():
    fields = st.view_of(view(), info(), now=NOW)
    assert fields["phase"] == "Running" and fields["workers"] == "2/2"
    assert conditions(fields) == {"Ready": ("True", "AtScale"), "Reconciling": ("False", "Idle"),
                                  "Stalled": ("False", "Healthy")}
    assert all(c["observedGeneration"] == 3 for c in fields["conditions"])


def test_scaling_and_scheduled_are_reconciling():
    assert conditions(st.view_of(view(), info(running=1), now=NOW))["Reconciling"] == ("True", "Scaling")
    assert conditions(st.view_of(view(), info(requested=1, running=1), now=NOW))["Ready"] == ("False", "Scaling")
    fields = st.view_of(view(), info(created=False), now=NOW)
    assert fields["phase"] == "Pending" and conditions(fields)["Reconciling"] == ("True", "Scheduled")


def test_completion_and_failure():
    assert st.view_of(view(), info(completed=True, succeeded=2), now=NOW)["phase"] == "Completed"
    failed = st.view_of(view(), info(completed=True, succeeded=1), now=NOW)
    assert failed["phase"] == "Failed" and conditions(failed)["Stalled"] == ("True", "JobFailed")
    assert "1 of 2" in failed["message"]


def test_missing_job_is_reported_not_resubmitted():
    fields = st.view_of(view(), None, now=NOW)
    assert fields["phase"] == "Failed" and conditions(fields)["Stalled"] == ("True", "JobMissing")


def test_unreachable_keeps_phase_and_says_why():
    fields = st.view_of(view(phase="Running"), None, reachable=False, problem="boom", now=NOW)
    assert fields["phase"] == "Running"
    assert conditions(fields)["Ready"] == ("Unknown", "JuliaRunUnavailable") and fields["message"] == "boom"


def test_transition_time_moves_only_when_status_does():
    first = st.view_of(view(), info(), now="2026-01-01T00:00:00Z")
    again = st.view_of(view(**first), info(), now="2026-01-02T00:00:00Z")
    assert not st.changed(view(**first).status, again)
    later = st.view_of(view(**first), info(running=1), now="2026-01-03T00:00:00Z")
    ready = next(c for c in later["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-01-03T00:00:00Z"


def test_a_handler_stall_survives_the_sync_until_the_spec_changes():
    stalled = [{"type": "Stalled", "status": "True", "reason": "UpdateRefused", "message": "no",
                "observedGeneration": 3, "lastTransitionTime": NOW}]
    assert conditions(st.view_of(view(conditions=stalled), info(), now=NOW))["Stalled"] == ("True", "UpdateRefused")
    newer = st.ObjectView("ns", "web", 4, view().spec, {"jobName": "j", "conditions": stalled})
    assert conditions(st.view_of(newer, info(), now=NOW))["Stalled"] == ("False", "Healthy")


def test_paused_and_deleting():
    paused = st.ObjectView("ns", "web", 1, {"type": "Webserver"}, {}, paused=True)
    assert st.view_of(paused, None, now=NOW)["phase"] == "Paused"
    deleting = st.ObjectView("ns", "web", 1, {"type": "Webserver"}, {}, deleting=True)
    assert st.view_of(deleting, None, now=NOW)["phase"] == "Deleting"
