"""Publishing a job in Kubernetes, pure: from a JuliaRunJob and JuliaRun's view of its own
job, the actions that turn the Service, EndpointSlice and connection Secret that are there
into those it should have (published_objects.py), and the condition Published. No I/O.

- A Service named after the object (`spec.service.enabled`; unset: the service types), its
  ports from `spec.ports` (else the type's default ports), no selector, and one EndpointSlice
  with the addresses JuliaRun reports for the job while it runs (empty otherwise); where
  JuliaRun reports only a host name, an `ExternalName` Service instead.
- Who may point a Service where (CVE-2021-25740: whoever writes the addresses steers the
  traffic): only addresses of this object's own job, only inside the ranges the
  administrator allows for its connection (endpoints.py), only in the object's namespace.
  Refused ones are left out and the condition Published says why.
- `spec.writeConnectionSecretToRef`: a Secret with the Service Binding spec's keys;
  `status.binding.name` names it.
- Everything is owned by the object (ownerReference) and deleted by the operator itself
  before the finalizer goes; nothing is touched that the operator did not create.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ...api import FINALIZER
from ...juliarun import jobtypes as jt
from ...juliarun.client import JobInfo
from . import status as st
from .endpoints import Allowed, Port, Reported, ports, sort_endpoints
from .model import Action, Kind, ObjectState, Plan, Publication, Resource, unpublish, write_status
from .published_objects import (
    Body,
    desired_secret,
    desired_service,
    desired_slice,
    owned,
    secret_data,
    slice_name,
    step,
    uid_of,
)

PUBLISHED = st.PUBLISHED  # the condition type
MAX_REFUSED_SHOWN = 3  # refused addresses named in the condition's message

# A Service's name (DNS-1035 label) and a port's (IANA service name), as the API server checks them.
SERVICE_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
PORT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")


class View(NamedTuple):
    """What the decision reads besides the object: JuliaRun's view of the object's own job
    (None: not known now, or not this object's), where its connection may point, and the
    published objects as they are (None: not there), by `wanted_names`."""

    now: float
    known: bool  # JuliaRun was looked at and the job found this object's (or absent)
    info: JobInfo | None  # ... and there it is (None: absent)
    allowed: Allowed
    found: Mapping[tuple[Resource, str], Body | None]
    password: str = ""  # a notebook's, from the spec's passwordSecretRef (the checked parameters)
    forbidden: frozenset[tuple[Resource, str]] = frozenset()  # not readable by the operator (RBAC)
    failed: Mapping[tuple[Resource, str], str] = {}  # last write of each refused or failed: why


def service_enabled(spec: Mapping[str, Any]) -> bool:
    service = spec.get("service")
    chosen = service.get("enabled") if isinstance(service, Mapping) else None
    return spec.get("type") in jt.SERVICE_TYPES if chosen is None else bool(chosen)


def secret_name(spec: Mapping[str, Any]) -> str:
    ref = spec.get("writeConnectionSecretToRef")
    return str(ref.get("name") or "") if isinstance(ref, Mapping) else ""


def wanted_names(obj: ObjectState) -> tuple[tuple[Resource, str], ...]:
    """The published objects the decision looks at: the object's Service and EndpointSlice,
    its connection Secret and the one status.binding names (spec may have changed)."""
    names = [(Resource.SERVICE, obj.name), (Resource.ENDPOINT_SLICE, slice_name(obj))]
    binding = (obj.status.get("binding") or {}).get("name")
    for secret in (secret_name(obj.spec), binding):
        if secret and (Resource.SECRET, secret) not in names:
            names.append((Resource.SECRET, secret))
    return tuple(names)


# --- the plan -----------------------------------------------------------------------------


def plan(obj: ObjectState, base: Plan, view: View) -> Plan:
    """`base` (the decision's plan for the job) with the publishing actions added: before the
    finalizer goes, the published objects are deleted; otherwise they are kept in step and
    the condition Published (and status.binding) folded into the status write."""
    if obj.deleting:
        if FINALIZER not in obj.finalizers:
            return base
        gone = tuple(
            unpublish(Publication(resource, name, uid=uid_of(body)))
            for (resource, name), body in view.found.items()
            if body is not None and owned(body, obj.uid)
        )
        return _before_finalizer(base, gone) if gone else base
    actions, cond, binding = _keep(obj, view)
    if cond is None and not obj.status.get("binding") and not st.condition(obj.status, PUBLISHED):
        return base._replace(actions=base.actions + actions) if actions else base
    return _with_status(obj, base, actions, cond, binding, view.now)


def _keep(obj: ObjectState, view: View) -> tuple[tuple[Action, ...], st.Cond | None, str]:
    """The actions that keep the Service, EndpointSlice and Secret in step; the condition
    that says how publishing stands (None: nothing to publish); the Secret's name."""
    actions: list[Action] = []
    problems: list[str] = []
    job_ports = ports(obj.spec)
    found = view.found
    service = found.get((Resource.SERVICE, obj.name))
    slice_found = found.get((Resource.ENDPOINT_SLICE, slice_name(obj)))
    info = view.info if view.known else None
    running = info is not None and info.status.created and not info.status.completed
    reported = sort_endpoints(info.endpoints if info is not None and running else (), job_ports, view.allowed)
    want_service = service_enabled(obj.spec) and bool(job_ports)
    published_host = ""
    if want_service:
        bad_port = next((p.name for p in job_ports if not _port_name_ok(p.name)), None)
        if {(Resource.SERVICE, obj.name), (Resource.ENDPOINT_SLICE, slice_name(obj))} & view.forbidden:
            problems.append(
                "no Service: the operator may not read Services and EndpointSlices in this namespace "
                "(its RBAC: docs/install.md)"
            )
            want_service = False
        elif not SERVICE_NAME_RE.match(obj.name):
            problems.append(f"no Service: {obj.name!r} is not a Service name (a DNS-1035 label)")
            want_service = False
        elif bad_port is not None:
            problems.append(f"no Service: port name {bad_port!r} is not a Service port name")
            want_service = False
        elif service is not None and not owned(service, obj.uid):
            problems.append(f"Service {obj.name} exists and was not created by the operator: left as it is")
            want_service = False
    if want_service:
        # Not known now (JuliaRun cannot be looked at): what is there stays as it is.
        host = reported.host if view.known else _external_name(service)
        step_service = step(Resource.SERVICE, desired_service(obj, job_ports, host), service)
        if step_service is not None:
            actions.append(step_service)
        if host:
            published_host = host
            if slice_found is not None and owned(slice_found, obj.uid):
                actions.append(
                    unpublish(Publication(Resource.ENDPOINT_SLICE, slice_name(obj), uid=uid_of(slice_found)))
                )
        elif slice_found is not None and not owned(slice_found, obj.uid):
            problems.append(f"EndpointSlice {slice_name(obj)} exists and was not created by the operator")
        else:
            wanted_slice = desired_slice(obj, job_ports, reported.targets, reported.addresses)
            step_slice = step(Resource.ENDPOINT_SLICE, wanted_slice, slice_found)
            if step_slice is not None and (view.known or slice_found is None):
                actions.append(step_slice)
            published_host = f"{obj.name}.{obj.namespace}.svc"
    else:
        for resource, body in ((Resource.SERVICE, service), (Resource.ENDPOINT_SLICE, slice_found)):
            if body is not None and owned(body, obj.uid):
                name = body["metadata"]["name"]
                actions.append(unpublish(Publication(resource, name, uid=uid_of(body))))
    binding = _secret_actions(obj, view, job_ports, reported, published_host, actions, problems)
    if not want_service and not secret_name(obj.spec) and not problems:
        return tuple(actions), None, binding
    for (resource, name), why in sorted(view.failed.items()):
        problems.append(f"{resource.value} {name} could not be written ({why}): tried again")
    if reported.refused:
        shown = "; ".join(reported.refused[:MAX_REFUSED_SHOWN])
        more = len(reported.refused) - MAX_REFUSED_SHOWN
        problems.append(
            f"left out of the Service: {shown}{f' (and {more} more)' if more > 0 else ''} "
            f"(allowed: {view.allowed.describe()}; the operator's administrator decides)"
        )
    if problems:
        reason = "AddressRefused" if reported.refused and len(problems) == 1 else "NotPublished"
        return tuple(actions), st.Cond("False", reason, "; ".join(problems)), binding
    what = []
    if want_service:
        # Not known now: the addresses there stay, and are what is published.
        count = len(reported.addresses) if view.known else len((slice_found or {}).get("endpoints") or [])
        where = (
            f"ExternalName {published_host}"
            if published_host and not published_host.endswith(".svc")
            else f"{count} address{'es' if count != 1 else ''}"
        )
        what.append(f"Service {obj.name} ({where})")
    if binding:
        what.append(f"Secret {binding}")
    return tuple(actions), st.Cond("True", "Published", ", ".join(what)), binding


def _secret_actions(
    obj: ObjectState,
    view: View,
    job_ports: Sequence[Port],
    reported: Reported,
    published_host: str,
    actions: list[Action],
    problems: list[str],
) -> str:
    """The connection Secret kept in step (and an earlier one of another name deleted);
    returns its name, for status.binding, if it is the operator's."""
    name = secret_name(obj.spec)
    old = (obj.status.get("binding") or {}).get("name")
    if old and old != name:
        body = view.found.get((Resource.SECRET, old))
        if body is not None and owned(body, obj.uid):
            actions.append(unpublish(Publication(Resource.SECRET, old, uid=uid_of(body))))
    if not name:
        return ""
    found = view.found.get((Resource.SECRET, name))
    if (Resource.SECRET, name) in view.forbidden:
        problems.append(
            f"no Secret {name}: the operator may not read or write Secrets in this namespace "
            "(the namespace opts in: docs/install.md)"
        )
        return ""
    if found is not None and not owned(found, obj.uid):
        problems.append(f"Secret {name} exists and was not created by the operator: left as it is")
        return ""
    host, targets = published_host, {p.name: p.service for p in job_ports}
    if not host and reported.addresses:  # no Service: JuliaRun's own address
        host, targets = reported.addresses[0], dict(reported.targets)
    elif not host and reported.host:
        host = reported.host
    desired = desired_secret(obj, name, secret_data(obj, job_ports, host, targets, view.password))
    if found is not None and not published_host and not (reported.addresses or reported.host):
        # No address known now (not running): the last one written stays.
        kept = {
            k: v
            for k, v in (found.get("data") or {}).items()
            if k in ("host", "port", "uri") or k.startswith(("port-", "uri-"))
        }
        desired["data"] = {**kept, **desired["data"]}
    step_secret = step(Resource.SECRET, desired, found)
    if step_secret is not None:
        actions.append(step_secret)
    return name


def _external_name(service: Body | None) -> str:
    spec = (service or {}).get("spec") or {}
    return str(spec.get("externalName") or "") if spec.get("type") == "ExternalName" else ""


def _port_name_ok(name: str) -> bool:
    return bool(PORT_NAME_RE.match(name)) and "--" not in name and any(c.isalpha() for c in name)


def _before_finalizer(base: Plan, actions: tuple[Action, ...]) -> Plan:
    """`actions` before the finalizer's removal (or at the end, where it is not removed yet)."""
    at = next((i for i, a in enumerate(base.actions) if a.kind is Kind.REMOVE_FINALIZER), len(base.actions))
    return base._replace(actions=base.actions[:at] + actions + base.actions[at:])


def _with_status(
    obj: ObjectState,
    base: Plan,
    actions: tuple[Action, ...],
    cond: st.Cond | None,
    binding: str,
    view_now: float,
) -> Plan:
    """The condition and status.binding folded into the plan's last status write, or a
    status write of their own where they change and the plan has none."""
    fields: dict[str, Any] = {"binding": {"name": binding} if binding else None}
    writes = [i for i, a in enumerate(base.actions) if a.kind is Kind.WRITE_STATUS]
    if writes:
        i = writes[-1]
        status = dict(base.actions[i].status)
        now = status.get("lastSyncTime") or st.iso(view_now)
        conditions = list(status.get("conditions") or obj.status.get("conditions") or [])
        status["conditions"] = _set_published(conditions, cond, obj.generation, now)
        status.update(fields)
        merged = (*base.actions[:i], write_status(status), *base.actions[i + 1 :])
        return base._replace(actions=merged + actions)
    conditions = list(obj.status.get("conditions") or [])
    new = _set_published(conditions, cond, obj.generation, st.iso(view_now))
    mine = {"conditions": new, **fields}
    if not st.changed(obj.status, mine):
        return base._replace(actions=base.actions + actions) if actions else base
    # The status first: a publishing write that fails stops the plan, and what the status says
    # of the job must not wait for it (the next look says how publishing went).
    return base._replace(actions=(*base.actions, write_status(mine), *actions))


def _set_published(
    conditions: list[dict[str, Any]], cond: st.Cond | None, generation: int, now: str
) -> list[dict[str, Any]]:
    if cond is None:
        return [c for c in conditions if c.get("type") != PUBLISHED]
    updated = st.set_condition(conditions, PUBLISHED, cond, generation, now)
    return sorted(updated, key=lambda x: st.ORDER.get(x["type"], 3))


def relevant(obj: ObjectState) -> bool:
    """Whether the object publishes anything, or did (what is there must then be looked at)."""
    if obj.deleting and FINALIZER not in obj.finalizers:
        return False
    return (
        (service_enabled(obj.spec) and bool(ports(obj.spec)))
        or bool(secret_name(obj.spec))
        or bool(obj.status.get("binding"))
        or bool(st.condition(obj.status, PUBLISHED))
    )


def fresh(obj: ObjectState) -> bool:
    """Whether the object never published anything, as far as its status tells: what it
    would publish may be taken to be absent (a create finds out otherwise, and is refused)."""
    return not (obj.deleting or obj.status.get("binding") or st.condition(obj.status, PUBLISHED))
