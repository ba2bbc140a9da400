"""The decision function, case by case: states and events in, actions and status out."""

from __future__ import annotations

import json

import pytest

from juliarun_operator.api import ADOPT_ANNOTATION, FINALIZER, PAUSE_ANNOTATION, default_job_name
from juliarun_operator.juliarun.client import JobInfo, JobScale, JobStatus
from juliarun_operator.reconcile import decision as d
from juliarun_operator.reconcile.decision import status as st
from juliarun_operator.reconcile.decision.rules import handover

from decision_tables import NOW, cond, facts_with, kinds, written

UID = "0b5c1e2a-7d3f-4c4e-9a51-3f1d2b6c8e90"
NAME = default_job_name("team", "web", UID)
PARAMS = {"run_volume": "v", "cfg_file": "c", "nworkers": 2}


def obj(
    status=None,
    spec=None,
    annotations=None,
    finalizers=(FINALIZER,),
    deleting=False,
    generation=1,
    created=NOW - 100,
) -> d.ObjectState:
    spec = {"type": "Webserver", "runVolume": "v", "cfgFile": "c", "parallelism": 2, **(spec or {})}
    return d.ObjectState(
        "team",
        "web",
        UID,
        generation,
        spec,
        status or {},
        annotations or {},
        tuple(finalizers),
        deleting,
        created,
    )


def info(
    name=NAME,
    running=2,
    requested=2,
    created=True,
    completed=False,
    succeeded=0,
    started=2,
    job_type="Webserver",
) -> JobInfo:
    return JobInfo(
        name,
        job_type,
        JobStatus(completed, succeeded, started, created, False),
        JobScale(running, requested),
        ["10.0.0.1:80"],
    )


facts = facts_with(PARAMS)


def settled(plan: d.Plan) -> dict:
    """The status an object has after `plan`'s write."""
    return {k: v for k, v in written(plan).items() if v is not None}


# --- submit ------------------------------------------------------------------------------------


def test_new_object_gets_its_finalizer_and_is_submitted_without_a_status_write():
    plan = d.reconcile(obj(finalizers=()), facts())
    assert kinds(plan) == [d.Kind.ADD_FINALIZER, d.Kind.SUBMIT]
    assert plan.actions[1].job == NAME and plan.actions[1].params == PARAMS
    assert plan.wait_snapshot


def test_a_chosen_name_is_recorded_before_it_is_submitted():
    plan = d.reconcile(obj(spec={"jobName": "team-web"}), facts())
    assert kinds(plan) == [d.Kind.WRITE_STATUS, d.Kind.SUBMIT]
    intent = plan.actions[0].status
    assert intent["jobName"] == "team-web" and intent["submitTime"] and intent["submitted"] is False


def test_notebook_scale_follows_its_submit():
    plan = d.reconcile(obj(spec={"type": "Notebook", "cfgFile": None}), facts(params={"run_volume": "v"}))
    assert kinds(plan) == [d.Kind.SUBMIT, d.Kind.SET_SCALE] and plan.actions[1].scale == 2


def test_first_view_is_one_status_write_with_everything():
    memory = d.Memory(name=NAME, submit=d.Outcome.LANDED, submit_at=NOW - 5, params=PARAMS)
    plan = d.reconcile(obj(), facts([info()], memory))
    fields = written(plan)
    assert kinds(plan) == [d.Kind.WRITE_STATUS]
    assert fields["jobName"] == NAME and fields["submitted"] is True and fields["phase"] == "Running"
    assert fields["scale"] == {"running": 2, "requested": 2} and cond(fields, "Ready") == ("True", "AtScale")
    assert fields["connection"] == "default" and fields["parametersHash"]


def test_steady_state_does_nothing():
    memory = d.Memory(name=NAME, submit=d.Outcome.LANDED, submit_at=NOW - 50, params=PARAMS)
    first = d.reconcile(obj(), facts([info()], memory))
    again = d.reconcile(obj(status=settled(first)), facts([info()], memory, now=NOW + 60))
    assert again.actions == () and not again.wait_snapshot


