"""The decision for `spec.managementPolicy: Observe` and the takeover (Observe to Full), case by
case: states in, actions and status out. No Observe plan ever moves JuliaRun."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from juliarun_operator.api import FINALIZER, PAUSE_ANNOTATION
from juliarun_operator.juliarun.client import JobInfo, JobScale, JobStatus
from juliarun_operator.reconcile import decision as d

from decision_tables import NOW, cond, facts_with, kinds, written

UID = "7a2f9c1e-3b4d-4f6a-8c2e-1d5b7f9a3c6e"
JOB = "legacy-web"  # made in JuliaRun, outside this namespace's prefix
PARAMS = {"run_volume": "v", "cfg_file": "c", "nworkers": 2}
MISSING = "spec.runVolume is required for type Webserver"  # what the runtime says of an imported spec
# An imported manifest: type, jobName, parallelism; none of the type's parameters.
OBSERVE = {"type": "Webserver", "jobName": JOB, "parallelism": 2, "managementPolicy": "Observe"}
FULL = {**OBSERVE, "managementPolicy": "Full", "runVolume": "v", "cfgFile": "c"}
# What an Observe look wrote: the job mirrored, nothing submitted.
WATCHED = {"jobName": JOB, "connection": "default", "managementPolicy": "Observe", "phase": "Running"}


def obj(spec=None, status=None, deleting=False, generation=1, annotations=None) -> d.ObjectState:
    return d.ObjectState(
        "team",
        "web",
        UID,
        generation,
        spec or OBSERVE,
        status or {},
        annotations or {},
        (FINALIZER,),
        deleting,
        NOW - 100,
    )


def info(name=JOB, running=2, requested=2, job_type="Webserver", completed=False, succeeded=0) -> JobInfo:
    return JobInfo(
        name,
        job_type,
        JobStatus(completed, succeeded, 1 if completed else running, True, False),
        JobScale(running, requested),
        ["10.0.0.7:8080"],
    )


def observe_facts(jobs: tuple[JobInfo, ...] | list[JobInfo] | None = None, **kw: Any) -> d.Facts:
    """An Observe object's facts: its spec has no parameters to send."""
    observe = {"params": None, "invalid": MISSING, "adopt_allowed": True, **kw}
    return facts_with(PARAMS)((info(),) if jobs is None else jobs, **observe)


full_facts = facts_with(PARAMS)


def moves(plan: d.Plan) -> list[d.Kind]:
    return [k for k in kinds(plan) if k in d.model.MOVES_JULIARUN]


# --- Observe: the table ----------------------------------------------------------------------


class Row(NamedTuple):
    obj: d.ObjectState
    facts: d.Facts
    kinds: list[d.Kind]
    ready: tuple[str, str] | None  # Ready's status and reason in the one status write; None: no write
    job: str | None = JOB  # the name the plan routes snapshots of to this object


BATCH = {"type": "JuliaBatch", "jobName": JOB, "managementPolicy": "Observe"}
W, E = d.Kind.WRITE_STATUS, d.Kind.EVENT

