"""The operator's plumbing without processes: breaker, work queue, Secret cache, connections,
the object registry and the probes."""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time

import pytest

from juliarun_operator.juliarun import Context
from juliarun_operator.juliarun.errors import ApiError, TransportError
from juliarun_operator.reconcile import decision as d
from juliarun_operator.reconcile.adapters.kube import MAX_SECRET_VALUE, SecretProblem, decode_secret
from juliarun_operator.reconcile.adapters.metrics import Metrics
from juliarun_operator.reconcile.decision.model import SNAPSHOT_SOON, SNAPSHOT_WAIT, Plan
from juliarun_operator.reconcile.runtime.breaker import Backoff, Breaker, Unavailable
from juliarun_operator.reconcile.runtime.connections import Connection, Connections, Credentials
from juliarun_operator.reconcile.runtime.controller import Config, Controller
from juliarun_operator.reconcile.runtime.credentials import SecretCache
from juliarun_operator.reconcile.runtime.poller import LIVENESS, Housekeeper, SnapshotLoop, gap
from juliarun_operator.reconcile.runtime.queue import WorkQueue

from support.kube import RecordingKube, body

CONTEXT = Context(url="http://127.0.0.1:9", token="unit-test-token-1234", namespace="ns")


# --- the breaker: JuliaRun's call rate while it fails -------------------------------------------


def test_an_open_breaker_lets_one_trial_call_through_after_its_backoff():
    breaker = Breaker(Backoff(base=0.05, cap=0.05))
    breaker.failed("down")
    with pytest.raises(Unavailable) as refused:
        breaker.admit()
    assert refused.value.delay > 0
    time.sleep(0.06)
    breaker.admit()  # the trial
    with pytest.raises(Unavailable):
        breaker.admit()  # everyone else waits for the trial's outcome
    breaker.succeeded()
    breaker.admit()
    breaker.admit()


