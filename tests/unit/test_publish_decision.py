"""Publishing a job in Kubernetes (decision/publish.py), case by case: the object and JuliaRun's
view of its job in, the Service, EndpointSlice and Secret actions and the condition out."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from juliarun_operator.api import FINALIZER
from juliarun_operator.juliarun.client import JobInfo, JobScale, JobStatus
from juliarun_operator.reconcile import decision as d
from juliarun_operator.reconcile.decision import publish as pub
from juliarun_operator.reconcile.decision.endpoints import Allowed
from juliarun_operator.reconcile.decision.model import Resource
from juliarun_operator.reconcile.decision.published_objects import SERVICE_NAME_LABEL, SLICE_MANAGED_BY_LABEL

from decision_tables import NOW

UID = "5f0c7a52-33a1-4d0e-8a4c-6f2f0e1d9b11"
POD_NETWORK = Allowed.parse(["10.0.0.0/8"])
Found = dict[tuple[Resource, str], dict[str, Any] | None]


def obj(spec=None, status=None, deleting=False, name="nb", job_type="Notebook") -> d.ObjectState:
    spec = {"type": job_type, "runVolume": "v", **(spec or {})}
    return d.ObjectState("team", name, UID, 1, spec, status or {}, {}, (FINALIZER,), deleting, NOW - 100)


def job(endpoints=("10.1.2.3:8888",), created=True, completed=False, job_type="Notebook") -> JobInfo:
    return JobInfo(
        "team-nb-x", job_type, JobStatus(completed, 0, 1, created, False), JobScale(1, 1), list(endpoints)
    )


def view(info=None, found: Found | None = None, allowed=POD_NETWORK, known=True, password="") -> pub.View:
    return pub.View(NOW, known, info, allowed, found or {}, password)


def publications(plan: d.Plan) -> list[tuple[str, Resource, str]]:
    return [
        (a.kind.value, a.publication.resource, a.publication.name)
        for a in plan.actions
        if a.publication is not None
    ]


def pubs(plan: d.Plan) -> list[d.Action]:
    """The plan's publishing actions, in order (the status write goes before them)."""
    return [a for a in plan.actions if a.publication is not None]


def status_of(plan: d.Plan) -> dict[str, Any]:
    writes = [a.status for a in plan.actions if a.kind is d.Kind.WRITE_STATUS]
    assert len(writes) == 1, [a.kind for a in plan.actions]
    return dict(writes[0])


def published(plan: d.Plan) -> tuple[str, str, str]:
    c = next(c for c in status_of(plan)["conditions"] if c["type"] == pub.PUBLISHED)
    return c["status"], c["reason"], c["message"]


def applied(plan: d.Plan, found: Found) -> Found:
    """What the API server holds after the plan's publishing actions (a merge patch merges)."""
    after = dict(found)
    for a in plan.actions:
        p = a.publication
        if p is None:
            continue
        key = (p.resource, p.name)
        if a.kind is d.Kind.UNPUBLISH:
            after[key] = None
        elif p.exists:
            after[key] = _merge(after[key] or {}, p.body)
        else:
            body = dict(p.body)
            body["metadata"] = {**body["metadata"], "uid": f"uid-{p.name}"}
            after[key] = body
    return after


def _merge(old: dict[str, Any], patch: Any) -> dict[str, Any]:
    out = dict(old)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def decoded(body: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in body["data"].items()}


def steady(o: d.ObjectState, info: JobInfo | None, **kw: Any) -> tuple[Found, d.ObjectState]:
    """Found and object (status written) after the plan that publishes from nothing."""
    first = pub.plan(o, d.Plan(), view(info, **kw))
    found = applied(first, {})
    status = {**o.status, **{k: v for k, v in status_of(first).items() if v is not None}}
    return found, o.__class__(**{**o.__dict__, "status": status})


# --- the Service and its EndpointSlice --------------------------------------------------------


def test_a_running_notebook_gets_a_service_without_selector_and_a_slice_with_its_address():
    plan = pub.plan(obj(), d.Plan(), view(job()))
    assert publications(plan) == [
        ("publish", Resource.SERVICE, "nb"),
        ("publish", Resource.ENDPOINT_SLICE, "nb-juliarun"),
    ]
    service, endpoints = (a.publication.body for a in plan.actions if a.publication)
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"] == [{"name": "nb", "port": 8888, "protocol": "TCP"}]
    assert service["metadata"]["ownerReferences"][0]["uid"] == UID
    assert endpoints["metadata"]["labels"][SERVICE_NAME_LABEL] == "nb"
    assert endpoints["metadata"]["labels"][SLICE_MANAGED_BY_LABEL] == "juliarun-operator"
    assert endpoints["endpoints"] == [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}}]
    assert endpoints["ports"] == [{"name": "nb", "port": 8888, "protocol": "TCP"}]
    assert published(plan)[:2] == ("True", "Published")