def test_a_landed_submit_waits_for_a_snapshot_taken_after_its_answer():
    memory = d.Memory(name=NAME, submit=d.Outcome.LANDED, submit_at=NOW - 2, landed_at=NOW)
    plan = d.reconcile(obj(), facts([], memory, snapshot_time=NOW - 1))
    assert plan.actions == () and plan.wait_snapshot
    # Asked for while the submit was on its way (after it was sent, before JuliaRun answered):
    # JuliaRun may have read its jobs before this one was there. Not "deleted outside".
    plan = d.reconcile(obj(), facts([], memory, snapshot_time=NOW - 1.5))
    assert plan.actions == () and plan.wait_snapshot
    # Asked for after the answer, and the job is not there: it is missing.
    plan = d.reconcile(obj(), facts([], memory, snapshot_time=NOW + 1, now=NOW + 2))
    assert cond(written(plan), "Stalled") == ("True", "JobMissing")


# --- whose job is it ---------------------------------------------------------------------------


def test_a_chosen_name_is_submitted_only_after_a_look_taken_since_the_object_exists():
    plan = d.reconcile(obj(spec={"jobName": "team-web"}, created=NOW - 1), facts([], snapshot_time=NOW - 1.5))
    assert d.Kind.SUBMIT not in kinds(plan) and plan.wait_snapshot


def test_a_taken_chosen_name_is_a_conflict_without_any_submit():
    plan = d.reconcile(obj(spec={"jobName": "team-theirs"}), facts([info("team-theirs")]))
    fields = written(plan)
    assert d.Kind.SUBMIT not in kinds(plan) and d.Kind.EVENT in kinds(plan)
    assert cond(fields, "Stalled") == ("True", "Conflict") and fields["jobName"] is None


def refused(name: str) -> d.Memory:
    """This process's submit of `name` was refused a moment ago."""
    return d.Memory(
        name=name, submit=d.Outcome.REFUSED, refusal="no", refused_generation=1, refusals=1, refused_at=NOW
    )


def test_a_refused_chosen_name_is_forgotten_so_no_restart_can_adopt_a_job_of_that_name():
    memory = refused("team-mine")
    status = {"jobName": "team-mine", "submitTime": st.iso(NOW - 3), "submitted": False}
    plan = d.reconcile(obj(spec={"jobName": "team-mine"}, status=status), facts([], memory))
    fields = written(plan)
    assert cond(fields, "Stalled") == ("True", "SubmitRefused") and fields["jobName"] is None
    # Restarted (no memory), a stranger's job of that name has appeared: not adopted.
    after = d.reconcile(obj(spec={"jobName": "team-mine"}, status=settled(plan)), facts([info("team-mine")]))
    assert cond(written(after), "Stalled") == ("True", "Conflict")


def test_a_refused_resubmit_of_a_default_name_finds_its_own_job_and_deletes_it_with_the_object():
    """The default name hashes the UID: whatever refused the resubmit (an earlier submit landed
    unanswered), the job of that name is this object's, not a conflict, and deletion takes it."""
    memory = refused(NAME)
    plan = d.reconcile(obj(), facts([info()], memory))
    assert "Conflict" not in json.dumps([dict(a.status) for a in plan.actions])
    gone = d.reconcile(deleting(status={"phase": "Running"}), facts([info()], memory))
    assert kinds(gone) == [d.Kind.DELETE]


def test_a_refused_submit_with_the_name_taken_is_a_conflict_whatever_the_code():
    memory = refused("theirs")
    status = {"jobName": "theirs", "submitTime": st.iso(NOW - 3), "submitted": False}
    plan = d.reconcile(obj(spec={"jobName": "theirs"}, status=status), facts([info("theirs")], memory))
    assert cond(written(plan), "Stalled") == ("True", "Conflict")
    assert d.Kind.DELETE not in kinds(plan)


def test_a_refused_submit_without_a_job_is_stalled_and_retried_ever_more_slowly():
    memory = d.Memory(
        name=NAME,
        submit=d.Outcome.REFUSED,
        refusal="bad cpu",
        refused_generation=1,
        refusals=3,
        refused_at=NOW - 1,
    )
    plan = d.reconcile(obj(), facts([], memory))
    fields = written(plan)
    assert cond(fields, "Stalled") == ("True", "SubmitRefused") and "bad cpu" in fields["message"]
    assert d.Kind.SUBMIT not in kinds(plan) and plan.requeue_after == pytest.approx(7)
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(status=settled(plan)), facts([], memory, now=NOW + 7)))
    # A new generation is tried at once.
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(status=settled(plan), generation=2), facts([], memory)))


