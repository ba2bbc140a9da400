"""The runtime's control flow without processes: what the executor reports for each outcome of
a JuliaRun call, the one owner of requeue (the controller's rate-limited queue), whose a
failure is (the breaker), the call cap and the fence."""

from __future__ import annotations

import json
import threading
import time

import pytest

from juliarun_operator.api import FINALIZER, default_job_name
from juliarun_operator.juliarun import Context
from juliarun_operator.juliarun.errors import (
    ApiError,
    Blame,
    HTTPError,
    InvalidResponse,
    ParameterError,
    RequestTooLarge,
    TransportError,
    blame,
)
from juliarun_operator.juliarun.model import JobInfo, JobScale, JobStatus
from juliarun_operator.reconcile import decision as d
from juliarun_operator.reconcile.adapters.metrics import Metrics
from juliarun_operator.reconcile.runtime.breaker import Backoff, Unavailable, Why
from juliarun_operator.reconcile.runtime.connections import Connection, Connections
from juliarun_operator.reconcile.runtime.controller import Config, Controller
from juliarun_operator.reconcile.runtime.executor import Next
from juliarun_operator.reconcile.runtime.queue import RateLimit, WorkQueue

from support.kube import RecordingKube, body

CONTEXT = Context(url="http://127.0.0.1:9", token="unit-test-token-5678", namespace="ns")
KEY = ("team", "a")
SPEC = {"type": "JuliaBatch", "runVolume": "jobs", "startScript": "run.jl"}


def controller(*objects: dict, **config) -> tuple[Controller, RecordingKube]:
    kube = RecordingKube(*objects)
    ctl = Controller(Config(**config), kube, Connections(CONTEXT), Metrics())
    ctl.acting = True
    return ctl, kube


def running(name: str) -> JobInfo:
    return JobInfo(name, "JuliaBatch", JobStatus(False, 0, 1, True, False), JobScale(1, 1), [])


def with_snapshot(ctl: Controller, *infos: JobInfo) -> Connection:
    conn = ctl.connections.default
    conn.snapshot, conn.snapshot_time = {i.name: i for i in infos}, time.time()
    return conn


def fail_with(exc: Exception, calls: list[str] | None = None):
    def call(*args, **kwargs):
        if calls is not None:
            calls.append("sent")
        raise exc

    return call


# --- whose a failure is --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "whose"),
    [
        (RequestTooLarge("too large", "start_script", 9000), Blame.REQUEST),
        (ParameterError("bad", "cpu"), Blame.REQUEST),
        (ApiError("submitJob", 3, "no"), Blame.REFUSED),
        (HTTPError("submitJob", 422, "unprocessable"), Blame.REFUSED),
        (HTTPError("submitJob", 401, "unauthorized"), Blame.CONNECTION),  # every request would get it
        (HTTPError("submitJob", 503, "down"), Blame.CONNECTION),
        (TransportError("no answer"), Blame.CONNECTION),
        (InvalidResponse("getAllJobInfo", "not JSON"), Blame.CONNECTION),
    ],
)
def test_only_the_connections_own_failures_are_blamed_on_it(exc, whose):
    assert blame(exc) is whose
    conn = Connection(CONTEXT, backoff=Backoff(base=10, cap=10))
    with pytest.raises(type(exc)):
        conn.call(fail_with(exc))
    assert conn.healthy is (whose is not Blame.CONNECTION)


def test_a_connections_trouble_reads_the_same_for_everyone_and_carries_no_request_text():
    conn = Connection(CONTEXT, backoff=Backoff(base=10, cap=10))
    with pytest.raises(TransportError):
        conn.call(fail_with(TransportError("submitJob: cannot reach ... startScript=team-b-private-text")))
    assert "team-b-private-text" not in conn.problem
    assert conn.problem.startswith("JuliaRun unavailable since ") and "transport error" in conn.problem
    with pytest.raises(Unavailable) as held:
        conn.call(lambda: None)
    assert str(held.value) == conn.problem and held.value.why is Why.BREAKER


