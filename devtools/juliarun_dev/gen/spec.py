"""The JuliaRunJob's spec schema: the fixed fields, the batch fields, one field per
parameter, and the CEL rules that say which fields each job type requires or refuses."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote_plus

from juliarun_operator.api import DEFAULT_MANAGEMENT_POLICY, ManagementPolicy
from juliarun_operator.juliarun import jobtypes as jt
from juliarun_operator.juliarun.encoding import JOB_NAME_RE, encode_value

from .common import BATCH_TYPES, MAX_BACKOFF_LIMIT, MAX_PARALLELISM, SCALABLE_TYPES, SERVICE_TYPES, Schema
from .params import crd_params, param_property, regex_pattern, types_phrase, types_taking


def _secret_ref(pattern: str | None = None) -> Schema:
    """A reference to a Secret in the object's namespace, by name (`pattern`: what the name must match)."""
    name: Schema = {"type": "string", "minLength": 1, "maxLength": jt.MAX_KEY}
    if pattern:
        name["pattern"] = pattern
    name["description"] = "Name of the Secret."
    return {"type": "object", "required": ["name"], "properties": {"name": name}}


def fixed_spec_properties() -> dict[str, Schema]:
    """The spec fields that are about the resource rather than a JuliaRun parameter."""
    return {
        "type": {
            "type": "string",
            "enum": list(jt.JOB_TYPES),
            # Bounds the CEL cost estimate of the `self.type in [...]` rules.
            "maxLength": max(map(len, jt.JOB_TYPES)),
            "description": "JuliaRun job type; immutable. "
            + " ".join(f"{t.name}: {t.description}" for t in jt.JOB_TYPES.values()),
        },
        "jobName": {
            "type": "string",
            "pattern": regex_pattern(JOB_NAME_RE),
            "maxLength": 63,
            "description": "Name of the job in JuliaRun; immutable. When unset the operator "
            "derives one from the namespace and name of this resource.",
        },
        "parallelism": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_PARALLELISM,
            "description": "Desired workers: JuliaParBatch workers, JuliaParBatchWorkers units, "
            "Notebook workers, Webserver and Generic containers. "
            f"Job {types_phrase(SCALABLE_TYPES)}. The scale subresource sets it.",
        },
        "deletionPolicy": {
            "type": "string",
            "enum": ["Delete", "Orphan"],
            "default": "Delete",
            "description": "What deleting this resource does to the JuliaRun job: Delete deletes it, "
            "Orphan leaves it running.",
        },
        "managementPolicy": {
            "type": "string",
            "enum": [p.value for p in ManagementPolicy],
            "default": DEFAULT_MANAGEMENT_POLICY.value,
            "description": "What the operator may do to the JuliaRun job. Full: submit, scale, update "
            "and delete it. Observe: only mirror the existing job named by spec.jobName (its status, "
            "scale and endpoints) and never submit, scale, update or delete it; deleting this resource "
            "leaves the job. The job's parameters are not required in Observe. Observing or taking "
            "over (Observe to Full) a job follows the adoption rules (the operator's --adopt-namespace).",
        },
        **batch_spec_properties(),
        "credentialsRef": {
            **_secret_ref(),
            "description": "A Secret in this namespace with the JuliaRun connection: keys url, token, "
            "namespace (the JuliaRun namespace) and optionally ca.crt. When unset the "
            "operator's default connection is used.",
        },
        **publish_spec_properties(),
    }


