"""Rendering command results for people (aligned columns) and for programs (JSON, YAML).

A command hands over both forms of its result: `data` (plain lists, dicts and scalars)
for json/yaml, and `headers` + `rows` (strings) for the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

FORMATS = ("table", "json", "yaml")
COLUMN_GAP = "   "
EMPTY_CELL = "-"


def plain(value: Any) -> Any:
    """`value` with tuples turned into lists, so that yaml.safe_dump can write it."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def cell(value: Any) -> str:
    """One table cell: lists joined by commas, flow YAML for maps, '-' for nothing."""
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY_CELL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return flow_yaml(value)
    return str(value)


def flow_yaml(value: Any) -> str:
    """`value` on one line, in the same YAML flow syntax PARAM=VALUE arguments take."""
    text = yaml.safe_dump(plain(value), default_flow_style=True, width=10_000)
    return text.removesuffix("...\n").strip()  # a lone scalar ends with YAML's end marker


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns; the last one is not padded so lines carry no trailing blanks."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        padded = [str(c).ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [str(row[-1])]
        lines.append(COLUMN_GAP.join(padded))
    return "\n".join(lines)


def format_data(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(plain(data), indent=2)
    if fmt == "yaml":
        return yaml.safe_dump(plain(data), sort_keys=False, default_flow_style=False).rstrip("\n")
    raise ValueError(f"unknown output format {fmt!r}")


def render(fmt: str, data: Any, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The text to print for a result in format `fmt` (one of FORMATS)."""
    if fmt == "table":
        return format_table(headers, rows)
    return format_data(data, fmt)
