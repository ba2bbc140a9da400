"""Generate the JuliaRunJob CRD and the job-type docs from the job-type table.

    python -m juliarun_operator.gen           # (re)write every generated file
    python -m juliarun_operator.gen --check   # exit 1, listing files that differ

`juliarun.jobtypes` is the single source of truth: the CRD's per-parameter fields, their
descriptions (what `kubectl explain` shows) and the CEL rules that say which fields each
job type requires or refuses all come from it, so the API server refuses what the
JuliaRun server would, before the operator sees it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from .juliarun import jobtypes as jt
from .juliarun.encoding import JOB_NAME_RE, KEY_RE, MAX_PORT, QUANTITY_RE

# A piece of OpenAPI schema or Kubernetes object, as it will be written out as YAML.
Schema = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = "crds/juliarun.dev_juliarunjobs.yaml"
DOCS_PATH = "docs/job-types.md"

GROUP = "juliarun.dev"
VERSION = "v1alpha1"
KIND = "JuliaRunJob"
PLURAL = "juliarunjobs"
SINGULAR = "juliarunjob"

# The operator sets nworkers from spec.parallelism, so it has no field of its own.
NOT_IN_CRD = {"nworkers"}
# Extra volumes are a set of names (order and repeats mean nothing); a command and its
# arguments are ordered and may repeat, so they stay atomic lists.
SET_LISTS = {"additional_volumes"}
MAX_PARALLELISM = 10000

SCALABLE_TYPES = [t.name for t in jt.JOB_TYPES.values() if t.scalable]
PHASES = ["Pending", "Running", "Completed", "Failed", "Deleting", "Paused", "Suspended"]
BATCH_TYPES = [t.name for t in jt.JOB_TYPES.values() if t.completes]
MAX_BACKOFF_LIMIT = 100  # each attempt is a JuliaRun job that deletion must find and delete


# --- parameters as CRD fields ----------------------------------------------------------


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


def _types_phrase(names: list[str]) -> str:
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

    parts = ["All job types." if len(taking) == len(jt.JOB_TYPES) else f"Job {_types_phrase(taking)}."]
    if required:
        parts.append("Required." if required == taking else f"Required for {_type_list(required)}.")
    if len(by_default) == 1 and sum(map(len, by_default.values())) == len(taking):
        parts.append(f"Default: {next(iter(by_default))}.")
    elif by_default:
        parts.append("Default: " + "; ".join(f"{v} ({_type_list(ts)})" for v, ts in by_default.items()) + ".")
    return " ".join(parts)


def _pattern(regex: re.Pattern[str]) -> str:
    return regex.pattern


def _port_schema() -> Schema:
    port = {"type": "integer", "minimum": 1, "maximum": MAX_PORT}
    return {
        "type": "object",
        "required": ["name", "containerPort", "servicePort"],
        "properties": {
            "name": {
                "type": "string",
                "pattern": _pattern(KEY_RE),
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
                "pattern": _pattern(KEY_RE),
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
        return {"type": "string", "pattern": _pattern(QUANTITY_RE), "maxLength": jt.MAX_KEY}
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


# --- spec --------------------------------------------------------------------------------


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
            "pattern": _pattern(JOB_NAME_RE),
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
            f"Job {_types_phrase(SCALABLE_TYPES)}. The scale subresource sets it.",
        },
        "deletionPolicy": {
            "type": "string",
            "enum": ["Delete", "Orphan"],
            "default": "Delete",
            "description": "What deleting this resource does to the JuliaRun job: Delete deletes it, "
            "Orphan leaves it running.",
        },
        **batch_spec_properties(),
        "credentialsRef": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": jt.MAX_KEY,
                    "description": "Name of the Secret.",
                }
            },
            "description": "A Secret in this namespace with the JuliaRun connection: keys url, token, "
            "namespace (the JuliaRun namespace) and optionally ca.crt. When unset the "
            "operator's default connection is used.",
        },
    }


def batch_spec_properties() -> dict[str, Schema]:
    """What batch/v1 Job users expect: the same names, meanings and (where set) defaults."""
    only = f"Only for {_types_phrase(BATCH_TYPES)}."
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


def _cel_list(names: list[str]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


def spec_rules() -> list[Schema]:
    """CEL rules on spec. Only has() and `in` on literal lists, to keep their cost low."""
    rules = [
        _rule("self.type == oldSelf.type", "spec.type is immutable", "type"),
        _rule(
            "has(self.jobName) == has(oldSelf.jobName)"
            " && (!has(self.jobName) || self.jobName == oldSelf.jobName)",
            "spec.jobName is immutable",
            "jobName",
        ),
    ]
    for t in jt.JOB_TYPES.values():
        for name in t.required():
            field = jt.PARAMETERS[name].field
            rules.append(
                _rule(
                    f"self.type != '{t.name}' || has(self.{field})",
                    f"spec.{field} is required for type {t.name}",
                    field,
                    "FieldValueRequired",
                )
            )
    restricted = [(p.field, types_taking(p)) for p in crd_params()]
    restricted.append(("parallelism", SCALABLE_TYPES))
    restricted += [(field, BATCH_TYPES) for field in batch_spec_properties()]
    for field, taking in restricted:
        if len(taking) < len(jt.JOB_TYPES):  # a field every type takes needs no rule
            rules.append(
                _rule(
                    f"!has(self.{field}) || self.type in {_cel_list(taking)}",
                    f"spec.{field} applies only to {_types_phrase(taking)}",
                    field,
                    "FieldValueForbidden",
                )
            )
    return rules


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


# --- status ------------------------------------------------------------------------------


def _condition_schema() -> Schema:
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "description": "Type of the condition."},
            "status": {
                "type": "string",
                "enum": ["True", "False", "Unknown"],
                "description": "Status of the condition.",
            },
            "reason": {"type": "string", "description": "Machine-readable reason for the last transition."},
            "message": {"type": "string", "description": "Human-readable detail of the last transition."},
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the status last changed.",
            },
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The spec generation the condition was set for.",
            },
        },
    }


def status_schema() -> Schema:
    # Every field the operator writes is declared, so the API server prunes none of them.
    return {
        "type": "object",
        "description": "What the operator last observed of the JuliaRun job.",
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The spec generation last acted on.",
            },
            "jobName": {"type": "string", "description": "Name of the job in JuliaRun."},
            "phase": {"type": "string", "enum": PHASES, "description": "Summary of the job's state."},
            "submitted": {"type": "boolean", "description": "The job was submitted to JuliaRun."},
            "parametersHash": {
                "type": "string",
                "description": "Digest of the parameters last sent to JuliaRun; "
                "a spec whose digest differs is sent again with updateJob.",
            },
            "connection": {
                "type": "string",
                "description": "The JuliaRun connection the job was submitted through: "
                "default, or Secret/<name> (spec.credentialsRef); it cannot "
                "change once the job exists.",
            },
            "startTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the job began to run (reset on resume after suspend); "
                "activeDeadlineSeconds counts from here.",
            },
            "completionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the job completed successfully.",
            },
            "attempts": {
                "type": "integer",
                "description": "Attempts begun: the current one's number. Attempt n > 1 runs "
                "as JuliaRun job <name>-n.",
            },
            "failed": {"type": "integer", "description": "Attempts that failed."},
            "pastAttempts": {
                "type": "array",
                "maxItems": 20,
                "description": "The attempts before the current one (the last 20): how each ended.",
                "items": {
                    "type": "object",
                    "properties": {
                        "attempt": {"type": "integer", "description": "Its number."},
                        "jobName": {"type": "string", "description": "Its JuliaRun job."},
                        "result": {
                            "type": "string",
                            "enum": ["Failed", "Suspended"],
                            "description": "How it ended.",
                        },
                        "message": {"type": "string", "description": "Why."},
                        "endTime": {"type": "string", "format": "date-time", "description": "When."},
                    },
                },
            },
            "succeeded": {"type": "integer", "description": "1 once an attempt has succeeded."},
            "lastLogs": {
                "type": "string",
                "maxLength": 4096,
                "description": "The last log lines of the latest attempt that ended.",
            },
            "submitTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the operator last sent submitJob; a retry waits "
                "for that request to land or time out before deciding again.",
            },
            "created": {"type": "boolean", "description": "JuliaRun has created the job."},
            "completed": {"type": "boolean", "description": "The job has finished."},
            "workersStarted": {"type": "integer", "description": "Workers (or units) started."},
            "workersSucceeded": {"type": "integer", "description": "Workers (or units) that succeeded."},
            "scale": {
                "type": "object",
                "description": "Workers running and requested, as JuliaRun reports them.",
                "properties": {
                    "running": {"type": "integer", "description": "Workers running."},
                    "requested": {"type": "integer", "description": "Workers requested."},
                },
            },
            "workers": {"type": "string", "description": "Workers as running/requested."},
            "endpoints": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Addresses at which the job's ports are reachable.",
            },
            "message": {"type": "string", "description": "Detail of the phase, e.g. the last error."},
            "lastSyncTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the operator last read the job from JuliaRun.",
            },
            "conditions": {
                "type": "array",
                "description": "Conditions of the job.",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


# --- the CRD -----------------------------------------------------------------------------


def printer_columns() -> list[Schema]:
    return [
        {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Workers", "type": "string", "jsonPath": ".status.workers"},
        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoints[0]"},
        {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempts", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


# Deleting the CRD deletes every JuliaRunJob (and so, through the finalizer, every JuliaRun
# job): no uninstall or prune may do it. Helm never deletes crds/ but a chart that templates
# them would; Argo CD neither prunes nor deletes it with the Application; Flux does not prune it.
CRD_KEEP_ANNOTATIONS = {
    "helm.sh/resource-policy": "keep",
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false,ServerSideApply=true",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def crd() -> Schema:
    schema = {
        "type": "object",
        "description": "A JuliaRun job run through the Kubernetes API.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}", "annotations": CRD_KEEP_ANNOTATIONS},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": ["jrj"],
                "categories": ["juliarun"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.parallelism",
                            "statusReplicasPath": ".status.scale.running",
                        },
                    },
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _header(comment: str) -> str:
    return (
        f"{comment} Generated by `make generate` (python -m juliarun_operator.gen) from "
        f"operator/juliarun_operator/juliarun/jobtypes.py. Do not edit.\n"
    )


def render_crd() -> str:
    return _header("#") + yaml.safe_dump(crd(), sort_keys=False, width=100)


# --- docs --------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Text safe in a Markdown table cell: no column breaks, no HTML tags (/mnt/<name>)."""
    return text.replace("|", "\\|").replace("<", "\\<")