def publish_spec_properties() -> dict[str, Schema]:
    """How the job's endpoints are published in Kubernetes: a Service, a connection Secret."""
    return {
        "service": {
            "type": "object",
            "properties": {
                "enabled": {
                    "type": "boolean",
                    "description": "Publish the job's ports as a Service named after this resource "
                    "(no selector; an EndpointSlice with the addresses JuliaRun reports, or an "
                    "ExternalName Service for a host name). Unset: true for the service types "
                    f"({', '.join(SERVICE_TYPES)}), false for the others.",
                }
            },
            "description": "The Service of the job's ports.",
        },
        "writeConnectionSecretToRef": {
            **_secret_ref(pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
            "description": "A Secret in this namespace the operator writes with how to reach the "
            "job, in the Service Binding spec's keys: host, port, uri (and port-<name>, "
            "uri-<name> per port where there are several), type, provider, and a notebook's "
            "password. status.binding.name names it. A Secret of that name the operator did "
            "not create is never overwritten.",
        },
    }


def batch_spec_properties() -> dict[str, Schema]:
    """What batch/v1 Job users expect: the same names, meanings and (where set) defaults."""
    only = f"Only for {types_phrase(BATCH_TYPES)}."
    return {
        "ttlSecondsAfterFinished": {
            "type": "integer",
            "minimum": 0,
            "description": "Seconds after the job ends (condition Complete or Failed) at which this "
            "resource is deleted, and with it the JuliaRun job under deletionPolicy "
            "Delete. Unset: kept until deleted. " + only,
        },
        "activeDeadlineSeconds": {
            "type": "integer",
            "minimum": 1,
            "description": "Seconds the job may be active, counted from status.startTime across "
            "attempts; a job still running then is deleted in JuliaRun and this "
            "resource ends Failed with reason DeadlineExceeded. The clock is reset "
            "on resume after suspend. " + only,
        },
        "backoffLimit": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_BACKOFF_LIMIT,
            "description": "Failed attempts to retry: a job that fails is submitted again as a new "
            "attempt (its own JuliaRun job, named <jobName>-<attempt>) until this many "
            "have failed after the first. Default 0 (no retry, as KubeRay's RayJob). "
            "Failures to reach JuliaRun are not attempts. " + only,
        },
        "suspend": {
            "type": "boolean",
            "description": "true holds the job back: not yet submitted, it is not submitted; running, "
            "its JuliaRun job is deleted (phase Suspended). false again submits it as a "
            "new attempt. Default false. " + only,
        },
    }


def _rule(rule: str, message: str, field: str, reason: str | None = None) -> Schema:
    # fieldPath makes the API server report the error against the field itself.
    out = {"rule": rule, "message": message, "fieldPath": f".{field}"}
    if reason:
        out["reason"] = reason
    return out


class Check(NamedTuple):
    """One thing a rule checks: a CEL expression that holds, and what to say when it does not."""

    holds: str
    message: str


# Defaulting runs before validation, so the field is there; has() keeps a rule safe anyway.
OBSERVING = f"(has(self.managementPolicy) && self.managementPolicy == '{ManagementPolicy.OBSERVE.value}')"
# Batch fields that make the operator submit or delete the job: nothing Observe may do.
# (suspend: false asks for nothing.)
OBSERVE_FORBIDS = {
    "suspend": "!has(self.suspend) || !self.suspend",
    "activeDeadlineSeconds": "!has(self.activeDeadlineSeconds)",
    "backoffLimit": "!has(self.backoffLimit)",
}


def observe_checks() -> list[Check]:
    """Observe names a job that exists (spec.jobName) and asks for nothing that writes to it."""
    checks = [
        Check(
            "has(self.jobName)",
            "spec.managementPolicy Observe requires spec.jobName: the JuliaRun job to observe",
        )
    ]
    checks += [
        Check(
            unasked,
            f"spec.{field} needs spec.managementPolicy Full: in Observe the operator never "
            "submits or deletes the job",
        )
        for field, unasked in OBSERVE_FORBIDS.items()
    ]
    return checks


def size_rule() -> Schema:
    """The text parameters, strings and lists of strings, together within what one request line
    carries (every parameter travels in the query string of one GET, at most 8 KiB with the
    token): a spec the API server admits is one the operator can send. Characters that
    URL-encoding widens (non-ASCII, some symbols) can still make a request too long: the
    operator refuses that one before sending, and the object says so (InvalidSpec)."""
    # size() of a bounded string costs the estimator a constant; a list's items are summed
    # (bounded by maxItems), each with what it adds on the wire beyond its text (quotes,
    # separators, port numbers, URL-encoded), so that no admitted spec is one that can never be
    # sent (and that the operator keeps: issue 21 measured 326 MiB for 1,000 of 275 KiB).
    item_size = {
        jt.STRING_LIST: f"x.size() + {item_overhead(jt.STRING_LIST)}",
        jt.PORTS: f"x.name.size() + {item_overhead(jt.PORTS)}",
        jt.ENV: f"x.name.size() + x.value.size() + {item_overhead(jt.ENV)}",
    }
    terms = [
        f"(has(self.{p.field}) ? self.{p.field}.size() : 0)"
        if p.kind == jt.STRING
        else f"(has(self.{p.field}) ? self.{p.field}.map(x, {item_size[p.kind]}).sum() : 0)"
        for p in crd_params()
        if p.kind == jt.STRING or p.kind in item_size
    ]
    return _rule(
        " + ".join(terms) + f" <= {jt.MAX_PARAMS_TEXT}",
        f"the job's parameters together may hold at most {jt.MAX_PARAMS_TEXT} characters (a list's "
        "items each count their quotes and separators as sent): they travel to JuliaRun in one "
        "request line",
        "type",
        "FieldValueInvalid",
    )