@pytest.mark.parametrize(
    "allowed, claimed_by, adopted", [(True, "", True), (False, "", False), (True, "other/obj", False)]
)
def test_adoption_only_where_the_administrator_allows_and_no_object_holds_it(allowed, claimed_by, adopted):
    plan = d.reconcile(
        obj(spec={"jobName": "team-old"}, annotations={ADOPT_ANNOTATION: "true"}),
        facts([info("team-old")], adopt_allowed=allowed, claimed_by=claimed_by),
    )
    fields = written(plan)
    assert (fields.get("jobName") == "team-old") is adopted
    assert cond(fields, "Stalled") == (("False", "Healthy") if adopted else ("True", "Conflict"))


def test_a_chosen_name_outside_the_namespaces_own_needs_the_administrators_trust():
    plan = d.reconcile(obj(spec={"jobName": "other-sim"}), facts([info("other-sim")]))
    fields = written(plan)
    assert cond(fields, "Stalled") == ("True", "InvalidSpec") and "must start with team-" in fields["message"]
    assert d.Kind.SUBMIT not in kinds(plan)
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(spec={"jobName": "other-sim"}), facts([], trusted=True)))
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(spec={"jobName": "team-sim"}), facts([])))


def test_a_job_of_another_type_is_a_conflict():
    plan = d.reconcile(obj(), facts([info(job_type="MessageQ")]))
    assert cond(written(plan), "Stalled") == ("True", "Conflict")


def test_the_connection_cannot_change_once_submitted():
    status = {"jobName": NAME, "submitted": True, "connection": "Secret/team-a"}
    plan = d.reconcile(obj(status=status), facts([info()], connection="default"))
    assert kinds(plan) == [d.Kind.WRITE_STATUS]
    assert cond(written(plan), "Stalled") == ("True", "ConnectionChanged")


# --- an earlier submit that may still land -----------------------------------------------------


def test_after_a_restart_a_job_in_juliarun_is_ours_at_once():
    plan = d.reconcile(obj(), facts([info()], acting_since=NOW - 2))
    assert written(plan)["submitted"] is True and d.Kind.SUBMIT not in kinds(plan)


def test_after_a_restart_an_absent_name_waits_for_the_landing_window():
    plan = d.reconcile(obj(), facts([], acting_since=NOW - 10))
    assert d.Kind.SUBMIT not in kinds(plan) and plan.requeue_after == pytest.approx(30)
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(), facts([], acting_since=NOW - 41)))


def test_an_object_without_our_finalizer_was_never_submitted_and_goes_at_once():
    plan = d.reconcile(obj(finalizers=()), facts([], acting_since=NOW - 10))
    assert kinds(plan) == [d.Kind.ADD_FINALIZER, d.Kind.SUBMIT]
    # Added by this process (before the first look): still known never to have been sent.
    memory = d.Memory(added_finalizer=True)
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(), facts([], memory, acting_since=NOW - 10)))


def test_after_a_clean_handover_an_absent_name_goes_at_once():
    """The replica before stopped with every submit answered (its Lease says so): an object
    with the finalizer (from the admission policy, or put on by it) and no job was never sent."""
    settled = facts([], acting_since=NOW - 10, earlier=d.Earlier(settled=True))
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(), settled))
    chosen = {"jobName": "team-chosen"}
    recorded = obj(spec=chosen, status={**chosen, "submitTime": st.iso(NOW - 20)})
    assert d.Kind.SUBMIT in kinds(d.reconcile(recorded, settled))
    # Recorded after this process began to act: the window of that submit holds.
    late = obj(spec=chosen, status={**chosen, "submitTime": st.iso(NOW - 5)})
    assert d.Kind.SUBMIT not in kinds(d.reconcile(late, settled))
    # Without the Lease's word, the window holds for both.
    assert d.Kind.SUBMIT not in kinds(d.reconcile(obj(), facts([], acting_since=NOW - 10)))
    assert d.Kind.SUBMIT not in kinds(d.reconcile(recorded, facts([], acting_since=NOW - 10)))


def test_an_object_created_after_this_process_began_is_submitted_at_once():
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(created=NOW - 1), facts([], acting_since=NOW - 10)))
    # creationTimestamp is cut to the second: stamped in the second this process began to act,
    # the object may be older than that, and an earlier process may have sent it (SIGKILL
    # and a restart within the second: the second submit the operator test caught).
    assert d.Kind.SUBMIT not in kinds(d.reconcile(obj(created=NOW - 10), facts([], acting_since=NOW - 9.8)))
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(created=NOW - 10), facts([], acting_since=NOW - 10)))