def schema_type(schema: Schema) -> str:
    """A short human rendering of a property's schema for the reference table."""
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if schema["type"] == "array":
        most = f" (at most {schema['maxItems']})" if "maxItems" in schema else ""
        return "list of " + schema_type(schema["items"]) + most
    if schema["type"] == "object":
        fields = ", ".join(schema.get("properties", {}))
        return f"object {{{fields}}}"
    if "pattern" in schema:
        return f"{schema['type']} matching `{_md(schema['pattern'])}`"
    bounds = [f"{k[:3]} {schema[k]}" for k in ("minimum", "maximum") if k in schema]
    if "maxLength" in schema:
        bounds.append(f"at most {schema['maxLength']} characters")
    kind: str = schema["type"]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _param_row(t: jt.JobType, name: str) -> str:
    param = jt.PARAMETERS[name]
    value = t.params[name]
    if value is jt.REQUIRED:
        need = "required"
    elif value is jt.OPTIONAL:
        need = "optional"
    else:
        need = f"default `{format_default(param, value)}`"
    field = "`spec.parallelism`" if name in NOT_IN_CRD else f"`spec.{param.field}`"
    return f"| {field} | `{name}` | {need} | {_md(field_text(param))} |"


def _job_type_section(t: jt.JobType) -> list[str]:
    traits = [
        "scalable (spec.parallelism)" if t.scalable else "not scalable",
        "runs to completion" if t.completes else "runs until deleted",
    ]
    lines = [
        f"## {t.name}",
        "",
        t.description,
        "",
        f"{traits[0].capitalize()}; {traits[1]}.",
        "",
        "| CRD field | JuliaRun parameter | Required / default | Description |",
        "|---|---|---|---|",
    ]
    lines += [_param_row(t, name) for name in t.params]
    return [*lines, ""]