def item_overhead(kind: str) -> int:
    """Characters one more item of a list of `kind` adds to the request beyond its own text:
    the encoding's quotes and separators (and a port's numbers, at their longest), URL-encoded."""
    samples = {
        jt.STRING_LIST: (["a"], ["a", "b"]),
        jt.PORTS: ({"a": (65535, 65535)}, {"a": (65535, 65535), "b": (65535, 65535)}),
        jt.ENV: ({"a": ""}, {"a": "", "b": ""}),
    }
    one, two = (len(quote_plus(encode_value(kind, v))) for v in samples[kind])
    return two - one - 1  # less the second item's own text, "b"


def _checked(guard: str, checks: list[Check], summary: str) -> Schema:
    """One rule for several checks that apply under `guard`: every rule costs the API server
    on every write (measured: bench/write_cost.py), and a rule whose guard is false stops at
    it. Its message names each check that failed, worded as a rule of its own would."""
    rule = f"!({guard}) || ({' && '.join(f'({c.holds})' for c in checks)})"
    # One sentence per failed check, literals concatenated: bounded, so the cost estimate
    # stays low (a list joined is estimated far over the budget; cel.bind is not offered).
    failed = " + ".join(f"(({c.holds}) ? '' : {_cel_str(c.message + '. ')})" for c in checks)
    return {
        "rule": rule,
        "messageExpression": failed,
        "message": summary,  # should the expression fail to evaluate
        "reason": "FieldValueInvalid",
    }


def _cel_str(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ValueError(f"no quote or backslash in a rule's message: {text}")
    return f"'{text}'"


def restricted_fields() -> list[tuple[str, list[str]]]:
    """The fields some job types do not take, with the types that take them."""
    restricted = [(p.field, types_taking(p)) for p in crd_params()]
    restricted.append(("parallelism", SCALABLE_TYPES))
    restricted += [(field, BATCH_TYPES) for field in batch_spec_properties()]
    return [(field, taking) for field, taking in restricted if len(taking) < len(jt.JOB_TYPES)]


def type_checks(t: jt.JobType) -> list[Check]:
    """What type `t` requires (unless observed: Observe sends no parameters, and JuliaRun does
    not say a job's) and the fields it does not take."""
    checks = [
        Check(
            f"{OBSERVING} || has(self.{jt.PARAMETERS[name].field})",
            f"spec.{jt.PARAMETERS[name].field} is required for type {t.name} "
            "(with spec.managementPolicy Full)",
        )
        for name in t.required()
    ]
    checks += [
        Check(f"!has(self.{field})", f"spec.{field} applies only to {types_phrase(taking)}")
        for field, taking in restricted_fields()
        if t.name not in taking
    ]
    return checks


class Checked(NamedTuple):
    """Checks that apply under one guard, and the message should their own not be evaluated."""

    guard: str
    checks: list[Check]
    summary: str


def checked_rules() -> list[Checked]:
    """The rules made of several checks: Observe's, and one per job type."""
    return [
        Checked(
            OBSERVING,
            observe_checks(),
            "spec.managementPolicy Observe requires spec.jobName and asks for nothing that writes",
        ),
        *(
            Checked(
                f"self.type == '{t.name}'",
                type_checks(t),
                f"a field type {t.name} requires is missing, or one it does not take is set",
            )
            for t in jt.JOB_TYPES.values()
        ),
    ]


def spec_rules() -> list[Schema]:
    """CEL rules on spec. Only has(), equality and the size of bounded strings, to keep their
    cost low; one rule per job type rather than per field (fewer rules, less per write)."""
    return [
        size_rule(),
        _rule("self.type == oldSelf.type", "spec.type is immutable", "type"),
        _rule(
            "has(self.jobName) == has(oldSelf.jobName)"
            " && (!has(self.jobName) || self.jobName == oldSelf.jobName)",
            "spec.jobName is immutable",
            "jobName",
        ),
        *(_checked(*c) for c in checked_rules()),
    ]


def spec_schema() -> Schema:
    properties = fixed_spec_properties()
    properties.update({p.field: param_property(p) for p in crd_params()})
    return {
        "type": "object",
        "description": "The JuliaRun job: its type and parameters. Parameters a type does not take "
        "are refused; unset optional parameters get JuliaRun's default for the type.",
        "required": ["type"],
        "properties": properties,
        "x-kubernetes-validations": spec_rules(),
    }