def test_a_connection_allows_only_so_many_worker_calls_at_once_and_refuses_the_rest_locally():
    conn = Connection(CONTEXT, max_calls=2)
    release = threading.Event()
    inside = []

    def slow() -> None:
        inside.append(1)
        release.wait(5)

    threads = [threading.Thread(target=conn.call, args=(slow,)) for _ in range(2)]
    for t in threads:
        t.start()
    while len(inside) < 2:
        time.sleep(0.01)
    sent = []
    with pytest.raises(Unavailable) as busy:
        conn.call(lambda: sent.append(1))
    assert busy.value.why is Why.BUSY and not sent and conn.healthy
    # The snapshot loop's read is not among them: busy workers never starve the snapshot.
    assert conn.read(lambda: "view") == "view"
    release.set()
    for t in threads:
        t.join()
    conn.call(lambda: sent.append(1))
    assert sent == [1]


def occupied(conn: Connection) -> tuple[threading.Event, threading.Thread]:
    """Every call slot of `conn` (one) taken by a call that ends when the event is set."""
    release, inside = threading.Event(), threading.Event()

    def slow() -> None:
        inside.set()
        release.wait(5)

    thread = threading.Thread(target=conn.call, args=(slow,))
    thread.start()
    assert inside.wait(5)
    return release, thread


def test_objects_that_found_every_slot_taken_are_handed_back_as_slots_free_oldest_first():
    handed: list = []
    conn = Connection(CONTEXT, max_calls=1, on_slot=handed.append)
    release, thread = occupied(conn)
    for name in ("a", "b", "gone"):
        conn.park(("team", name))
    conn.forget(("team", "gone"))  # deleted meanwhile
    assert handed == []  # no timer brings them back: a free slot does
    release.set()
    thread.join()
    assert handed == [("team", "a")]  # one slot freed, one object back
    conn.call(lambda: None)
    conn.call(lambda: None)
    assert handed == [("team", "a"), ("team", "b")]


def test_an_object_parked_just_as_the_last_slot_freed_is_handed_back_at_once():
    handed: list = []
    conn = Connection(CONTEXT, max_calls=1, on_slot=handed.append)
    conn.park(KEY)  # the release it waited for came before it was parked
    assert handed == [KEY]


def test_a_closed_connection_hands_back_every_object_parked_on_it():
    handed: list = []
    conn = Connection(CONTEXT, max_calls=1, on_slot=handed.append)
    release, thread = occupied(conn)
    conn.park(("team", "a"))
    conn.park(("team", "b"))
    conn.close()  # rotated credentials: no call of it will free a slot
    assert handed == [("team", "a"), ("team", "b")]
    release.set()
    thread.join()


def test_a_submit_that_finds_every_slot_taken_is_parked_and_queued_when_one_frees():
    kube = RecordingKube(body("a", 1, spec=SPEC))
    ctl = Controller(Config(), kube, Connections(CONTEXT, max_calls=1), Metrics())
    ctl.acting = True
    conn = with_snapshot(ctl)
    submitted: list = []
    conn.client.submit_job = lambda *args, **kwargs: submitted.append(1)
    release, thread = occupied(conn)
    ctl.track("ADDED", kube.get_object(*KEY))
    assert ctl.queue.get(0.1) == KEY  # tracked: queued once
    ctl._handle(KEY)
    ctl.queue.done(KEY)
    assert not submitted and ctl.memory["uid-a"].submit is None  # nothing sent, nothing recorded
    assert ctl.queue.get(0.6) is None  # parked: no timer queues it (it was 0.2-0.5 s)
    release.set()
    thread.join()
    assert ctl.queue.get(1.0) == KEY  # the freed slot handed it back
    ctl._handle(KEY)
    assert submitted == [1]


def test_nothing_is_sent_without_the_fence():
    allowed = [False]
    conn = Connection(CONTEXT, fence=lambda: allowed[0])
    sent = []
    with pytest.raises(Unavailable) as fenced:
        conn.call(lambda: sent.append(1))
    assert fenced.value.why is Why.FENCED and not sent
    allowed[0] = True
    conn.call(lambda: sent.append(1))
    assert sent == [1]