def render_docs() -> str:
    spec = spec_schema()
    lines = [
        _header("<!--").rstrip("\n") + " -->",
        "",
        "# JuliaRun job types",
        "",
        f"A `{KIND}` (`{GROUP}/{VERSION}`, short name `jrj`) runs one JuliaRun job. `spec.type` picks "
        "the job type; the other spec fields are its parameters. The API server refuses a "
        "parameter the type does not take and a missing required one. Unset optional "
        "parameters get the default shown (JuliaRun's own where none is shown). "
        "Examples: `examples/`.",
        "",
    ]
    for t in jt.JOB_TYPES.values():
        lines += _job_type_section(t)
    lines += ["## Spec field reference", "", "| Field | Type | Description |", "|---|---|---|"]
    for field, schema in spec["properties"].items():
        lines.append(f"| `spec.{field}` | {schema_type(schema)} | {_md(schema['description'])} |")
    lines += ["", "Validation rules (CEL) on `spec`:", ""]
    lines += [f"- `{_md(r['rule'])}`: {r['message']}" for r in spec["x-kubernetes-validations"]]
    return "\n".join(lines) + "\n"


# --- writing -----------------------------------------------------------------------------

# Files shipped in more than one place (the chart and kustomize cannot reach crds/):
# source -> copies, kept identical by `make generate` and checked like generated files.
COPIES = {
    CRD_PATH: [
        "charts/juliarun-operator/crds/juliarun.dev_juliarunjobs.yaml",
        "deploy/crds/juliarun.dev_juliarunjobs.yaml",
    ],
    "gitops/argocd/health.lua": ["charts/juliarun-operator/files/argocd-health.lua"],
}


