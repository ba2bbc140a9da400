"""The decision for batch jobs: attempts, retries, deadlines, suspend, TTL. States in, actions out."""

from __future__ import annotations

import pytest

from juliarun_operator.api import FINALIZER, default_job_name
from juliarun_operator.juliarun.client import JobInfo, JobScale, JobStatus
from juliarun_operator.reconcile import decision as d
from juliarun_operator.reconcile.decision import batch
from juliarun_operator.reconcile.decision import status as st
from juliarun_operator.reconcile.runtime.registry import Registry

from decision_tables import NOW, cond, facts_with, kinds, written

UID = "5e0c7a1b-2f4d-4e8a-9b3c-6d7e8f9a0b1c"
NAME = default_job_name("team", "train", UID)
PARAMS = {"run_volume": "v", "start_script": "run.jl"}


def obj(spec=None, status=None, deleting=False, generation=1) -> d.ObjectState:
    spec = {"type": "JuliaBatch", "runVolume": "v", "startScript": "run.jl", **(spec or {})}
    return d.ObjectState(
        "team", "train", UID, generation, spec, status or {}, {}, (FINALIZER,), deleting, NOW - 500
    )


def info(name=NAME, completed=False, succeeded=0, started=1) -> JobInfo:
    return JobInfo(
        name,
        "JuliaBatch",
        JobStatus(completed, succeeded, started, True, False),
        JobScale(0 if completed else 1, 0 if completed else 1),
        [],
    )


facts = facts_with(PARAMS)


def after(o: d.ObjectState, plan: d.Plan, **spec) -> d.ObjectState:
    """The object once `plan`'s status write is applied (merge patch: None removes)."""
    status = dict(o.status)
    for key, value in written(plan).items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    return d.ObjectState(**{**o.__dict__, "status": status, "spec": {**o.spec, **spec}})


def running(spec=None, memory=None) -> tuple[d.ObjectState, d.Memory]:
    memory = memory or d.Memory(name=NAME, submit=d.Outcome.LANDED, submit_at=NOW - 60, params=PARAMS)
    o = obj(spec)
    return after(o, d.reconcile(o, facts([info()], memory, now=NOW - 50))), memory


# --- names -------------------------------------------------------------------------------------


def test_attempt_names_are_derived_from_the_uid_and_prove_themselves():
    o = obj(status={"attempts": 3})
    names = [batch.attempt_name(o, n) for n in (1, 2, 3)]
    assert names[0] == NAME and names[1] == NAME + "-2" and names[2] == NAME + "-3"
    assert all(batch.derived(o, n) for n in names) and not batch.derived(o, NAME + "-4")
    long = d.ObjectState(**{**o.__dict__, "name": "x" * 60})
    assert all(len(batch.attempt_name(long, n)) <= 63 for n in (1, 2, 100))
    assert batch.attempt_name(long, 12).endswith("-12")
    chosen = obj(spec={"jobName": "mine"}, status={"attempts": 2})
    assert batch.attempt_name(chosen, 2) == "mine-2" and not batch.derived(chosen, "mine-2")


# --- ending: Complete, Failed, retries ---------------------------------------------------------


def test_first_view_records_the_start_and_the_attempt():
    o, _ = running()
    assert o.status["startTime"] == st.iso(NOW - 60) and o.status["attempts"] == 1


def test_success_is_complete_with_a_completion_time_and_logs():
    o, memory = running()
    plan = d.reconcile(o, facts([info(completed=True, succeeded=1)], memory))
    fields = written(plan)
    assert kinds(plan) == [d.Kind.POST_LOGS, d.Kind.WRITE_STATUS]
    assert cond(fields, "Complete") == ("True", "Completed") and cond(fields, "Ready")[0] == "True"
    assert fields["completionTime"] == st.iso(NOW) and fields["succeeded"] == 1
    assert not any(c["type"] == "Failed" for c in fields["conditions"])


