"""docs/job-types.md: one section per job type and the spec field reference, from the
same schema as the CRD."""

from __future__ import annotations

from juliarun_operator.juliarun import jobtypes as jt

from .common import GROUP, KIND, NOT_IN_CRD, VERSION, Schema, header
from .params import field_text, format_default
from .spec import checked_rules, spec_schema


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
        header("<!--").rstrip("\n") + " -->",
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
    plain = [r for r in spec["x-kubernetes-validations"] if "messageExpression" not in r]
    lines += [f"- `{_md(r['rule'])}`: {r['message']}" for r in plain]
    # The others check several things each (fewer rules cost less per write): each is listed.
    for c in checked_rules():
        lines.append(f"- when `{_md(c.guard)}`:")
        lines += [f"  - `{_md(check.holds)}`: {check.message}" for check in c.checks]
    return "\n".join(lines) + "\n"