def test_after_a_crash_the_lease_bounds_what_the_replica_before_may_have_sent():
    """The replica before stopped acting by `until` (the Lease's last write, by the API
    server's clock): what was created later it never saw, and what it sent can no longer
    land a landing window (40 s here) after `until`."""
    crashed = facts([], acting_since=NOW - 2, earlier=d.Earlier(until=NOW - 20))
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(created=NOW - 10), crashed))
    plan = d.reconcile(obj(created=NOW - 30), crashed)
    assert d.Kind.SUBMIT not in kinds(plan) and plan.requeue_after == pytest.approx(20)
    assert cond(written(plan), "Ready") == ("Unknown", "WaitingForEarlierSubmit")
    # Long gone: its window is over, whenever the object was created.
    long_ago = facts([], acting_since=NOW - 2, earlier=d.Earlier(until=NOW - 41))
    assert d.Kind.SUBMIT in kinds(d.reconcile(obj(created=NOW - 100), long_ago))
    # Not known (a Lease this replica created, or --standalone): its own start stands in.
    unknown = facts([], acting_since=NOW - 2)
    assert d.Kind.SUBMIT not in kinds(d.reconcile(obj(created=NOW - 10), unknown))


def test_an_unanswered_submit_is_not_sent_again_within_the_window():
    memory = d.Memory(name=NAME, submit=d.Outcome.UNKNOWN, submit_at=NOW - 5)
    plan = d.reconcile(obj(), facts([], memory))
    assert d.Kind.SUBMIT not in kinds(plan) and plan.requeue_after == pytest.approx(35)
    assert written(d.reconcile(obj(), facts([info()], memory)))["submitted"] is True


def test_a_recorded_intent_waits_from_its_submit_time():
    status = {"jobName": "chosen", "submitTime": st.iso(NOW - 30), "submitted": False}
    plan = d.reconcile(obj(spec={"jobName": "chosen"}, status=status), facts([]))
    assert d.Kind.SUBMIT not in kinds(plan) and plan.requeue_after == pytest.approx(10)


# --- changes -----------------------------------------------------------------------------------


def running(**memory_fields) -> tuple[d.ObjectState, d.Memory]:
    memory = d.Memory(name=NAME, submit=d.Outcome.LANDED, submit_at=NOW - 50, params=PARAMS, **memory_fields)
    first = d.reconcile(obj(), facts([info()], memory))
    return obj(status=settled(first)), memory


def test_scale_drift_is_corrected_once_per_snapshot():
    o, memory = running()
    o = d.ObjectState(**{**o.__dict__, "spec": {**o.spec, "parallelism": 4}, "generation": 2})
    plan = d.reconcile(o, facts([info()], memory))
    assert next(a for a in plan.actions if a.kind is d.Kind.SET_SCALE).scale == 4
    memory.scale, memory.scale_at = 4, NOW
    assert d.Kind.SET_SCALE not in kinds(d.reconcile(o, facts([info()], memory, snapshot_time=NOW - 1)))


def test_a_changed_parameter_is_sent_alone_with_update():
    o, memory = running()
    o = d.ObjectState(**{**o.__dict__, "generation": 2})
    plan = d.reconcile(o, facts([info()], memory, params={**PARAMS, "cpu": 2.0}))
    update = next(a for a in plan.actions if a.kind is d.Kind.UPDATE)
    assert update.params == {"cpu": 2.0}


def test_without_memory_a_changed_spec_is_sent_whole():
    o, _ = running()
    o = d.ObjectState(**{**o.__dict__, "generation": 2})
    plan = d.reconcile(o, facts([info()], params={**PARAMS, "cpu": 2.0}))
    sent = {k: v for k, v in PARAMS.items() if k != "nworkers"}  # scale goes through setJobScale
    assert next(a for a in plan.actions if a.kind is d.Kind.UPDATE).params == {**sent, "cpu": 2.0}


