"""The runtime's side of publishing (runtime/published.py, the executor's PUBLISH and
UNPUBLISH): what is written when, that the steady state writes nothing and reads nothing,
the fence, and the administrator's ranges."""

from __future__ import annotations

import time

import pytest

from juliarun_operator.api import FINALIZER, default_job_name
from juliarun_operator.juliarun import Context
from juliarun_operator.juliarun.model import JobInfo, JobScale, JobStatus
from juliarun_operator.reconcile import decision as d
from juliarun_operator.reconcile.adapters.metrics import Metrics
from juliarun_operator.reconcile.decision.model import Resource
from juliarun_operator.reconcile.runtime.connections import Connections
from juliarun_operator.reconcile.runtime.controller import Config, Controller
from juliarun_operator.reconcile.runtime.published import parse_ranges, ranges_key

from support.kube import RecordingKube, body

CONTEXT = Context(url="http://127.0.0.1:9", token="unit-test-token-9012", namespace="ns")
KEY = ("team", "nb")
SPEC = {"type": "Notebook", "runVolume": "v", "writeConnectionSecretToRef": {"name": "nb-conn"}}


class CountingKube(RecordingKube):
    def __init__(self, *objects: dict):
        super().__init__(*objects)
        self.reads = 0

    def get_published(self, resource, namespace, name):
        self.reads += 1
        return super().get_published(resource, namespace, name)


def setup(address: str = "10.1.2.3", **config) -> tuple[Controller, CountingKube, str]:
    obj = body("nb", spec=SPEC)
    obj["metadata"]["finalizers"] = [FINALIZER]
    kube = CountingKube(obj)
    ctl = Controller(Config(**config), kube, Connections(CONTEXT), Metrics())
    ctl.acting = True
    ctl.registry.update("ADDED", kube.objects[KEY])
    name = default_job_name("team", "nb", "uid-nb")
    move(ctl, name, address)
    return ctl, kube, name


def move(ctl: Controller, name: str, address: str) -> None:
    info = JobInfo(name, "Notebook", JobStatus(False, 0, 1, True, False), JobScale(1, 1), [f"{address}:8888"])
    conn = ctl.connections.default
    conn.snapshot, conn.snapshot_time = {name: info}, time.time()


def settle(ctl: Controller, kube: RecordingKube) -> None:
    """Looks until a look writes nothing (the watch's echo of each status write included)."""
    for _ in range(5):
        before = len(kube.writes)
        ctl.process(KEY)
        ctl.registry.update("MODIFIED", kube.objects[KEY])
        if len(kube.writes) == before:
            return
    raise AssertionError(f"still writing: {kube.writes}")


def slice_addresses(kube: RecordingKube) -> list[str]:
    found = kube.published[(Resource.ENDPOINT_SLICE, "team", "nb-juliarun")]
    return [e["addresses"][0] for e in found["endpoints"]]


def test_published_once_then_the_steady_state_neither_writes_nor_reads():
    ctl, kube, _ = setup()
    settle(ctl, kube)
    assert kube.reads == 0  # a new object's Service, slice and Secret are not looked for: created
    assert {(r, n) for r, _, n in kube.published} == {
        (Resource.SERVICE, "nb"),
        (Resource.ENDPOINT_SLICE, "nb-juliarun"),
        (Resource.SECRET, "nb-conn"),
    }
    assert slice_addresses(kube) == ["10.1.2.3"]
    assert kube.objects[KEY]["status"]["binding"] == {"name": "nb-conn"}
    writes, reads = len(kube.writes), kube.reads
    for _ in range(3):
        ctl.process(KEY)
    assert (len(kube.writes), kube.reads) == (writes, reads)


def test_a_move_patches_the_slice_alone_besides_status_endpoints():
    ctl, kube, name = setup()
    settle(ctl, kube)
    before = len(kube.writes)
    move(ctl, name, "10.9.9.9")
    settle(ctl, kube)
    assert sorted(kube.writes[before:]) == [("patch EndpointSlice", "nb-juliarun"), ("status", "nb")]
    assert slice_addresses(kube) == ["10.9.9.9"]


def test_an_address_outside_the_ranges_is_left_out_and_the_condition_says_why():
    ctl, kube, _ = setup("192.168.7.7")
    settle(ctl, kube)
    assert slice_addresses(kube) == []
    cond = next(c for c in kube.objects[KEY]["status"]["conditions"] if c["type"] == "Published")
    assert (cond["status"], cond["reason"]) == ("False", "AddressRefused")
    assert "192.168.7.7:8888 is outside the ranges allowed for this connection" in cond["message"]


def test_without_the_lease_nothing_is_published():
    ctl, kube, _ = setup()
    ctl.fence = lambda: False
    ctl.process(KEY)
    assert kube.published == {} and kube.writes == []


def test_deletion_removes_what_was_published_before_the_finalizer():
    ctl, kube, _ = setup()
    settle(ctl, kube)
    kube.objects[KEY]["metadata"]["deletionTimestamp"] = "2026-11-26T00:00:01Z"
    kube.objects[KEY]["spec"]["deletionPolicy"] = "Orphan"  # JuliaRun is not asked: publishing alone
    ctl.registry.update("MODIFIED", kube.objects[KEY])
    before = len(kube.writes)
    ctl.process(KEY)
    done = kube.writes[before:]
    assert done[-1] == ("finalizer", "nb")
    assert {w for w in done if w[0].startswith("delete")} == {
        ("delete Service", "nb"),
        ("delete EndpointSlice", "nb-juliarun"),
        ("delete Secret", "nb-conn"),
    }
    assert kube.published == {}