def test_published_as_it_should_be_nothing_is_written():
    found, o = steady(obj(), job())
    assert pub.plan(o, d.Plan(), view(job(), found)) == d.Plan()


@pytest.mark.parametrize(
    ("endpoints", "created", "completed", "addresses"),
    [
        (["10.9.9.9:8888"], True, False, ["10.9.9.9"]),  # moved: the slice follows
        (["10.1.2.3:8888"], False, False, []),  # scheduled, not yet created: empty
        (["10.1.2.3:8888"], True, True, []),  # completed: empty
        ([], True, False, []),  # JuliaRun reports nothing
    ],
)
def test_the_slice_follows_the_job_and_is_emptied_while_it_does_not_run(
    endpoints, created, completed, addresses
):
    found, o = steady(obj(), job())
    plan = pub.plan(o, d.Plan(), view(job(endpoints, created, completed), found))
    assert publications(plan) == [("publish", Resource.ENDPOINT_SLICE, "nb-juliarun")]
    patch = pubs(plan)[0].publication.body
    assert pubs(plan)[0].publication.exists
    assert [e["addresses"][0] for e in patch["endpoints"]] == addresses


def test_a_job_gone_from_juliarun_empties_the_slice_but_an_unknown_view_leaves_it():
    found, o = steady(obj(), job())
    gone = pub.plan(o, d.Plan(), view(None, found))
    assert pubs(gone)[0].publication.body["endpoints"] == []
    assert pub.plan(o, d.Plan(), view(None, found, known=False)) == d.Plan()


@pytest.mark.parametrize(
    ("allowed", "endpoints", "kept", "refused"),
    [
        (Allowed(), ["10.1.2.3:8888"], [], "10.1.2.3:8888 is outside the ranges allowed"),
        (POD_NETWORK, ["10.1.2.3:8888", "192.168.1.5:8888"], ["10.1.2.3"], "192.168.1.5:8888 is outside"),
        (Allowed.parse(["10.1.2.0/24"]), ["10.1.3.1:8888"], [], "10.1.3.1:8888 is outside"),
        (POD_NETWORK, ["10.1.2.3:9999"], [], "10.1.2.3:9999 is not one of the job's ports"),
        (Allowed.parse(["::/0"]), ["[fd00::1]:8888"], [], "IPv6 addresses are not published"),
        (POD_NETWORK, ["jobs.example.com:8888"], [], "host name not allowed for this connection"),
        (Allowed.parse(["0.0.0.0/0"]), ["127.0.0.1:8888"], [], "not an address a Service can point to"),
        (Allowed.parse(["0.0.0.0/0"]), ["169.254.1.1:8888"], [], "not an address a Service can point to"),
    ],
)
def test_an_address_outside_the_connections_ranges_gets_no_entry_and_the_condition_says_why(
    allowed, endpoints, kept, refused
):
    plan = pub.plan(obj(), d.Plan(), view(job(endpoints), allowed=allowed))
    endpoints_body = next(
        a.publication.body for a in plan.actions if a.publication and a.publication.name == "nb-juliarun"
    )
    assert [e["addresses"][0] for e in endpoints_body["endpoints"]] == kept
    status, reason, message = published(plan)
    assert (status, reason) == ("False", "AddressRefused")
    assert refused in message
    assert f"allowed: {allowed.describe()}" in message