def test_a_refused_update_is_not_sent_again_for_that_generation():
    o, memory = running(update_refusal="no", update_refused_generation=2, refusals=1, refused_at=NOW)
    o = d.ObjectState(**{**o.__dict__, "generation": 2})
    plan = d.reconcile(o, facts([info()], memory, params={**PARAMS, "cpu": 2.0}))
    assert d.Kind.UPDATE not in kinds(plan) and cond(written(plan), "Stalled") == ("True", "UpdateRefused")


def test_paused_objects_call_nothing_and_catch_up_after():
    o, memory = running()
    paused = d.ObjectState(
        **{**o.__dict__, "annotations": {PAUSE_ANNOTATION: "true"}, "spec": {**o.spec, "parallelism": 5}}
    )
    plan = d.reconcile(paused, facts([info()], memory))
    assert kinds(plan) == [d.Kind.WRITE_STATUS] and written(plan)["phase"] == "Paused"
    unpaused = d.ObjectState(**{**paused.__dict__, "annotations": {}, "status": settled(plan)})
    assert d.Kind.SET_SCALE in kinds(d.reconcile(unpaused, facts([info()], memory)))


# --- what JuliaRun says ------------------------------------------------------------------------


def test_a_job_gone_from_juliarun_is_reported_never_resubmitted():
    o, memory = running()
    plan = d.reconcile(o, facts([], memory))
    assert d.Kind.SUBMIT not in kinds(plan) and cond(written(plan), "Stalled") == ("True", "JobMissing")


def test_juliarun_unavailable_keeps_the_phase_and_says_why():
    o, memory = running()
    plan = d.reconcile(o, facts([info()], memory, unavailable="JuliaRun unreachable: boom"))
    fields = written(plan)
    assert fields["phase"] == "Running" and cond(fields, "Ready") == ("Unknown", "JuliaRunUnavailable")
    assert kinds(plan) == [d.Kind.WRITE_STATUS]


def test_missing_credentials_are_reported_once_in_an_event():
    plan = d.reconcile(
        obj(), facts(snapshot=None, unavailable="credentials: Secret team/c not found", no_credentials=True)
    )
    assert kinds(plan) == [d.Kind.WRITE_STATUS, d.Kind.EVENT]
    assert "not found" in plan.actions[1].note.message
    assert (
        d.reconcile(
            obj(status=settled(plan)),
            facts(snapshot=None, unavailable=plan.actions[1].note.message, no_credentials=True),
        ).actions
        == ()
    )


def test_an_invalid_spec_is_stalled_and_sends_nothing():
    plan = d.reconcile(obj(), facts(params=None, invalid="spec.cpu: must be positive"))
    assert cond(written(plan), "Stalled") == ("True", "InvalidSpec") and d.Kind.SUBMIT not in kinds(plan)


def test_completion_posts_the_logs_once():
    o, memory = running()
    plan = d.reconcile(o, facts([info(completed=True, succeeded=2)], memory))
    assert d.Kind.POST_LOGS in kinds(plan) and written(plan)["phase"] == "Completed"
    memory.logs_posted = NAME
    assert d.Kind.POST_LOGS not in kinds(d.reconcile(o, facts([info(completed=True, succeeded=2)], memory)))


def test_a_failed_job_is_stalled():
    o, memory = running()
    fields = written(d.reconcile(o, facts([info(completed=True, succeeded=1)], memory)))
    assert fields["phase"] == "Failed" and cond(fields, "Stalled") == ("True", "JobFailed")


# --- deletion ----------------------------------------------------------------------------------


def deleting(status=None, **kw) -> d.ObjectState:
    return obj(status=status or {"jobName": NAME, "submitted": True}, deleting=True, **kw)


def test_delete_policy_deletes_our_job_then_removes_the_finalizer():
    assert kinds(d.reconcile(deleting(), facts([info()]))) == [d.Kind.DELETE]
    assert kinds(d.reconcile(deleting(), facts([info()], d.Memory(deleted_jobs={NAME})))) == [
        d.Kind.REMOVE_FINALIZER
    ]
    assert kinds(d.reconcile(deleting(), facts([]))) == [d.Kind.REMOVE_FINALIZER]


def test_orphan_policy_leaves_the_job():
    plan = d.reconcile(deleting(spec={"deletionPolicy": "Orphan"}), facts([info()]))
    assert kinds(plan) == [d.Kind.EVENT, d.Kind.REMOVE_FINALIZER]