def test_failure_without_backoff_limit_is_failed_for_good():
    o, memory = running()
    fields = written(d.reconcile(o, facts([info(completed=True)], memory)))
    assert cond(fields, "Failed") == ("True", "JobFailed") and cond(fields, "Stalled")[0] == "True"
    assert fields["failed"] == 1 and fields["phase"] == "Failed" and "completionTime" not in fields


def test_a_failed_attempt_is_recorded_then_the_next_submitted_under_its_own_name():
    o, memory = running({"backoffLimit": 2})
    plan = d.reconcile(o, facts([info(completed=True)], memory))
    assert kinds(plan) == [d.Kind.POST_LOGS, d.Kind.WRITE_STATUS, d.Kind.EVENT, d.Kind.SUBMIT]
    fields = written(plan)
    assert fields["attempts"] == 2 and fields["failed"] == 1 and fields["jobName"] == NAME + "-2"
    assert fields["submitted"] is False and fields["submitTime"] == st.iso(NOW)
    assert fields["startTime"] == o.status["startTime"]  # the deadline spans attempts
    assert plan.actions[2].note.reason == "AttemptFailed" and plan.actions[3].job == NAME + "-2"
    (past,) = fields["pastAttempts"]
    assert past["attempt"] == 1 and past["jobName"] == NAME and past["result"] == "Failed"
    assert "0 of 1 workers succeeded" in past["message"]
    assert cond(fields, "Reconciling") == ("True", "Submitting")


def test_backoff_limit_two_makes_three_attempts_then_fails():
    o, memory = running({"backoffLimit": 2})
    submitted = [NAME]
    for n in (2, 3, 4):
        jobs = [info(name=nm, completed=True) for nm in submitted]
        plan = d.reconcile(o, facts(jobs, memory))
        o = after(o, plan)
        if n == 4:
            assert d.Kind.SUBMIT not in kinds(plan)
            break
        new = next(a.job for a in plan.actions if a.kind is d.Kind.SUBMIT)
        submitted.append(new)
        memory = d.Memory(name=new, submit=d.Outcome.LANDED, submit_at=NOW, params=PARAMS)
        o = after(o, d.reconcile(o, facts([*jobs, info(name=new)], memory)))  # it runs
    assert submitted == [NAME, NAME + "-2", NAME + "-3"]
    assert o.status["failed"] == 3 and cond(o.status, "Failed") == ("True", "BackoffLimitExceeded")
    assert "backoffLimit 2" in o.status["message"]


def test_a_retry_after_a_restart_finds_its_attempt_and_never_submits_it_again():
    o, memory = running({"backoffLimit": 1})
    o = after(o, d.reconcile(o, facts([info(completed=True)], memory)))  # attempt 2 recorded
    # Restarted: nothing in memory, attempt 2 may have been sent.
    plan = d.reconcile(o, facts([info(completed=True)], acting_since=NOW - 5))
    assert d.Kind.SUBMIT not in kinds(plan) and plan.requeue_after == pytest.approx(40)
    found = d.reconcile(o, facts([info(completed=True), info(name=NAME + "-2")], acting_since=NOW - 5))
    assert d.Kind.SUBMIT not in kinds(found) and written(found)["submitted"] is True


def test_no_retry_while_suspended():
    o, memory = running({"backoffLimit": 2})
    o = d.ObjectState(**{**o.__dict__, "spec": {**o.spec, "suspend": True}})
    plan = d.reconcile(o, facts([info(completed=True)], memory))
    assert d.Kind.SUBMIT not in kinds(plan)
    fields = written(plan)
    assert fields["phase"] == "Suspended" and fields["attempts"] == 2 and fields["failed"] == 1
    resumed = after(o, plan, suspend=False)
    plan = d.reconcile(resumed, facts([info(completed=True)], memory))
    assert kinds(plan)[-1] is d.Kind.SUBMIT and plan.actions[-1].job == NAME + "-2"


# --- suspend -----------------------------------------------------------------------------------