def generated() -> dict[str, str]:
    """Every generated file: path relative to the repository root -> content."""
    files = {CRD_PATH: render_crd(), DOCS_PATH: render_docs()}
    for source, copies in COPIES.items():
        content = files.get(source) or (REPO_ROOT / source).read_text()
        files.update(dict.fromkeys(copies, content))
    return files


def stale(root: Path = REPO_ROOT) -> list[str]:
    """Generated files whose committed content differs from what would be generated."""
    out = []
    for path, content in generated().items():
        target = root / path
        if not target.is_file() or target.read_text() != content:
            out.append(path)
    return out


def write(root: Path = REPO_ROOT) -> list[str]:
    written = []
    for path, content in generated().items():
        target = root / path
        if not target.is_file() or target.read_text() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m juliarun_operator.gen", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a generated file is stale"
    )
    args = parser.parse_args(argv)
    if not (REPO_ROOT / "pyproject.toml").is_file():  # an installed package: no files to generate
        print(
            "error: the generator writes into a source checkout of juliarun-operator: "
            "run `make generate` in a clone",
            file=sys.stderr,
        )
        return 1
    if args.check:
        paths = stale()
        for path in paths:
            print(f"{path} differs from its generator: run `make generate`", file=sys.stderr)
        return 1 if paths else 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