def test_an_endpoint_matches_its_port_by_service_port_else_container_port():
    spec = {"ports": [{"name": "http", "containerPort": 8080, "servicePort": 80}]}
    for reported, target in (("10.1.2.3:80", 80), ("10.1.2.3:8080", 8080), ("http://10.1.2.3/", 80)):
        plan = pub.plan(obj(spec), d.Plan(), view(job([reported])))
        service, endpoints = (a.publication.body for a in plan.actions if a.publication)
        assert service["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
        assert endpoints["ports"] == [{"name": "http", "port": target, "protocol": "TCP"}], reported


def test_a_host_name_within_the_allowed_suffixes_is_an_external_name_service_without_a_slice():
    allowed = Allowed.parse(["10.0.0.0/8", ".jobs.example.com"])
    found, o = steady(obj(), job())
    plan = pub.plan(o, d.Plan(), view(job(["nb1.jobs.example.com:8888"]), found, allowed=allowed))
    assert publications(plan) == [
        ("publish", Resource.SERVICE, "nb"),
        ("unpublish", Resource.ENDPOINT_SLICE, "nb-juliarun"),
    ]
    service = pubs(plan)[0].publication
    assert service.replace  # ClusterIP -> ExternalName: created again
    assert service.body["spec"]["type"] == "ExternalName"
    assert service.body["spec"]["externalName"] == "nb1.jobs.example.com"


def test_a_service_or_slice_the_operator_did_not_create_is_left_and_said_so():
    theirs = {
        "metadata": {"name": "nb", "uid": "other", "ownerReferences": []},
        "spec": {"type": "ClusterIP"},
    }
    plan = pub.plan(obj(), d.Plan(), view(job(), {(Resource.SERVICE, "nb"): theirs}))
    assert publications(plan) == []
    status, reason, message = published(plan)
    assert (status, reason) == ("False", "NotPublished")
    assert "Service nb exists and was not created by the operator" in message


@pytest.mark.parametrize(
    ("job_type", "spec", "published_service"),
    [
        ("Notebook", {}, True),
        ("Webserver", {"cfgFile": "c"}, True),
        ("MessageQ", {"cfgFile": "c"}, True),
        ("Notebook", {"service": {"enabled": False}}, False),
        ("JuliaBatch", {"ports": [{"name": "ui", "containerPort": 80, "servicePort": 80}]}, False),
        (
            "JuliaBatch",
            {"ports": [{"name": "ui", "containerPort": 80, "servicePort": 80}], "service": {"enabled": True}},
            True,
        ),
        ("Generic", {"service": {"enabled": True}}, False),  # no ports: nothing to publish
    ],
)
def test_services_by_default_for_the_service_types_and_spec_service_enabled_decides(
    job_type, spec, published_service
):
    plan = pub.plan(obj(spec, job_type=job_type), d.Plan(), view(job(["10.1.2.3:80"], job_type=job_type)))
    assert (("publish", Resource.SERVICE, "nb") in publications(plan)) is published_service


def test_service_disabled_later_deletes_the_service_and_slice():
    found, o = steady(obj(), job())
    off = o.__class__(**{**o.__dict__, "spec": {**o.spec, "service": {"enabled": False}}})
    plan = pub.plan(off, d.Plan(), view(job(), found))
    assert publications(plan) == [
        ("unpublish", Resource.SERVICE, "nb"),
        ("unpublish", Resource.ENDPOINT_SLICE, "nb-juliarun"),
    ]
    assert pubs(plan)[0].publication.uid == "uid-nb"  # only the one found


def test_a_name_that_is_no_service_name_publishes_no_service_and_says_why():
    plan = pub.plan(obj(name="1.nb"), d.Plan(), view(job()))
    assert publications(plan) == []
    assert "is not a Service name" in published(plan)[2]


# --- deletion --------------------------------------------------------------------------------


def test_deleting_deletes_what_the_operator_published_before_the_finalizer_goes():
    found, o = steady(obj({"writeConnectionSecretToRef": {"name": "nb-conn"}}), job())
    found[(Resource.SECRET, "theirs")] = {"metadata": {"name": "theirs", "uid": "u"}}
    dying = o.__class__(**{**o.__dict__, "deleting": True})
    base = d.Plan((d.Action(d.Kind.REMOVE_FINALIZER),))
    plan = pub.plan(dying, base, view(job(), found))
    assert [a.kind for a in plan.actions] == [d.Kind.UNPUBLISH] * 3 + [d.Kind.REMOVE_FINALIZER]
    assert {a.publication.name for a in pubs(plan)[:3]} == {"nb", "nb-juliarun", "nb-conn"}


# --- the connection Secret -------------------------------------------------------------------


def test_the_connection_secret_has_the_service_binding_keys_and_a_notebooks_password():
    o = obj({"writeConnectionSecretToRef": {"name": "nb-conn"}})
    plan = pub.plan(o, d.Plan(), view(job(), password="s3cret-notebook-pw"))
    secret = next(a.publication.body for a in pubs(plan) if a.publication.resource is Resource.SECRET)
    assert secret["type"] == "servicebinding.io/notebook"
    assert decoded(secret) == {
        "host": "nb.team.svc",
        "port": "8888",
        "uri": "http://nb.team.svc:8888",
        "type": "notebook",
        "provider": "juliarun",
        "password": "s3cret-notebook-pw",
    }
    assert status_of(plan)["binding"] == {"name": "nb-conn"}
    assert published(plan)[:2] == ("True", "Published")


def test_several_ports_each_have_their_uri():
    o = obj({"cfgFile": "c", "writeConnectionSecretToRef": {"name": "mq"}}, job_type="MessageQ")
    plan = pub.plan(o, d.Plan(), view(job(["10.1.2.3:5672"], job_type="MessageQ")))
    data = decoded(next(a.publication.body for a in pubs(plan) if a.publication.resource is Resource.SECRET))
    assert data["uri"] == "amqps://nb.team.svc:5671"
    assert data["uri-amqp"] == "amqp://nb.team.svc:5672"
    assert data["uri-mgmt"] == "http://nb.team.svc:15672"
    assert data["port-mgmttls"] == "15671"


def test_without_a_service_the_secret_carries_juliaruns_address():
    o = obj({"service": {"enabled": False}, "writeConnectionSecretToRef": {"name": "c"}})
    plan = pub.plan(o, d.Plan(), view(job(["10.1.2.3:8888"])))
    (secret,) = (a.publication.body for a in plan.actions if a.publication)
    assert decoded(secret)["uri"] == "http://10.1.2.3:8888"


def test_a_secret_the_operator_did_not_create_is_never_overwritten():
    theirs = {"metadata": {"name": "conn", "uid": "u", "labels": {}}, "data": {"password": "eA=="}}
    o = obj({"writeConnectionSecretToRef": {"name": "conn"}})
    plan = pub.plan(o, d.Plan(), view(job(), {(Resource.SECRET, "conn"): theirs}))
    assert Resource.SECRET not in [r for _, r, _ in publications(plan)]
    assert "Secret conn exists and was not created by the operator" in published(plan)[2]
    assert status_of(plan)["binding"] is None


def test_a_renamed_secret_replaces_the_old_one_and_a_removed_key_goes():
    found, o = steady(obj({"writeConnectionSecretToRef": {"name": "a"}}), job(), password="pw-one-two-three")
    renamed = o.__class__(**{**o.__dict__, "spec": {**o.spec, "writeConnectionSecretToRef": {"name": "b"}}})
    plan = pub.plan(renamed, d.Plan(), view(job(), found))
    assert publications(plan) == [("publish", Resource.SECRET, "b"), ("unpublish", Resource.SECRET, "a")] or (
        publications(plan) == [("unpublish", Resource.SECRET, "a"), ("publish", Resource.SECRET, "b")]
    )
    assert status_of(plan)["binding"] == {"name": "b"}
    no_password = pub.plan(o, d.Plan(), view(job(), found))  # the password Secret ref was removed
    patch = next(a.publication for a in no_password.actions if a.publication)
    assert patch.exists and patch.body["data"]["password"] is None


def test_a_secret_keeps_the_last_address_while_the_job_does_not_run():
    o = obj({"service": {"enabled": False}, "writeConnectionSecretToRef": {"name": "c"}})
    found, o = steady(o, job(["10.1.2.3:8888"]))
    assert publications(pub.plan(o, d.Plan(), view(job(created=False), found))) == []


# --- the status write ------------------------------------------------------------------------


def test_the_condition_joins_the_decisions_own_status_write():
    base = d.Plan((d.write_status({"phase": "Running", "conditions": [], "lastSyncTime": "t"}),))
    plan = pub.plan(obj(), base, view(job()))
    assert [a.kind for a in plan.actions].count(d.Kind.WRITE_STATUS) == 1
    fields = status_of(plan)
    assert fields["phase"] == "Running"
    assert [c["type"] for c in fields["conditions"]] == [pub.PUBLISHED]


def test_an_object_with_nothing_to_publish_gets_no_condition():
    plan = pub.plan(obj(job_type="JuliaBatch", spec={"startScript": "s"}), d.Plan(), view(job([])))
    assert plan == d.Plan()


@pytest.mark.parametrize(
    ("entries", "error"),
    [(["10.0.0.0/8", ".example.com"], ""), (["10.0.0/33"], "neither an address range"), ([".-x"], "suffix")],
)
def test_allowed_entries_are_ranges_or_host_suffixes(entries, error):
    if error:
        with pytest.raises(ValueError, match=error):
            Allowed.parse(entries)
    else:
        assert Allowed.parse(entries).describe() == "10.0.0.0/8, .example.com"


def test_where_the_operator_may_not_read_secrets_the_condition_says_so_and_nothing_is_sent():
    o = obj({"writeConnectionSecretToRef": {"name": "conn"}})
    v = view(job())._replace(forbidden=frozenset({(Resource.SECRET, "conn")}))
    plan = pub.plan(o, d.Plan(), v)
    assert Resource.SECRET not in [r for _, r, _ in publications(plan)]
    assert "may not read or write Secrets in this namespace" in published(plan)[2]