def test_deletion_waits_for_juliarun_and_for_a_submit_that_may_land():
    assert d.reconcile(deleting(), facts(snapshot=None)).actions == ()
    memory = d.Memory(name=NAME, submit=d.Outcome.UNKNOWN, submit_at=NOW - 5)
    plan = d.reconcile(deleting(status={}), facts([], memory))
    assert plan.actions == () and plan.requeue_after == pytest.approx(35)


def test_deletion_never_deletes_a_job_that_is_not_ours():
    status = {"conditions": [{"type": "Stalled", "status": "True", "reason": "Conflict"}]}
    plan = d.reconcile(deleting(status=status, spec={"jobName": "theirs"}), facts([info("theirs")]))
    assert kinds(plan) == [d.Kind.REMOVE_FINALIZER]
    claimed = d.reconcile(deleting(status={}), facts([info()], claimed_by="other/obj"))
    assert kinds(claimed) == [d.Kind.REMOVE_FINALIZER]


def test_deletion_without_credentials_of_a_job_never_submitted_lets_go():
    gone = facts(snapshot=None, no_credentials=True, unavailable="credentials: gone")
    plan = d.reconcile(deleting(status={"phase": "Pending"}, created=NOW - 1), gone)
    assert kinds(plan) == [d.Kind.REMOVE_FINALIZER]


@pytest.mark.parametrize(
    ("memory", "status", "lets_go"),
    [
        (d.Memory(added_finalizer=True), {"phase": "Pending"}, True),  # this process put the finalizer on
        (d.Memory(), {"phase": "Pending"}, False),  # an earlier process put it on: it may have sent
        (d.Memory(added_finalizer=True, name=NAME, submit=d.Outcome.UNKNOWN), {"phase": "Pending"}, False),
        (d.Memory(added_finalizer=True), {"jobName": NAME, "submitTime": "2026-11-26T00:00:00Z"}, False),
    ],
)
def test_deletion_while_juliarun_cannot_be_looked_at_lets_go_only_of_what_was_never_sent(
    memory, status, lets_go
):
    plan = d.reconcile(deleting(status=status), facts(snapshot=None, memory=memory, unavailable="down"))
    assert (kinds(plan) == [d.Kind.REMOVE_FINALIZER]) is lets_go


def test_deletion_of_an_object_without_our_finalizer_does_nothing():
    assert d.reconcile(deleting(finalizers=()), facts([info()])).actions == ()


def test_what_a_stopping_process_tells_the_next_one():
    """Every submit answered and nothing left of an earlier process: settled. Its own submit
    unanswered: nothing it can bound. An earlier process's window still open: only objects
    created before that process stopped."""
    answered = [d.Memory(name=NAME, submit=d.Outcome.LANDED, submit_at=NOW - 5)]
    unanswered = [d.Memory(name=NAME, submit=d.Outcome.UNKNOWN, submit_at=NOW - 5)]
    long_unanswered = [d.Memory(name=NAME, submit=d.Outcome.UNKNOWN, submit_at=NOW - 50)]
    settled, unknown = d.Earlier(settled=True), d.Earlier()
    assert handover(answered, settled, NOW - 100, NOW, 40) == settled
    assert handover(unanswered, settled, NOW - 100, NOW, 40) == unknown
    assert handover(long_unanswered, settled, NOW - 100, NOW, 40) == settled
    assert handover(answered, d.Earlier(until=NOW - 30), NOW - 20, NOW, 40) == d.Earlier(until=NOW - 30)
    assert handover(answered, unknown, NOW - 20, NOW, 40) == d.Earlier(until=NOW - 20)
    assert handover(answered, unknown, NOW - 41, NOW, 40) == settled


# --- restarts after a refused submit -----------------------------------------------------------
#
# A refused submit did not land; until the status says so, only the memory of the process
# that sent it knows. Each row: what the status shows when the next process (no memory) looks,
# what the Lease says of the process before (Earlier), what JuliaRun shows, and what the next
# process does. A "stranger" is a job of that name someone else submitted meanwhile.

MINE = "team-mine"
SENT = st.iso(NOW - 30)  # recorded (and sent) before the next process began to act (NOW - 20)
INTENT = {"jobName": MINE, "submitTime": SENT, "submitted": False}
REFUSED_SHOWN = {"conditions": [{"type": "Stalled", "status": "True", "reason": "SubmitRefused"}]}
SETTLED, CRASHED = d.Earlier(settled=True), d.Earlier(until=NOW - 25)