def test_suspended_before_submit_is_never_submitted():
    o = obj({"suspend": True})
    plan = d.reconcile(o, facts([]))
    assert d.Kind.SUBMIT not in kinds(plan)
    fields = written(plan)
    assert fields["phase"] == "Suspended" and cond(fields, "Suspended") == ("True", "Suspended")
    assert "submitted" not in fields
    resumed = d.reconcile(after(o, plan, suspend=False), facts([]))
    assert kinds(resumed) == [d.Kind.SUBMIT] and resumed.actions[0].job == NAME


def test_suspend_deletes_the_running_job_then_resume_submits_the_next_attempt():
    o, memory = running()
    o = d.ObjectState(**{**o.__dict__, "spec": {**o.spec, "suspend": True}})
    plan = d.reconcile(o, facts([info()], memory))
    assert kinds(plan) == [d.Kind.DELETE] and plan.actions[0].job == NAME
    memory.deleted_jobs.add(NAME)
    plan = d.reconcile(o, facts([info()], memory))  # the snapshot still shows it
    fields = written(plan)
    assert fields["phase"] == "Suspended" and fields["submitted"] is True and fields["startTime"] is None
    o = after(o, plan, suspend=False)
    plan = d.reconcile(o, facts([], d.Memory()))  # even after a restart
    assert kinds(plan) == [d.Kind.WRITE_STATUS, d.Kind.EVENT, d.Kind.SUBMIT]
    fields = written(plan)
    assert fields["attempts"] == 2 and fields.get("failed") == 0 and fields["jobName"] == NAME + "-2"
    assert fields["startTime"] == st.iso(NOW) and cond(fields, "Suspended") == ("False", "Resumed")


def test_suspend_waits_for_a_submit_that_may_still_land():
    memory = d.Memory(name=NAME, submit=d.Outcome.UNKNOWN, submit_at=NOW - 5)
    plan = d.reconcile(obj({"suspend": True}), facts([], memory))
    assert written(plan)["phase"] == "Suspended" and plan.requeue_after == pytest.approx(35)
    assert kinds(d.reconcile(obj({"suspend": True}), facts([info()], memory))) == [d.Kind.DELETE]


# --- the deadline ------------------------------------------------------------------------------


def test_deadline_deletes_a_running_job_and_fails_it():
    o, memory = running({"activeDeadlineSeconds": 100})
    assert d.reconcile(o, facts([info()], memory, now=NOW - 10)).requeue_after == pytest.approx(50)
    plan = d.reconcile(o, facts([info()], memory, now=NOW + 40))
    assert kinds(plan) == [d.Kind.POST_LOGS, d.Kind.DELETE]
    memory.logs_posted, memory.last_logs = NAME, "line 1\nline 2"
    memory.deleted_jobs.add(NAME)
    plan = d.reconcile(o, facts([info()], memory, now=NOW + 40))
    fields = written(plan)
    assert cond(fields, "Failed") == ("True", "DeadlineExceeded") and fields["failed"] == 1
    assert fields["lastLogs"] == "line 1\nline 2"  # kept, though the job is gone
    assert d.Kind.EVENT in kinds(plan)


def test_the_first_view_already_looks_again_at_the_deadline():
    # startTime is written by this very plan: the deadline counts from it, not from "never".
    memory = d.Memory(name=NAME, submit=d.Outcome.LANDED, submit_at=NOW - 2, params=PARAMS)
    plan = d.reconcile(obj({"activeDeadlineSeconds": 5}), facts([info()], memory))
    assert written(plan)["startTime"] == st.iso(NOW - 2) and plan.requeue_after == pytest.approx(3)


def test_a_job_that_completes_before_the_deadline_is_seen_is_complete():
    o, memory = running({"activeDeadlineSeconds": 10})
    fields = written(d.reconcile(o, facts([info(completed=True, succeeded=1)], memory)))
    assert cond(fields, "Complete")[0] == "True"


def test_no_deadline_while_suspended():
    o, memory = running({"activeDeadlineSeconds": 10})
    o = d.ObjectState(**{**o.__dict__, "spec": {**o.spec, "suspend": True}})
    memory.deleted_jobs.add(NAME)
    fields = written(d.reconcile(o, facts([], memory, now=NOW + 100)))
    assert fields["phase"] == "Suspended"