def test_a_hundred_callers_make_one_call_per_backoff_while_juliarun_fails():
    calls = []

    def failing() -> None:
        calls.append(time.monotonic())
        raise TransportError("no answer")

    conn = Connection(CONTEXT, backoff=Backoff(base=0.2, cap=0.2))
    deadline = time.monotonic() + 1.0

    def caller() -> None:
        while time.monotonic() < deadline:
            with contextlib.suppress(Unavailable, TransportError):
                conn.call(failing)
            time.sleep(0.01)

    threads = [threading.Thread(target=caller) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A first failure, then at most one trial per backoff (0.1 to 0.2 s): never 100 at once.
    assert 2 <= len(calls) <= 12, len(calls)


def test_a_refusal_is_an_answer_but_a_refused_read_is_a_failure():
    conn = Connection(CONTEXT, backoff=Backoff(base=10, cap=10))

    def refuse() -> None:
        raise ApiError("submitJob", 4711, "no")

    with pytest.raises(ApiError):
        conn.call(refuse)
    assert conn.healthy  # JuliaRun answered: it works
    with pytest.raises(ApiError):
        conn.read(refuse)
    # No view of the jobs: unusable. Said as a category: another object never reads this answer's text.
    assert not conn.healthy and "refused the snapshot read" in conn.problem and "4711" not in conn.problem


# --- the work queue ---------------------------------------------------------------------------


def test_a_key_is_queued_once_and_again_if_it_changed_while_handled():
    queue = WorkQueue()
    queue.add("a")
    queue.add("a")
    assert queue.get(0.1) == "a" and queue.get(0.01) is None
    queue.add("a")  # changed while a worker has it
    assert queue.get(0.01) is None  # not handed to a second worker meanwhile
    queue.done("a")
    assert queue.get(0.1) == "a"
    queue.done("a")
    queue.add_after("b", 0.05)
    assert queue.get(0.01) is None and queue.get(0.5) == "b"


# --- Secrets ----------------------------------------------------------------------------------


def test_a_missing_secret_is_remembered_and_read_again_with_backoff():
    reads = []

    def read(namespace: str, name: str, marked: bool, keys: tuple[str, ...]) -> dict[str, str]:
        reads.append(name)
        raise SecretProblem(f"Secret {namespace}/{name} not found")

    cache = SecretCache(read, ttl=60, backoff=Backoff(base=0.2, cap=0.2))
    for _ in range(50):
        with pytest.raises(SecretProblem, match="not found"):
            cache.get("team", "gone", ("k",))
    assert reads == ["gone"]
    time.sleep(0.21)
    with pytest.raises(SecretProblem):
        cache.get("team", "gone", ("k",))
    assert reads == ["gone", "gone"]


def test_a_good_secret_is_read_once_per_ttl():
    reads = []
    cache = SecretCache(
        lambda ns, name, marked, keys: reads.append(name) or {"k": "v"}, ttl=60, backoff=Backoff()
    )
    assert all(cache.get("team", "s", ("k",)) == {"k": "v"} for _ in range(100))
    assert reads == ["s"]


def test_a_tenants_large_secrets_cannot_fill_the_cache():
    """Only the keys used are kept, none over MAX_SECRET_VALUE, and the whole within its budget."""
    big = base64.b64encode(b"x" * 60_000).decode()
    secret = {"password": big, "unused": base64.b64encode(b"y" * 900_000).decode()}
    read = lambda ns, name, marked, keys: decode_secret(ns, name, secret, keys)  # noqa: E731
    cache = SecretCache(read, ttl=60, backoff=Backoff(), max_bytes=1_000_000)
    for i in range(100):  # 100 Secrets of 960 kB each
        assert len(cache.get("team", f"s{i}", ("password",))["password"]) == 60_000
    assert cache.bytes <= 1_000_000 and len(cache) < 100
    too_big = {"password": base64.b64encode(b"z" * (MAX_SECRET_VALUE + 1)).decode()}
    with pytest.raises(SecretProblem, match="over 64 KiB"):
        decode_secret("team", "huge", too_big, ("password",))


# --- connections over time ---------------------------------------------------------------------


def test_a_hundred_token_rotations_leave_no_connection_or_file_behind():
    connections = Connections(CONTEXT, idle=0.0)
    files = set()
    for i in range(100):
        conn = connections.get(Credentials("https://jr.example", f"rotated-token-{i:04d}", "team", ca="PEM"))
        files.add(conn.context.verify)
        connections.tidy()  # idle 0: the one just used is also closed, as after its idle time
    assert connections.all() == [connections.default]
    assert files and not any(os.path.exists(str(f)) for f in files)


def test_one_ca_file_per_ca_however_many_tokens_use_it():
    connections = Connections(CONTEXT)
    conns = [
        connections.get(Credentials("https://jr.example", f"token-{i:04d}", "team", ca="PEM"))
        for i in range(50)
    ]
    other = connections.get(Credentials("https://jr.example", "token-x", "team", ca="OTHER PEM"))
    assert len({c.context.verify for c in conns}) == 1 and other.context.verify != conns[0].context.verify
    connections.close()
    assert not os.path.exists(str(conns[0].context.verify)) and not os.path.exists(str(other.context.verify))


# --- the registry -------------------------------------------------------------------------------


def controller() -> Controller:
    return Controller(Config(), RecordingKube(), Connections(CONTEXT), Metrics())


def test_a_fresh_list_forgets_objects_deleted_while_no_event_said_so():
    ctl = controller()
    for name in ("a", "b", "c"):
        ctl.track("ADDED", body(name, 10, jobName=f"job-{name}"))
    ctl.replace_all([body("a", 20, jobName="job-a"), body("c", 21, jobName="job-c")])  # b went in a gap
    assert sorted(ctl.keys()) == [("team", "a"), ("team", "c")]
    assert ctl.registry.holder("job-b") is None and ctl.registry.holder("job-a") == ("team", "a")


def test_an_older_body_never_replaces_a_newer_one():
    ctl = controller()
    ctl.registry.remember(body("a", 30, phase="Running"))  # our write's answer
    ctl.track("MODIFIED", body("a", 29, phase="Pending"))  # the watch, late
    assert ctl.registry.get(("team", "a"))["status"]["phase"] == "Running"


# --- snapshots while objects wait ---------------------------------------------------------------


def waiting_loop(fetch_seconds: float) -> tuple[SnapshotLoop, Connection, list[float]]:
    """A connection's snapshot loop whose last snapshot took `fetch_seconds`, just now."""
    ctl = controller()
    ctl.acting = True
    conn = ctl.connections.default
    fetched: list[float] = []
    conn.fetch = lambda: fetched.append(time.monotonic()) or {}  # type: ignore[method-assign]
    conn.fetch_seconds = fetch_seconds
    loop = SnapshotLoop(ctl, conn)
    loop.last_fetch = time.monotonic()
    return loop, conn, fetched


def test_a_quick_snapshot_is_taken_again_soon_after_a_submit_a_slow_one_a_second_later():
    submit = Plan((d.submit("job", {}),), job="job", wait_snapshot=True)
    assert submit.look_within() == SNAPSHOT_SOON < SNAPSHOT_WAIT
    assert Plan(job="job", wait_snapshot=True).look_within() == SNAPSHOT_WAIT  # a job taking its time
    quick, conn, fetched = waiting_loop(fetch_seconds=0.005)
    conn.wait_for_snapshot(("team", "a"), submit.look_within())
    assert conn.wanted.is_set()  # the loop's sleep ends: it learns of the want at once
    assert quick.tick() <= SNAPSHOT_SOON and not fetched  # next look in 0.2 s, not yet
    slow, conn, fetched = waiting_loop(fetch_seconds=0.3)  # 10,000 jobs: a second apart
    conn.wait_for_snapshot(("team", "a"), submit.look_within())
    assert slow.tick() > 0.9 and not fetched
    assert [gap(s) for s in (0.001, 0.05, 0.3)] == [0.2, 0.5, 1.0]


def test_a_watched_job_gets_a_snapshot_every_second_and_the_quiet_state_one_per_interval():
    loop, conn, _ = waiting_loop(fetch_seconds=0.005)
    now = time.monotonic()
    assert loop.due(now) - loop.last_fetch == pytest.approx(loop.config.sync_interval)  # quiet
    conn.watch(("team", "batch"), closely=True)
    assert loop.due(now) - loop.last_fetch == pytest.approx(1.0)  # a batch job runs: its end shows soon
    conn.watch(("team", "batch"), closely=False)
    assert loop.due(now) - loop.last_fetch == pytest.approx(loop.config.sync_interval)


# --- probes -------------------------------------------------------------------------------------


def housekeeper(ctl: Controller) -> Housekeeper:
    return Housekeeper(ctl, lambda name, target: None)


@pytest.mark.parametrize(
    ("looks", "anew"),
    [
        (["crd-uid-1", "crd-uid-1"], 0),
        (["crd-uid-1", "", "", "crd-uid-2"], 1),  # deleted, seen gone, created again
        (["crd-uid-1", "crd-uid-2"], 1),  # deleted and created again between two looks
        (["crd-uid-1", None, "crd-uid-1"], 0),  # a look that got no answer changes nothing
        (["", "crd-uid-1"], 1),  # started before the CRD existed
    ],
)
def test_the_crd_served_anew_is_watched_anew_however_short_its_absence(looks, anew):
    ctl = controller()
    ctl.acting = True
    keeper = housekeeper(ctl)
    restarts: list[int] = []
    keeper.on_served_again = lambda: restarts.append(1)
    for crd in looks:
        ctl.kube.crd = crd  # type: ignore[attr-defined]
        keeper.next_served_check = 0.0
        keeper.tick()
    assert len(restarts) == anew


def test_liveness_holds_while_a_long_queue_is_worked_through_and_fails_when_nothing_moves():
    ctl = controller()
    keeper = housekeeper(ctl)
    for i in range(10_000):
        ctl.queue.add(("team", f"o{i}"))
    ctl.last_done = time.monotonic()  # workers finish objects: a long pass, still progress
    assert keeper.health()[0]
    ctl.last_done = time.monotonic() - LIVENESS * 5 - 1  # stuck: no object done for 5 min
    assert not keeper.health()[0]


def test_liveness_does_not_follow_a_tenants_broken_juliarun():
    ctl = controller()
    tenant = ctl.connections.get(Credentials("https://tenant.example", "tenant-token-1", "team"))
    ctl.registry.objects[("team", "a")] = body("a", 1)
    ctl.registry.route("job-a", ("team", "a"), tenant)
    tenant.breaker.failed("transport error (no complete answer)")
    assert housekeeper(ctl).health()[0]


def test_readiness_answers_from_memory_and_never_names_a_tenants_connection():
    ctl = controller()
    ctl.acting = True
    keeper = housekeeper(ctl)
    started = time.monotonic()
    assert keeper.ready()[0]
    tenant = ctl.connections.get(Credentials("https://tenant-secret-host.example", "tenant-token-1", "team"))
    ctl.registry.objects[("team", "a")] = body("a", 1)
    ctl.registry.route("job-a", ("team", "a"), tenant)
    tenant.breaker.failed("HTTP 502")
    ok, text = keeper.ready()
    assert ok and "tenant-secret-host" not in text and "1 failing" in text
    ctl.connections.default.breaker.failed("transport error (no complete answer)")
    ok, text = keeper.ready()
    assert not ok and "transport error" in text
    assert time.monotonic() - started < 0.1  # no call to JuliaRun inside the probe


# --- plain http, where the administrator allowed it ----------------------------------------------


def test_a_token_sent_over_allowed_plain_http_is_told_to_the_objects_people_once():
    kube = RecordingKube(body("a", 5))
    insecure = Context(
        url="http://juliarun.example.com:80",
        token="plain-http-token-7777",
        namespace="ns",
        allow_insecure_http=True,
    )
    ctl = Controller(Config(), kube, Connections(insecure), Metrics())  # type: ignore[arg-type]
    ctl.acting = True
    ctl.track("ADDED", body("a", 5))
    ctl.process(("team", "a"))
    ctl.process(("team", "a"))
    warnings = [e for e in kube.events if e[1] == "InsecureTransport"]
    assert len(warnings) == 1 and "http://juliarun.example.com:80" in warnings[0][2]
    assert "plain-http-token-7777" not in warnings[0][2]