@pytest.mark.parametrize(
    ("entries", "connection", "allowed"),
    [
        ((), "default", "10.0.0.0/8"),
        ((), "Admin/tenant-a", "none"),
        ((), "Secret/mine", "none"),
        (("default=",), "default", "none"),
        (("default=192.168.0.0/16", "default=10.1.0.0/16"), "default", "192.168.0.0/16, 10.1.0.0/16"),
        (("Admin/tenant-a=10.20.0.0/16",), "Admin/tenant-a", "10.20.0.0/16"),
        (("Secret/team/mine=10.30.0.0/16",), "Secret/mine", "10.30.0.0/16"),
        (("Secret/other/mine=10.30.0.0/16",), "Secret/mine", "none"),  # another namespace's Secret
    ],
)
def test_ranges_per_connection_none_for_a_tenant_unless_the_administrator_says(entries, connection, allowed):
    obj = d.ObjectState("team", "nb", "u", 1, {})
    ranges = parse_ranges(entries)
    assert ranges.get(ranges_key(obj, connection), parse_ranges(["x="])["x"]).describe() == allowed


def test_a_bad_range_is_named():
    with pytest.raises(ValueError, match=r"default.*'10\.0\.0\.0/40'"):
        parse_ranges(["default=10.0.0.0/40"])


def test_a_secret_the_operator_may_not_read_is_a_condition_read_again_only_at_resync():
    ctl, kube, _ = setup()

    def forbidden(resource, namespace, name):
        kube.reads += 1
        if resource is Resource.SECRET:
            from juliarun_operator.reconcile.adapters.kube import ApiException

            raise ApiException(status=403, reason="Forbidden")
        return RecordingKube.get_published(kube, resource, namespace, name)

    def create(resource, namespace, body):
        if resource is Resource.SECRET:
            from juliarun_operator.reconcile.adapters.kube import ApiException

            raise ApiException(status=403, reason="Forbidden")
        return RecordingKube.create_published(kube, resource, namespace, body)

    kube.get_published = forbidden  # type: ignore[method-assign]
    kube.create_published = create  # type: ignore[method-assign]
    settle(ctl, kube)
    assert (Resource.SECRET, "team", "nb-conn") not in kube.published
    cond = next(c for c in kube.objects[KEY]["status"]["conditions"] if c["type"] == "Published")
    assert "may not read or write Secrets" in cond["message"]
    reads = kube.reads
    ctl.process(KEY)
    assert kube.reads == reads


def test_what_is_kept_of_a_published_object_leaves_its_managed_fields_out():
    from juliarun_operator.reconcile.runtime.published import Published

    kube = RecordingKube()
    service = {"metadata": {"name": "nb", "uid": "u", "managedFields": [{"manager": "x"} for _ in range(50)]}}
    kube.published[(Resource.SERVICE, "team", "nb")] = service
    store = Published(kube)
    obj = d.ObjectState("team", "nb", "uid-nb", 1, {})
    found, forbidden = store.found(obj, [(Resource.SERVICE, "nb")])
    assert found[(Resource.SERVICE, "nb")] == {"metadata": {"name": "nb", "uid": "u"}} and not forbidden


def test_a_service_of_that_name_already_there_is_read_and_left_as_it_is():
    ctl, kube, _ = setup()
    theirs = {"metadata": {"name": "nb", "uid": "theirs"}, "spec": {"type": "ClusterIP", "ports": []}}
    kube.published[(Resource.SERVICE, "team", "nb")] = theirs
    settle(ctl, kube)
    assert kube.published[(Resource.SERVICE, "team", "nb")] == theirs  # the create was refused (409)
    assert kube.reads >= 1
    cond = next(c for c in kube.objects[KEY]["status"]["conditions"] if c["type"] == "Published")
    assert "Service nb exists and was not created by the operator" in cond["message"]


def test_a_service_the_api_server_fails_to_create_is_said_by_the_condition_and_retried_on_backoff():
    """A full range of Service addresses (HTTP 500 at each create): the object's status and
    Ready are its job's, condition Published names the failure, the look is retried on the
    object's backoff (not at once), and the next create that works clears it."""
    from juliarun_operator.reconcile.adapters.kube import ApiException
    from juliarun_operator.reconcile.runtime.executor import Next

    ctl, kube, _ = setup()
    full = [True]

    def create(resource, namespace, body):
        if resource is Resource.SERVICE and full[0]:
            raise ApiException(status=500, reason="Internal Server Error")
        return RecordingKube.create_published(kube, resource, namespace, body)

    kube.create_published = create  # type: ignore[method-assign]
    first = ctl.process(KEY)
    assert first.next is Next.RETRY and "HTTP 500" in first.reason
    ctl.registry.update("MODIFIED", kube.objects[KEY])
    ctl.process(KEY)  # the retry: the condition now says why
    ctl.registry.update("MODIFIED", kube.objects[KEY])
    status = kube.objects[KEY]["status"]
    published = next(c for c in status["conditions"] if c["type"] == "Published")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (
        published["status"] == "False"
        and "Service nb could not be written (Kubernetes API: HTTP 500" in (published["message"])
    )
    assert ready["status"] == "True"  # the job's own state, whatever publishing does
    full[0] = False
    settle(ctl, kube)
    published = next(c for c in kube.objects[KEY]["status"]["conditions"] if c["type"] == "Published")
    assert published["status"] == "True" and (Resource.SERVICE, "team", "nb") in kube.published
