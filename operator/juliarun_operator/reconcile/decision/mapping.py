"""From a JuliaRunJob's spec to JuliaRun's job parameters.

The CRD's fields are the table's parameters in camelCase (`Param.field`); lists of named
objects (ports, env) become the maps JuliaRun takes, and the notebook password is read
from the Secret the spec points at, never from the spec itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from ...juliarun import jobtypes as jt
from ...juliarun.encoding import check_params
from ...juliarun.errors import ParameterError

# (namespace, secret name, key) -> value; raises LookupError when missing.
SecretReader = Callable[[str, str, str], str]

FIELD_TO_PARAM = {p.field: p for p in jt.PARAMETERS.values()}
SECRET_FIELDS = frozenset(p.field for p in jt.PARAMETERS.values() if p.kind == jt.SECRET)  # passwordSecretRef
CONTROL_FIELDS = (
    "type",
    "jobName",
    "parallelism",
    "deletionPolicy",
    "managementPolicy",
    "credentialsRef",
    "service",  # publishing in Kubernetes (reconcile/decision/publish.py)
    "writeConnectionSecretToRef",
    # batch: what the operator does with the job, not what JuliaRun is told
    "ttlSecondsAfterFinished",
    "activeDeadlineSeconds",
    "backoffLimit",
    "suspend",
)


def job_params(
    spec: Mapping[str, Any], namespace: str, read_secret: SecretReader | None = None
) -> dict[str, Any]:
    """The checked JuliaRun parameters for `spec` (ParameterError names the spec field)."""
    job_type = jt.job_type(spec.get("type", ""))
    params: dict[str, Any] = {}
    for field, value in spec.items():
        if field in CONTROL_FIELDS or value is None:
            continue
        param = FIELD_TO_PARAM.get(field)
        if param is None or param.name == "nworkers":
            raise ParameterError(f"spec.{field} is not a JuliaRunJob field", field)
        params[param.name] = _from_spec(param, value, namespace, read_secret)
    if "nworkers" in job_type.params and spec.get("parallelism") is not None:
        params["nworkers"] = spec["parallelism"]
    try:
        return check_params(job_type.name, params)
    except ParameterError as exc:
        known = exc.param in jt.PARAMETERS
        field = jt.PARAMETERS[exc.param].field if known and exc.param else (exc.param or "")
        field = "parallelism" if exc.param == "nworkers" else field  # nworkers comes from it
        raise ParameterError(f"spec.{field}: {exc}", field) from None


def _from_spec(param: jt.Param, value: Any, namespace: str, read_secret: SecretReader | None) -> Any:
    # The CRD schema already shapes these; a cluster without it (or an old object) may not.
    try:
        if param.kind == jt.PORTS:
            return {p["name"]: (p["containerPort"], p["servicePort"]) for p in _items(value)}
        if param.kind == jt.ENV:
            return {e["name"]: e.get("value", "") for e in _items(value)}
    except (KeyError, TypeError, AttributeError):
        raise ParameterError(
            f"spec.{param.field}: expected a list of objects with "
            + ("name, containerPort, servicePort" if param.kind == jt.PORTS else "name and value"),
            param.field,
        ) from None
    if param.kind == jt.SECRET:
        if read_secret is None:
            raise ParameterError(f"spec.{param.field}: no way to read Secrets", param.field)
        try:
            secret, key = value["name"], value["key"]
        except (KeyError, TypeError):
            raise ParameterError(
                f"spec.{param.field}: expected an object with name and key", param.field
            ) from None
        try:
            return read_secret(namespace, secret, key)
        except LookupError as exc:
            raise ParameterError(f"spec.{param.field}: {exc}", param.field) from None
    return value


def _items(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise TypeError("not a list of objects")
    return value


def params_digest(params: Mapping[str, Any]) -> str:
    """A short digest of checked parameters, to notice a spec change that no event reported.

    Secrets (the notebook password) stay out: a status field must not carry even a hash of one.
    """
    kept = {k: v for k, v in params.items() if k != "nworkers" and jt.PARAMETERS[k].kind != jt.SECRET}
    text = json.dumps(kept, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changed_params(old: Mapping[str, Any], new: Mapping[str, Any], job_type: str) -> dict[str, Any]:
    """What updateJob must send to turn `old` into `new`.

    A parameter removed from the spec goes back to its default where the table has one;
    one without a default cannot be unset through updateJob and is left as it is.
    nworkers is never sent: scale changes go through setJobScale.
    """
    defaults = jt.job_type(job_type).defaults()
    changes = {k: v for k, v in new.items() if old.get(k) != v}
    changes.update({k: defaults[k] for k in old if k not in new and k in defaults})
    changes.pop("nworkers", None)
    return changes
