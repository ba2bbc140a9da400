"""Job parameters: checking them against the job-type table, and their wire text.

The Julia client sends each parameter as Julia's `string(value)`: a string as itself,
`true`, `0.5`, `4`, `["a", "b"]`, `Dict("nb" => (8888, 8888))`. We produce the same text
so a server that accepted the Julia client accepts us; decoding.py reads it back (the
emulator uses it). Query-string escaping is left to the HTTP layer, which URL-encodes every
value, so no text here can add or change another parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from . import jobtypes as jt
from .errors import ParameterError

MAX_PORT = 65535
# Checked with fullmatch: `$` alone would let a trailing newline through.
# Kubernetes' quantity grammar, restricted to what memory sizes use.
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
# Job names become Kubernetes object names inside JuliaRun: a DNS-1123 label.
JOB_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

# Characters julia_string_literal escapes, as Julia writes them (decoding.py reads them back).
ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "$": "\\$",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
    "\x1b": "\\e",
}


def check_job_name(name: object) -> str:
    if not isinstance(name, str) or not JOB_NAME_RE.fullmatch(name):
        raise ParameterError(
            f"invalid job name {name!r}: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters",
            "name",
        )
    return name


# --- checking -------------------------------------------------------------------------


def _fail(param: jt.Param, expected: str, value: object) -> ParameterError:
    if param.kind == jt.SECRET:  # a refused password is still a password: never shown
        return ParameterError(
            f"parameter {param.name}: expected {expected} "
            f"(got a {type(value).__name__}; the value is secret)",
            param.name,
        )
    return ParameterError(f"parameter {param.name}: expected {expected}, got {value!r:.200}", param.name)


def check_value(param: jt.Param, value: Any) -> Any:
    """`value` normalised for `param`'s kind, or a ParameterError naming the parameter."""
    kind = param.kind
    if kind in (jt.STRING, jt.SECRET):
        if not isinstance(value, str):
            raise _fail(param, "a string", value)
        if "\x00" in value:
            raise _fail(param, "a string without NUL characters", value)
        return value
    if kind == jt.BOOLEAN:
        if not isinstance(value, bool):
            raise _fail(param, "true or false", value)
        return value
    if kind == jt.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(param, "a non-negative integer", value)
        return value
    if kind == jt.NUMBER:
        try:
            number = float(value) if not isinstance(value, bool) and isinstance(value, (int, float)) else None
        except OverflowError:  # an int too large for a float
            number = None
        if number is None or not math.isfinite(number) or number < 0:
            raise _fail(param, "a non-negative number", value)
        return number
    if kind == jt.QUANTITY:
        if not isinstance(value, str) or not QUANTITY_RE.fullmatch(value):
            raise _fail(param, "a quantity such as 512Mi or 4Gi", value)
        return value
    if kind == jt.ENUM:
        if value not in param.choices:
            raise _fail(param, "one of " + ", ".join(param.choices), value)
        return value
    if kind == jt.STRING_LIST:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _fail(param, "a list of strings", value)
        return list(value)
    if kind == jt.PORTS:
        return _check_ports(param, value)
    if kind == jt.ENV:
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and KEY_RE.fullmatch(k) and isinstance(v, str) for k, v in value.items()
        ):
            raise _fail(param, "a map of variable names to string values", value)
        return dict(value)
    raise AssertionError(f"unhandled kind {kind}")


def _check_ports(param: jt.Param, value: Any) -> dict[str, tuple[int, int]]:
    expected = "a map of port names to [container port, service port]"
    if not isinstance(value, Mapping):
        raise _fail(param, expected, value)
    ports = {}
    for name, pair in value.items():
        if not isinstance(name, str) or not KEY_RE.fullmatch(name):
            raise _fail(param, expected + " (port names: letters, digits, '_', '-', '.')", name)
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= MAX_PORT for p in pair)
        ):
            raise _fail(param, f"{expected} (ports 1-{MAX_PORT})", {name: pair})
        ports[name] = (pair[0], pair[1])
    return ports


def check_params(job_type: str, params: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Check `params` for `job_type` before anything is sent.

    Unknown and mistyped parameters are refused; so are missing required ones unless
    `partial` (updateJob sends only what changes).
    """
    spec = jt.job_type(job_type)
    unknown = [n for n in params if n not in spec.params]
    if unknown:
        raise ParameterError(
            f"{job_type} does not take parameter {unknown[0]!r}; it takes: " + ", ".join(spec.params),
            unknown[0],
        )
    if not partial:
        missing = [n for n in spec.required() if params.get(n) is None]
        if missing:
            raise ParameterError(f"{job_type} needs parameter {missing[0]!r}", missing[0])
    return {n: check_value(jt.PARAMETERS[n], v) for n, v in params.items() if v is not None}


# --- wire text ------------------------------------------------------------------------


def julia_string_literal(text: str) -> str:
    """`text` as Julia prints a String inside a collection: quoted, escaped."""
    out = []
    for ch in text:
        if ch in ESCAPES:
            out.append(ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def julia_float(value: float) -> str:
    """A Float64 as Julia's `string` prints it: shortest digits, `1.0e6` past 10^6."""
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    if not isinstance(exponent, int):  # "n", "N", "F": NaN and infinity have no Julia literal here
        raise TypeError(f"not a finite number: {value!r}")
    text = "".join(map(str, digits))
    e10 = len(text) - 1 + exponent  # exponent of the leading digit
    prefix = "-" if sign else ""
    if -5 < e10 < 6:
        if e10 < 0:
            return f"{prefix}0.{'0' * (-e10 - 1)}{text}"
        whole, frac = text[: e10 + 1].ljust(e10 + 1, "0"), text[e10 + 1 :]
        return f"{prefix}{whole}.{frac or '0'}"
    return f"{prefix}{text[0]}.{text[1:] or '0'}e{e10}"


def encode_value(kind: str, value: Any) -> str:
    """The wire text of a checked value of `kind`."""
    if kind == jt.BOOLEAN:
        return "true" if value else "false"
    if kind == jt.NUMBER:
        return julia_float(value)
    if kind == jt.INTEGER:
        return str(value)
    if kind == jt.STRING_LIST:
        return "[" + ", ".join(julia_string_literal(v) for v in value) + "]"
    if kind == jt.PORTS:
        return (
            "Dict("
            + ", ".join(f"{julia_string_literal(n)} => ({c}, {s})" for n, (c, s) in value.items())
            + ")"
        )
    if kind == jt.ENV:
        return (
            "Dict("
            + ", ".join(f"{julia_string_literal(k)} => {julia_string_literal(v)}" for k, v in value.items())
            + ")"
        )
    return str(value)  # strings, quantities, enums, secrets travel as themselves


def encode_params(job_type: str, params: Mapping[str, Any], *, partial: bool = False) -> dict[str, str]:
    """Checked parameters as the query values the Julia client would send."""
    checked = check_params(job_type, params, partial=partial)
    return {n: encode_value(jt.PARAMETERS[n].kind, v) for n, v in checked.items()}