# --- the executor's outcomes, and the controller's answer to each ---------------------------------


def test_a_request_refused_before_sending_stalls_its_object_not_the_connection():
    ctl, kube = controller(body("a", 1, spec=SPEC))
    conn = with_snapshot(ctl)
    calls: list[str] = []
    too_large = RequestTooLarge("the request would be 9,000 bytes", "start_script", 9000)
    conn.client.submit_job = fail_with(too_large, calls)
    ctl.track("ADDED", kube.get_object(*KEY))
    result = ctl.process(KEY)
    status = kube.objects[KEY]["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert "9,000 bytes" in stalled["message"]
    assert conn.healthy and result.next is Next.DONE
    memory = ctl.memory["uid-a"]
    assert memory.submit is None  # nothing was sent: no landing window to wait out
    ctl.process(KEY)  # looked at again: no second try of the same generation
    assert calls == ["sent"]  # refused inside the client, once


def test_a_refused_submit_is_the_objects_and_keeps_the_connection_healthy():
    ctl, kube = controller(body("a", 1, spec=SPEC))
    conn = with_snapshot(ctl)
    conn.client.submit_job = fail_with(ApiError("submitJob", 3, "invalid parameter"))
    ctl.track("ADDED", kube.get_object(*KEY))
    result = ctl.process(KEY)
    assert result.next is Next.AFTER and result.delay > 0 and conn.healthy  # refusal_wait paces it
    assert ctl.memory["uid-a"].submit is d.Outcome.REFUSED


def test_a_refused_submit_of_a_recorded_name_is_forgotten_in_the_same_look():
    """The status says so before the worker lets go of the object: no snapshot round (nor a
    stop of the process) between the refusal and the write that forgets the recorded name."""
    ctl, kube = controller(body("a", 1, spec={**SPEC, "jobName": "team-mine"}))
    conn = with_snapshot(ctl)
    conn.client.submit_job = fail_with(ApiError("submitJob", 3, "no"))
    ctl.track("ADDED", kube.get_object(*KEY))
    ctl.process(KEY)
    status = kube.objects[KEY]["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "SubmitRefused" and not status.get("jobName")


def test_an_unanswered_submit_is_looked_at_after_the_breakers_delay_and_may_still_land():
    ctl, kube = controller(body("a", 1, spec=SPEC))
    conn = with_snapshot(ctl)
    conn.client.submit_job = fail_with(TransportError("no answer within the time-out"))
    ctl.track("ADDED", kube.get_object(*KEY))
    result = ctl.process(KEY)
    assert result.next is Next.AFTER and result.delay > 0 and not conn.healthy
    assert ctl.memory["uid-a"].submit is d.Outcome.UNKNOWN


def test_a_call_held_back_by_the_breaker_sends_nothing_and_forgets_nothing():
    ctl, kube = controller(body("a", 1, spec=SPEC))
    conn = with_snapshot(ctl)
    conn.breaker.failed("transport error (no complete answer)")
    conn.breaker.open_until = time.monotonic() + 60
    ctl.track("ADDED", kube.get_object(*KEY))
    result = ctl.process(KEY)
    assert result.next is Next.DONE  # the decision saw the connection's trouble: nothing to call
    ready = next(c for c in kube.objects[KEY]["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "JuliaRunUnavailable" and ready["message"] == conn.problem
    assert ctl.memory["uid-a"].submit is None


def test_a_refused_delete_says_so_on_the_object_and_is_retried_on_a_growing_backoff():
    deleting = body("a", 1, spec=SPEC, jobName="job-a", submitted=True)
    deleting["metadata"].update(finalizers=[FINALIZER], deletionTimestamp="2026-11-26T00:00:01Z")
    ctl, kube = controller(deleting, rate_limit=RateLimit(base=1.0, cap=8.0))
    conn = with_snapshot(ctl, running("job-a"))
    calls: list[str] = []
    conn.client.delete_job = fail_with(ApiError("deleteJob", 1, "job is protected"), calls)
    ctl.track("ADDED", kube.get_object(*KEY))
    delays = []
    for _ in range(5):
        ctl._handle(KEY)
        delays.append(ctl.queue.rate_limit.delay(ctl.queue.failures(KEY)))
    assert calls == ["sent"] * 5 and delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert KEY not in conn.waiters  # no snapshot-paced retry besides the backoff
    ready = next(c for c in kube.objects[KEY]["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DeleteRefused" and "job is protected" in ready["message"]
    assert FINALIZER in kube.objects[KEY]["metadata"]["finalizers"]
    conn.client.delete_job = lambda *a, **k: None  # JuliaRun lets it go
    ctl._handle(KEY)
    assert kube.objects[KEY]["metadata"]["finalizers"] == [] and ctl.queue.failures(KEY) == 0


def test_a_stale_status_write_is_refused_and_decided_again_on_the_newer_body():
    seen = body("a", 1, spec=SPEC)
    seen["metadata"]["finalizers"] = [FINALIZER]
    ctl, kube = controller(seen)
    conn = with_snapshot(ctl, running(default_job_name("team", "a", "uid-a")))  # news to write
    ctl.track("ADDED", kube.get_object(*KEY))
    kube.objects[KEY]["metadata"]["resourceVersion"] = "7"  # someone wrote after the watch showed 1
    result = ctl.process(KEY)
    assert result.next is Next.AFTER
    assert ctl.registry.get(KEY)["metadata"]["resourceVersion"] == "7"  # read again
    assert conn is ctl.connections.default


def test_without_the_lease_no_write_and_no_call_goes_out():
    ctl, kube = controller(body("a", 1, spec=SPEC))
    conn = with_snapshot(ctl)
    calls: list[str] = []
    conn.client.submit_job = fail_with(AssertionError("sent"), calls)
    ctl.fence = lambda: False
    ctl.connections.fence = ctl.fence
    ctl.track("ADDED", kube.get_object(*KEY))
    result = ctl.process(KEY)
    assert result.next is Next.AFTER and kube.writes == [] and calls == []


# --- the queue's rate limiter ------------------------------------------------------------------


def test_the_rate_limiter_doubles_per_failure_up_to_its_cap_and_resets_on_success():
    queue = WorkQueue(RateLimit(base=0.01, cap=0.04))
    assert [queue.add_rate_limited("a") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    assert queue.failures("a") == 4 and queue.add_rate_limited("b") == 0.01  # per item
    queue.forget("a")
    assert queue.add_rate_limited("a") == 0.01
    assert queue.get(1.0) in ("a", "b")  # queued after the delay, not at once


def test_a_read_refused_with_a_4xx_leaves_no_view_and_counts_against_the_connection():
    conn = Connection(CONTEXT, backoff=Backoff(base=10, cap=10))
    with pytest.raises(HTTPError):
        conn.read(fail_with(HTTPError("getAllJobInfo", 400, "GET /getAllJobInfo/?jruntok=... echoed")))
    assert not conn.healthy and conn.problem.endswith("HTTP 400") and "echoed" not in conn.problem


def test_a_client_that_cannot_even_send_fails_its_own_connection_only():
    conn = Connection(CONTEXT, backoff=Backoff(base=10, cap=10))
    with pytest.raises(TransportError):
        conn.call(fail_with(FileNotFoundError("secrets/team-b/gone.crt")))
    assert not conn.healthy and "FileNotFoundError" in conn.problem and "gone.crt" not in conn.problem
    assert Connection(CONTEXT).healthy  # another connection: untouched


def test_a_tenants_server_refusal_reaches_status_and_events_only_as_its_kind(caplog):
    """A credentialsRef server may be any service on an allowed host: nothing of its error
    reply goes into the object's status or Events, only its kind (HTTP status, or an error
    answer); the reply is in the operator's log, bounded."""
    from juliarun_operator.reconcile.runtime.connections import Credentials

    secret = {"url": "https://jr.tenant.example", "token": "tenant-token-0123456789", "namespace": "t"}
    spec = {**SPEC, "credentialsRef": {"name": "creds"}}
    reply = "internal-banner: db01.corp 10.1.2.3 " + "x" * 2000
    for exc, kind in (
        (HTTPError("submitJob", 422, reply), "HTTP 422"),
        (ApiError("submitJob", 3, reply), "answered with an error"),
    ):
        kube = RecordingKube(body("a", 1, spec=spec), secrets={("team", "creds"): secret})
        ctl = Controller(Config(), kube, Connections(CONTEXT), Metrics())
        ctl.acting = True
        conn = ctl.connections.get(Credentials(secret["url"], secret["token"], secret["namespace"]))
        conn.snapshot, conn.snapshot_time = {}, time.time()
        conn.client.submit_job = fail_with(exc)
        ctl.track("ADDED", kube.get_object(*KEY))
        with caplog.at_level("WARNING", logger="juliarun_operator"):
            ctl.process(KEY)
        status = kube.objects[KEY]["status"]
        stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
        assert stalled["reason"] == "SubmitRefused" and kind in stalled["message"], stalled
        told = repr(status) + repr(kube.events)
        assert "banner" not in told and "10.1.2.3" not in told and "xxx" not in told
        logged = [
            r.getMessage() for r in caplog.records if "refused by the tenant's JuliaRun" in r.getMessage()
        ]
        assert logged and "internal-banner" in logged[-1] and len(logged[-1]) < 700
        caplog.clear()
    # The administrator's JuliaRun (the default connection) keeps its reason on the object.
    ctl, kube = controller(body("a", 1, spec=SPEC))
    conn = with_snapshot(ctl)
    conn.client.submit_job = fail_with(ApiError("submitJob", 3, "cpu: at most 64"))
    ctl.track("ADDED", kube.get_object(*KEY))
    ctl.process(KEY)
    assert "cpu: at most 64" in json.dumps(kube.objects[KEY]["status"])


def test_a_stop_between_a_refused_submit_and_its_denied_status_write_hands_over_no_strangers_job():
    """Process A's submit of a recorded name is refused and the write saying so denied; A
    stops. Its handover vouches for the refusal (settled), so process B, finding a stranger's
    job of that name, calls it a conflict and deletes nothing with the object."""
    from juliarun_operator.reconcile.adapters.kube import ApiException

    obj = body("a", 1, spec={**SPEC, "jobName": "team-mine"})
    obj["metadata"]["finalizers"] = [FINALIZER]
    a, kube = controller(obj)
    a.acting_since = time.time() - 600  # past any landing window: nothing earlier may still land
    conn = with_snapshot(a)
    conn.client.submit_job = fail_with(ApiError("submitJob", 3, "no"))
    write = kube.patch_status

    def deny_refusals(namespace, name, status, resource_version=None):
        if "SubmitRefused" in json.dumps(status):
            raise ApiException(status=403, reason="Forbidden")
        return write(namespace, name, status, resource_version)

    kube.patch_status = deny_refusals
    a.track("ADDED", kube.get_object(*KEY))
    with pytest.raises(ApiException):
        a.process(KEY)
    assert kube.objects[KEY]["status"]["jobName"] == "team-mine"  # the intent is all the status says
    earlier = a.handover()
    assert earlier.settled

    kube.patch_status = write
    b = Controller(Config(), kube, Connections(CONTEXT), Metrics())
    b.set_acting(True, earlier)
    with_snapshot(b, running("team-mine"))  # a stranger's job of that name
    b.process(KEY)
    stalled = next(c for c in kube.objects[KEY]["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "Conflict" and "jobName" not in kube.objects[KEY]["status"]
    kube.objects[KEY]["metadata"]["deletionTimestamp"] = "2026-11-26T00:00:01Z"
    b.track("MODIFIED", kube.get_object(*KEY))
    b.connections.default.client.delete_job = fail_with(AssertionError("deleted a stranger's job"))
    b.process(KEY)
    assert kube.objects[KEY]["metadata"]["finalizers"] == []
