"""What a Lease about to be taken says of the replica that held it last (leader._earlier):
the API server's time of its last write by the operator bounds when that replica stopped."""

from __future__ import annotations

import datetime as dt

import kubernetes

from juliarun_operator.reconcile.adapters.lease import (
    FIELD_MANAGER,
    SETTLED_ANNOTATION,
    STOP_MARGIN,
    _earlier,
)
from juliarun_operator.reconcile.decision.model import Earlier

WRITTEN = dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)


def lease(holder: str | None, annotations: dict | None = None, manager: str = FIELD_MANAGER):
    entries = [
        kubernetes.client.V1ManagedFieldsEntry(manager="kubectl", operation="Update", time=WRITTEN),
        kubernetes.client.V1ManagedFieldsEntry(
            manager=manager, operation="Update", time=WRITTEN - dt.timedelta(seconds=30)
        ),
    ]
    return kubernetes.client.V1Lease(
        metadata=kubernetes.client.V1ObjectMeta(annotations=annotations, managed_fields=entries),
        spec=kubernetes.client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15),
    )


def test_a_holder_that_died_may_have_acted_for_its_whole_duration_after_its_last_write():
    ours = WRITTEN.timestamp() - 30  # the operator's write, not kubectl's later one
    assert _earlier(lease("pod-a_1")) == Earlier(until=ours + 15 + STOP_MARGIN)


def test_a_released_lease_bounds_the_stop_by_the_release_and_carries_its_word():
    ours = WRITTEN.timestamp() - 30
    assert _earlier(lease(None, {SETTLED_ANNOTATION: "true"})) == Earlier(True, ours + STOP_MARGIN)
    assert _earlier(lease(None, {SETTLED_ANNOTATION: "false"})) == Earlier(False, ours + STOP_MARGIN)


def test_a_lease_the_operator_never_wrote_under_its_name_says_nothing():
    assert _earlier(lease("pod-a_1", manager="OpenAPI-Generator")) == Earlier()
    assert _earlier(lease(None, {SETTLED_ANNOTATION: "true"}, manager="other")) == Earlier()


def test_a_holder_seen_gone_bounds_its_stop_sooner():
    ours = WRITTEN.timestamp() - 30
    assert _earlier(lease("pod-a_1"), gone=ours + 5) == Earlier(until=ours + 5)
    assert _earlier(lease("pod-a_1"), gone=ours + 60) == Earlier(until=ours + 15 + STOP_MARGIN)
    assert _earlier(lease("pod-a_1", manager="other"), gone=ours + 60) == Earlier(until=ours + 60)


def test_a_released_lease_may_name_the_objects_whose_submits_may_still_land():
    ours = WRITTEN.timestamp() - 30
    stamp = dt.datetime.fromtimestamp(ours - 20, dt.UTC).isoformat(timespec="milliseconds")
    assert _earlier(lease(None, {SETTLED_ANNOTATION: stamp})) == Earlier(until=ours - 20)
    assert _earlier(lease(None, {SETTLED_ANNOTATION: "garbled"})) == Earlier(until=ours + STOP_MARGIN)