# --- after the end: TTL ------------------------------------------------------------------------


def finished(spec=None) -> d.ObjectState:
    o, memory = running(spec)
    return after(o, d.reconcile(o, facts([info(completed=True, succeeded=1)], memory)))


def test_ttl_deletes_the_object_at_its_time_and_not_before():
    o = finished({"ttlSecondsAfterFinished": 30})
    early = d.reconcile(o, facts([], now=NOW + 10))
    assert early.actions == () and early.requeue_after == pytest.approx(20)
    plan = d.reconcile(o, facts([], now=NOW + 30))
    assert kinds(plan) == [d.Kind.DELETE_OBJECT]


def test_a_finished_job_is_left_alone_without_a_ttl():
    o = finished()
    plan = d.reconcile(o, facts([]))  # gone from JuliaRun: not "missing", it has ended
    assert plan.actions == () and plan.requeue_after is None


def test_a_spec_edit_after_the_end_is_observed_without_calling_juliarun():
    o = finished()
    o = d.ObjectState(**{**o.__dict__, "generation": 2, "spec": {**o.spec, "ttlSecondsAfterFinished": 5}})
    plan = d.reconcile(o, facts([], now=NOW + 1))
    assert kinds(plan) == [d.Kind.WRITE_STATUS] and plan.actions[0].status == {"observedGeneration": 2}


# --- deletion ----------------------------------------------------------------------------------


def test_deletion_during_a_retry_deletes_every_attempt():
    o, memory = running({"backoffLimit": 2})
    o = after(o, d.reconcile(o, facts([info(completed=True)], memory)))
    gone = d.ObjectState(**{**o.__dict__, "deleting": True})
    jobs = [info(completed=True), info(name=NAME + "-2")]
    memory = d.Memory(name=NAME + "-2", submit=d.Outcome.LANDED, submit_at=NOW)
    plan = d.reconcile(gone, facts(jobs, memory))
    assert kinds(plan) == [d.Kind.DELETE] and plan.actions[0].job == NAME
    memory.deleted_jobs.add(NAME)
    plan = d.reconcile(gone, facts(jobs, memory))
    assert kinds(plan) == [d.Kind.DELETE] and plan.actions[0].job == NAME + "-2"
    memory.deleted_jobs.add(NAME + "-2")
    assert kinds(d.reconcile(gone, facts(jobs, memory))) == [d.Kind.REMOVE_FINALIZER]


def test_deletion_never_retries():
    o, memory = running({"backoffLimit": 2})
    gone = d.ObjectState(**{**o.__dict__, "deleting": True})
    plan = d.reconcile(gone, facts([info(completed=True)], memory))
    assert d.Kind.SUBMIT not in kinds(plan)


def test_a_forgotten_object_leaves_no_route_of_any_attempt():
    o, memory = running({"backoffLimit": 2})
    o = after(o, d.reconcile(o, facts([info(completed=True)], memory)))  # attempt 2
    memory = d.Memory(name=NAME + "-2", submit=d.Outcome.LANDED, submit_at=NOW, params=PARAMS)
    o = after(o, d.reconcile(o, facts([info(name=NAME + "-2")], memory)))  # it runs
    o = after(o, d.reconcile(o, facts([info(name=NAME + "-2", completed=True)], memory)))  # attempt 3
    assert o.status["jobName"] == NAME + "-3"
    body = {
        "metadata": {"namespace": "team", "name": "train", "uid": UID, "resourceVersion": "5"},
        "spec": dict(o.spec),
        "status": dict(o.status),
    }
    registry = Registry()
    registry.update("ADDED", body)
    names = {NAME, NAME + "-2", NAME + "-3"}
    for name in names:  # each was this object's current job once
        registry.route(name, ("team", "train"), None)
    assert registry.routed(names) == {("team", "train")}
    registry.update("DELETED", body)
    assert registry.routed(names) == set()