def outcome(plan: d.Plan) -> str:
    """What a plan does, in the words of the table below."""
    k = kinds(plan)
    if d.Kind.DELETE in k:
        return "deletes"
    if d.Kind.REMOVE_FINALIZER in k:
        return "lets go"
    if d.Kind.SUBMIT in k:
        return "submits"
    writes = [a.status for a in plan.actions if a.kind is d.Kind.WRITE_STATUS]
    if writes and writes[-1].get("submitted") is True:
        return "takes"
    if writes and cond(writes[-1], "Stalled") == ("True", "Conflict"):
        assert writes[-1]["jobName"] is None  # nothing left that a later look could take for ours
        return "conflict"
    if plan.requeue_after:
        return "waits"
    return "nothing"


@pytest.mark.parametrize(
    ("spec_name", "status", "earlier", "stranger", "deleting_it", "expected"),
    [
        # The refusal written (the name forgotten) before the restart: a stranger is a conflict.
        (MINE, REFUSED_SHOWN, CRASHED, True, False, "conflict"),
        (MINE, REFUSED_SHOWN, CRASHED, True, True, "lets go"),
        (MINE, REFUSED_SHOWN, SETTLED, False, False, "submits"),
        # Stopped between the refusal and its write: settled only knowing the submit refused
        # (handover), so a stranger's job is not taken, nor deleted with the object.
        (MINE, INTENT, SETTLED, True, False, "conflict"),
        (MINE, INTENT, SETTLED, True, True, "lets go"),
        (MINE, INTENT, SETTLED, False, False, "submits"),
        (MINE, INTENT, SETTLED, False, True, "lets go"),
        # Killed (no word from the Lease): the submit may have landed unanswered, so a job of
        # that name is this object's (no leak) and goes with it; absent, the window is waited.
        (MINE, INTENT, CRASHED, True, False, "takes"),
        (MINE, INTENT, CRASHED, True, True, "deletes"),
        (MINE, INTENT, CRASHED, False, False, "waits"),
        (MINE, INTENT, CRASHED, False, True, "waits"),
        # A default name hashes the UID: a job of that name is this object's whatever refused
        # the submit (an earlier one landed unanswered); deleting the object deletes it.
        (None, REFUSED_SHOWN, SETTLED, True, False, "takes"),
        (None, REFUSED_SHOWN, SETTLED, True, True, "deletes"),
        (None, REFUSED_SHOWN, CRASHED, True, True, "deletes"),
        (None, REFUSED_SHOWN, SETTLED, False, False, "submits"),
        (None, REFUSED_SHOWN, SETTLED, False, True, "lets go"),
    ],
)
def test_a_restart_after_a_refused_submit_neither_adopts_nor_leaks(
    spec_name, status, earlier, stranger, deleting_it, expected
):
    spec = {"jobName": spec_name} if spec_name else {}
    o = obj(spec=spec, status=dict(status), deleting=deleting_it, created=NOW - 60)
    jobs = [info(spec_name or NAME)] if stranger else []
    plan = d.reconcile(o, facts(jobs, acting_since=NOW - 20, earlier=earlier))
    assert outcome(plan) == expected


def test_a_stopping_process_vouches_only_for_recorded_names_it_knows_refused():
    """Settled says of every name recorded before its submit (status jobName and submitTime,
    not submitted) that its submit was refused: said only where this process's own memory
    knows so; a submit answered yes but not yet shown, or not known here, is not settled."""
    o = obj(spec={"jobName": MINE}, status=INTENT)

    def stop(memory: d.Memory | None) -> d.Earlier:
        return handover([memory] if memory else [], SETTLED, NOW - 100, NOW, 40, [(o, memory)])

    assert stop(refused(MINE)) == SETTLED
    assert stop(None) == d.Earlier(until=NOW - 100)
    assert stop(refused("team-other")) == d.Earlier(until=NOW - 100)
    landed = d.Memory(name=MINE, submit=d.Outcome.LANDED, submit_at=NOW - 30, landed_at=NOW - 29)
    assert stop(landed) == d.Earlier(until=NOW - 100)
    shown = obj(spec={"jobName": MINE}, status={**INTENT, "submitted": True})
    assert handover([], SETTLED, NOW - 100, NOW, 40, [(shown, None)]) == SETTLED