ROWS = {
    "at scale: mirrored, no parameters needed": Row(obj(), observe_facts(), [W], ("True", "AtScale")),
    # spec.parallelism is not JuliaRun's: no setJobScale, JuliaRun's own request is the target
    "JuliaRun's scale differs from spec.parallelism: no setJobScale": Row(
        obj(), observe_facts([info(running=5, requested=5)]), [W], ("True", "AtScale")
    ),
    "JuliaRun still scaling: shown, not helped": Row(
        obj(), observe_facts([info(running=1, requested=3)]), [W], ("False", "Scaling")
    ),
    "job missing: told, never submitted": Row(obj(), observe_facts([]), [W, E], ("False", "JobNotFound")),
    "namespace may not adopt: refused": Row(
        obj(), observe_facts(adopt_allowed=False), [W, E], ("False", "ObserveRefused"), None
    ),
    "refused alike when the job is missing (existence not told)": Row(
        obj(), observe_facts([], adopt_allowed=False), [W, E], ("False", "ObserveRefused"), None
    ),
    "held by another object: refused": Row(
        obj(),
        observe_facts(adopt_allowed=False, claimed_by="team/other"),
        [W, E],
        ("False", "ObserveRefused"),
        None,
    ),
    "a job it submitted itself (was Full): observed without adoption rights": Row(
        obj(status={"jobName": JOB, "submitted": True, "connection": "default"}),
        observe_facts(adopt_allowed=False),
        [W],
        ("True", "AtScale"),
    ),
    "another type in JuliaRun: conflict": Row(
        obj(), observe_facts([info(job_type="Notebook")]), [W, E], ("False", "Conflict"), None
    ),
    "no spec.jobName (admitted without the CRD's rule)": Row(
        obj(spec={**OBSERVE, "jobName": None}), observe_facts(), [W, E], ("False", "InvalidSpec"), None
    ),
    "JuliaRun unreachable: waiting": Row(
        obj(), observe_facts(unavailable="connection refused"), [W], ("Unknown", "JuliaRunUnavailable")
    ),
    "no snapshot yet: waits": Row(obj(), observe_facts(snapshot=None), [], None),
    "paused: as any paused object": Row(
        obj(annotations={PAUSE_ANNOTATION: "true"}), observe_facts(), [W], ("Unknown", "Paused"), None
    ),
    "batch job completed: Complete, its last logs, no delete": Row(
        obj(spec=BATCH),
        observe_facts([info(job_type="JuliaBatch", completed=True, succeeded=1, running=0, requested=0)]),
        [d.Kind.POST_LOGS, W],
        ("True", "Completed"),
    ),
    "batch job failed: Failed, no retry (backoffLimit ignored)": Row(
        obj(spec={**BATCH, "backoffLimit": 3}),
        observe_facts([info(job_type="JuliaBatch", completed=True, running=0, requested=0)]),
        [d.Kind.POST_LOGS, W],
        ("False", "JobFailed"),
    ),
    "batch deadline and suspend ignored: no delete": Row(
        obj(
            spec={**BATCH, "suspend": True, "activeDeadlineSeconds": 1},
            status={"startTime": "2020-01-01T00:00:00Z"},
        ),
        observe_facts([info(job_type="JuliaBatch", running=1, requested=1)]),
        [W],
        ("True", "Running"),
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS)
def test_observe(row: Row):
    plan = d.reconcile(row.obj, row.facts)
    assert kinds(plan) == row.kinds
    assert moves(plan) == []
    assert plan.job == row.job
    if row.ready is not None:
        assert cond(written(plan), "Ready") == row.ready


def test_an_observed_job_is_mirrored_and_recorded_as_observed_not_submitted():
    fields = written(d.reconcile(obj(), observe_facts([info(running=1, requested=3)])))
    assert fields["jobName"] == JOB and fields["managementPolicy"] == "Observe"
    assert fields["scale"] == {"running": 1, "requested": 3} and fields["workers"] == "1/3"
    assert fields["endpoints"] == ["10.0.0.7:8080"] and fields["phase"] == "Running"
    assert "submitted" not in fields and "parametersHash" not in fields  # nothing was sent


def test_steady_observe_writes_nothing():
    first = written(d.reconcile(obj(), observe_facts()))
    again = d.reconcile(obj(status=first), observe_facts(now=NOW + 60))
    assert again.actions == ()


def test_the_refusal_names_the_flag_that_would_allow_it():
    fields = written(d.reconcile(obj(), observe_facts(adopt_allowed=False)))
    assert fields["message"] == (
        f"JuliaRun job {JOB} cannot be observed: namespace team may not adopt JuliaRun jobs it did not "
        "submit (the operator's administrator may allow it: --adopt-namespace team)"
    )
    assert "jobName" not in fields


@pytest.mark.parametrize(
    "holder, told", [("team/other", "held by JuliaRunJob other"), ("prod/x", "held by an object of another")]
)
def test_a_holder_is_named_only_within_the_namespace(holder, told):
    fields = written(d.reconcile(obj(), observe_facts(adopt_allowed=False, claimed_by=holder)))
    assert told in fields["message"] and ("prod" not in fields["message"])


def test_a_missing_job_says_how_to_get_one():
    message = written(d.reconcile(obj(), observe_facts([])))["message"]
    assert message.startswith(f"JuliaRun job {JOB} does not exist; managementPolicy Observe never submits it")
    assert "spec.managementPolicy Full" in message


# --- deleting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["Delete", "Orphan"])
def test_deleting_an_observe_object_leaves_the_job(policy):
    o = obj(spec={**OBSERVE, "deletionPolicy": policy}, status=WATCHED, deleting=True)
    plan = d.reconcile(o, observe_facts())
    assert kinds(plan) == [d.Kind.EVENT, d.Kind.REMOVE_FINALIZER]
    assert plan.actions[0].note == d.Note(
        "Normal", "Orphaned", f"left JuliaRun job {JOB} running (managementPolicy Observe)"
    )


def test_deleting_an_observe_object_that_never_saw_its_job_just_goes():
    plan = d.reconcile(obj(deleting=True), observe_facts(snapshot=None))
    assert kinds(plan) == [d.Kind.REMOVE_FINALIZER]


def test_deleting_before_a_takeover_was_looked_at_leaves_the_job():
    # Switched to Full and deleted before the operator took the job over: never ours.
    o = obj(spec=FULL, status=WATCHED, deleting=True, generation=2)
    assert kinds(d.reconcile(o, full_facts([info()], adopt_allowed=False))) == [d.Kind.REMOVE_FINALIZER]


# --- the takeover: Observe to Full --------------------------------------------------------------


def takeover(**kw: Any) -> d.Plan:
    kw.setdefault("trusted", kw.get("adopt_allowed", False))  # as the runtime has them
    return d.reconcile(obj(spec=FULL, status=WATCHED, generation=2), full_facts([info()], **kw))


def test_a_takeover_allowed_where_adoption_is_sends_the_spec_and_ends_observing():
    plan = takeover(adopt_allowed=True)
    assert kinds(plan) == [d.Kind.UPDATE, d.Kind.EVENT, W]
    # JuliaRun does not say a job's parameters: the spec's are sent, as after any edit
    assert plan.actions[0].params == {"run_volume": "v", "cfg_file": "c"}
    assert plan.actions[1].note is not None and plan.actions[1].note.reason == "Adopted"
    fields = written(plan)
    assert fields["submitted"] is True and fields["managementPolicy"] is None  # merge patch: removed


def test_a_takeover_is_refused_where_adoption_would_be():
    plan = takeover(adopt_allowed=False)
    assert moves(plan) == [] and kinds(plan) == [W, E]
    fields = written(plan)
    assert cond(fields, "Stalled") == ("True", "TakeoverRefused")
    assert fields["message"] == (
        f"JuliaRun job {JOB} cannot be taken over by spec.managementPolicy Full: namespace team may not "
        "adopt JuliaRun jobs it did not submit (the operator's administrator may allow it: "
        "--adopt-namespace team); or set spec.managementPolicy back to Observe"
    )


def test_a_takeover_of_a_job_held_by_another_object_is_refused():
    plan = takeover(adopt_allowed=False, claimed_by="team/other")
    assert moves(plan) == [] and "held by JuliaRunJob other" in written(plan)["message"]


def test_back_to_full_on_a_job_it_submitted_itself_needs_no_adoption_rights():
    status = {**WATCHED, "submitted": True, "parametersHash": "x"}
    plan = d.reconcile(obj(spec=FULL, status=status, generation=3), full_facts([info()], adopt_allowed=False))
    assert d.Kind.UPDATE in kinds(plan) and written(plan)["managementPolicy"] is None


def test_after_a_takeover_the_object_is_full_and_in_step():
    plan = takeover(adopt_allowed=True)
    status = {**WATCHED, **written(plan)}
    status = {k: v for k, v in status.items() if v is not None}  # the merge patch
    memory = d.Memory(params={"run_volume": "v", "cfg_file": "c", "nworkers": 2})
    again = d.reconcile(obj(spec=FULL, status=status, generation=2), full_facts([info()], memory))
    assert again.actions == ()
    deleting = d.reconcile(obj(spec=FULL, status=status, deleting=True), full_facts([info()]))
    assert kinds(deleting) == [d.Kind.DELETE]  # Full now: its job goes with it


def test_full_without_an_observed_past_keeps_todays_conflict():
    # Created Full with the name of someone else's job: not a takeover, the adopt annotation's rules.
    plan = d.reconcile(obj(spec=FULL), full_facts([info()], adopt_allowed=True, trusted=True))
    assert moves(plan) == [] and cond(written(plan), "Stalled") == ("True", "Conflict")
