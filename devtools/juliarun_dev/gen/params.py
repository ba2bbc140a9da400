"""The job-type table's parameters as CRD fields: each one's schema, from its kind, and
its description, from the table (what `kubectl explain` shows)."""

from __future__ import annotations

import re
from typing import Any

from juliarun_operator.juliarun import jobtypes as jt
from juliarun_operator.juliarun.encoding import KEY_RE, MAX_PORT, QUANTITY_RE

from .common import NOT_IN_CRD, SET_LISTS, Schema


def crd_params() -> list[jt.Param]:
    """The parameters that become spec fields, in table order."""
    return [p for p in jt.PARAMETERS.values() if p.name not in NOT_IN_CRD]


def types_taking(param: jt.Param) -> list[str]:
    return [t.name for t in jt.JOB_TYPES.values() if param.name in t.params]


def format_default(param: jt.Param, value: Any) -> str:
    """A default as a user would write it in the spec."""
    if param.kind == jt.PORTS:
        return ", ".join(f"{name} {c}->{s}" for name, (c, s) in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _type_list(names: list[str]) -> str:
    return ", ".join(names)


def types_phrase(names: list[str]) -> str:
    return ("type " if len(names) == 1 else "types ") + _type_list(names)


def param_usage(param: jt.Param) -> str:
    """Which types take the parameter, which require it and each type's default."""
    taking = types_taking(param)
    required = [t for t in taking if jt.JOB_TYPES[t].params[param.name] is jt.REQUIRED]
    by_default: dict[str, list[str]] = {}
    for t in taking:
        value = jt.JOB_TYPES[t].params[param.name]
        if value is not jt.REQUIRED and value is not jt.OPTIONAL:
            by_default.setdefault(format_default(param, value), []).append(t)

    parts = ["All job types." if len(taking) == len(jt.JOB_TYPES) else f"Job {types_phrase(taking)}."]
    if required:
        parts.append("Required." if required == taking else f"Required for {_type_list(required)}.")
    if len(by_default) == 1 and sum(map(len, by_default.values())) == len(taking):
        parts.append(f"Default: {next(iter(by_default))}.")
    elif by_default:
        parts.append("Default: " + "; ".join(f"{v} ({_type_list(ts)})" for v, ts in by_default.items()) + ".")
    return " ".join(parts)


def regex_pattern(regex: re.Pattern[str]) -> str:
    return regex.pattern


def _port_schema() -> Schema:
    port = {"type": "integer", "minimum": 1, "maximum": MAX_PORT}
    return {
        "type": "object",
        "required": ["name", "containerPort", "servicePort"],
        "properties": {
            "name": {
                "type": "string",
                "pattern": regex_pattern(KEY_RE),
                "maxLength": jt.MAX_KEY,
                "description": "Name of the port.",
            },
            "containerPort": {**port, "description": "Port the container listens on."},
            "servicePort": {**port, "description": "Port the job's service exposes."},
        },
    }


def _env_schema() -> Schema:
    return {
        "type": "object",
        "required": ["name", "value"],
        "properties": {
            "name": {
                "type": "string",
                "pattern": regex_pattern(KEY_RE),
                "maxLength": jt.MAX_KEY,
                "description": "Variable name.",
            },
            "value": {"type": "string", "maxLength": jt.MAX_ITEM, "description": "Variable value."},
        },
    }


def _keyed_list(item: Schema) -> Schema:
    # A map list merges by name under server-side apply and refuses duplicate names,
    # as JuliaRun's name -> value dictionaries require.
    return {
        "type": "array",
        "items": item,
        "maxItems": jt.MAX_ITEMS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }


def _secret_ref_schema() -> Schema:
    return {
        "type": "object",
        "required": ["name", "key"],
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": jt.MAX_KEY,
                "description": "Name of the Secret.",
            },
            "key": {
                "type": "string",
                "minLength": 1,
                "maxLength": jt.MAX_KEY,
                "description": "Key of the Secret's data that holds the value.",
            },
        },
    }


# What `kubectl apply` says of a memory that is not one (the client says the same).
QUANTITY_MESSAGE = "must be a quantity such as 512Mi or 4Gi"


def kind_schema(param: jt.Param) -> Schema:
    """The OpenAPI schema of a parameter's value, by its kind."""
    kind = param.kind
    if kind == jt.STRING:
        return {"type": "string", "minLength": 1, "maxLength": jt.MAX_TEXT}
    if kind == jt.NUMBER:
        return {"type": "number", "minimum": 0}
    if kind == jt.INTEGER:
        return {"type": "integer", "minimum": 0}
    if kind == jt.BOOLEAN:
        return {"type": "boolean"}
    if kind == jt.QUANTITY:
        # A rule with a message, not `pattern`: the API server would answer a typo with the regex.
        regex = regex_pattern(QUANTITY_RE).replace("\\", "\\\\")
        return {
            "type": "string",
            "maxLength": jt.MAX_KEY,
            "x-kubernetes-validations": [
                {"rule": f"self.matches('{regex}')", "message": QUANTITY_MESSAGE},
            ],
        }
    if kind == jt.ENUM:
        return {"type": "string", "enum": list(param.choices)}
    if kind == jt.STRING_LIST:
        if param.name in SET_LISTS:
            return {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": jt.MAX_ITEM},
                "maxItems": jt.MAX_ITEMS,
                "x-kubernetes-list-type": "set",
            }
        return {
            "type": "array",
            "items": {"type": "string", "maxLength": jt.MAX_ITEM},
            "maxItems": jt.MAX_ITEMS,
            "x-kubernetes-list-type": "atomic",
        }
    if kind == jt.PORTS:
        return _keyed_list(_port_schema())
    if kind == jt.ENV:
        return _keyed_list(_env_schema())
    if kind == jt.SECRET:
        return _secret_ref_schema()
    raise AssertionError(f"unhandled kind {kind}")


def field_text(param: jt.Param) -> str:
    """What the field means. The table describes values as they travel to JuliaRun; some
    kinds have a different shape in the CRD, so their text says so."""
    if param.kind == jt.PORTS:
        return (
            "Network ports to expose, each with the port the container listens on "
            "and the port its service offers."
        )
    if param.kind == jt.ENV:
        return param.description.replace(": name -> value", "").rstrip(".") + ", as name/value pairs."
    if param.kind == jt.SECRET:
        return (
            param.description + " A key of a Secret in the job's namespace holds it; "
            "the spec never holds the value."
        )
    return param.description


def param_description(param: jt.Param) -> str:
    return f"{field_text(param)} {param_usage(param)} (JuliaRun parameter {param.name}.)"


def param_property(param: jt.Param) -> Schema:
    return {**kind_schema(param), "description": param_description(param)}
