"""The Service, EndpointSlice and connection Secret of a job as the operator writes them,
pure; whether one found is the operator's (`owned`), and the one write that brings it in
step (`step`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from ...api import API_VERSION, COMPONENT, KIND
from .endpoints import Port
from .model import Action, ObjectState, Publication, Resource, publish

SLICE_SUFFIX = "-juliarun"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
OBJECT_LABEL = "juliarun.dev/job"  # the JuliaRunJob a published object belongs to
PROVIDER = "juliarun"

Body = Mapping[str, Any]


def slice_name(obj: ObjectState) -> str:
    return obj.name + SLICE_SUFFIX


def scheme(port_name: str) -> str:
    """A URI scheme for a port, from its name (the job types' names: nb, http, https, amqp,
    amqptls, mgmt, mgmttls)."""
    name = port_name.lower()
    tls = "tls" in name or name in ("https", "amqps")
    if name.startswith("amqp"):
        return "amqps" if tls else "amqp"
    return "https" if tls else "http"


# --- the objects as they should be ----------------------------------------------------------


def _meta(obj: ObjectState, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": obj.namespace,
        "labels": {MANAGED_BY_LABEL: COMPONENT, OBJECT_LABEL: obj.name, **labels},
        # Owned: a cluster's garbage collector deletes it with the object too (the operator
        # deletes it itself first). Not blockOwnerDeletion: that needs the owner's finalizers.
        "ownerReferences": [
            {"apiVersion": API_VERSION, "kind": KIND, "name": obj.name, "uid": obj.uid, "controller": True}
        ],
    }


def desired_service(obj: ObjectState, job_ports: Sequence[Port], host: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ports": [{"name": p.name, "port": p.service, "protocol": "TCP"} for p in job_ports],
    }
    if host:
        spec.update(type="ExternalName", externalName=host)
    else:
        spec["type"] = "ClusterIP"
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(obj, obj.name, {}), "spec": spec}


def desired_slice(
    obj: ObjectState, job_ports: Sequence[Port], targets: Mapping[str, int], addresses: Sequence[str]
) -> dict[str, Any]:
    labels = {SERVICE_NAME_LABEL: obj.name, SLICE_MANAGED_BY_LABEL: COMPONENT}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _meta(obj, slice_name(obj), labels),
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [
            {"name": p.name, "port": targets.get(p.name, p.service), "protocol": "TCP"} for p in job_ports
        ],
    }


def secret_data(
    obj: ObjectState, job_ports: Sequence[Port], host: str, targets: Mapping[str, int], password: str
) -> dict[str, str]:
    """The Service Binding spec's entries: host, port, uri (and port-<name>, uri-<name> for
    each where there are several), type, provider, and a notebook's password."""
    data = {"type": obj.spec.get("type", "").lower(), "provider": PROVIDER}
    if host and job_ports:
        numbers = {p.name: targets.get(p.name, p.service) for p in job_ports}
        first = job_ports[0]
        data.update(host=host, port=str(numbers[first.name]))
        data["uri"] = f"{scheme(first.name)}://{host}:{numbers[first.name]}"
        if len(job_ports) > 1:
            for p in job_ports:
                data[f"port-{p.name}"] = str(numbers[p.name])
                data[f"uri-{p.name}"] = f"{scheme(p.name)}://{host}:{numbers[p.name]}"
    if password:
        data["password"] = password
    return data


def desired_secret(obj: ObjectState, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(obj, name, {}),
        "type": f"servicebinding.io/{data['type']}",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }


# --- what is there, against what should be --------------------------------------------------


def owned(body: Body, uid: str) -> bool:
    """Whether the operator created `body` for the object with this UID."""
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


def uid_of(body: Body) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


def _managed(resource: Resource, body: Body) -> tuple[Any, ...]:
    """The parts of an object this operator decides, as comparable values (the API server
    fills in the rest: a clusterIP, a port's targetPort)."""
    meta = body.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k in _OUR_LABELS}
    refs = sorted(r.get("uid", "") for r in meta.get("ownerReferences") or [])
    if resource is Resource.SERVICE:
        spec = body.get("spec") or {}
        svc_ports = [
            (p.get("name"), p.get("port"), p.get("protocol", "TCP")) for p in spec.get("ports") or []
        ]
        return (
            labels,
            refs,
            spec.get("type", "ClusterIP"),
            spec.get("externalName"),
            svc_ports,
            spec.get("selector"),
        )
    if resource is Resource.ENDPOINT_SLICE:
        endpoints = [
            (tuple(e.get("addresses") or ()), (e.get("conditions") or {}).get("ready"))
            for e in body.get("endpoints") or []
        ]
        slice_ports = [
            (p.get("name"), p.get("port"), p.get("protocol", "TCP")) for p in body.get("ports") or []
        ]
        return labels, refs, body.get("addressType"), endpoints, slice_ports
    return labels, refs, body.get("type"), dict(body.get("data") or {})


_OUR_LABELS = (MANAGED_BY_LABEL, OBJECT_LABEL, SERVICE_NAME_LABEL, SLICE_MANAGED_BY_LABEL)


def step(resource: Resource, desired: Body, found: Body | None) -> Action | None:
    """The one action that makes `found` into `desired` (None: nothing to do). Only for an
    object the caller found ours or absent."""
    name = desired["metadata"]["name"]
    if found is None:
        return publish(Publication(resource, name, desired))
    if _managed(resource, desired) == _managed(resource, found):
        return None
    if resource is Resource.SERVICE and _service_type(desired) != _service_type(found):
        # ClusterIP and ExternalName do not patch into each other cleanly (the clusterIP).
        return publish(Publication(resource, name, desired, replace=True, uid=uid_of(found)))
    if resource is Resource.SECRET and desired.get("type") != found.get("type"):
        return publish(Publication(resource, name, desired, replace=True, uid=uid_of(found)))
    patch = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    if resource is Resource.SECRET:  # a merge patch keeps keys it does not name: these go
        gone = {k: None for k in (found.get("data") or {}) if k not in desired["data"]}
        patch["data"] = {**desired["data"], **gone}
    return publish(Publication(resource, name, patch, exists=True, uid=uid_of(found)))


def _service_type(body: Body) -> str:
    return str((body.get("spec") or {}).get("type") or "ClusterIP")
