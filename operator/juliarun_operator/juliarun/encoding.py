"""Job parameters: checking them against the job-type table, and their wire text.

The Julia client sends each parameter as Julia's `string(value)`: a string as itself,
`true`, `0.5`, `4`, `["a", "b"]`, `Dict("nb" => (8888, 8888))`. We produce the same text
so a server that accepted the Julia client accepts us; `decode_value` reads it back (the
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

_ESCAPES = {
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
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}


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
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
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


# --- reading wire text back (the server side) -----------------------------------------


class _Reader:
    """A tiny reader for the Julia literals above: strings, ints, lists, tuples, Dicts."""

    _TOKEN = re.compile(r'\s*(Dict\(|=>|[\[\](),]|"(?:[^"\\]|\\.)*"|-?[0-9]+)', re.S)

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def _next(self) -> str:
        m = self._TOKEN.match(self.text, self.pos)
        if not m:
            raise ValueError(f"unexpected text at {self.pos}: {self.text[self.pos : self.pos + 20]!r}")
        self.pos = m.end()
        return m.group(1)

    def _peek(self) -> str | None:
        m = self._TOKEN.match(self.text, self.pos)
        return m.group(1) if m else None

    def value(self) -> Any:
        tok = self._next()
        if tok.startswith('"'):
            return _unescape(tok[1:-1])
        if tok == "[":
            return self._sequence("]")
        if tok == "(":
            return tuple(self._sequence(")"))
        if tok == "Dict(":
            if self._peek() == ")":
                self._next()
                return {}
            return dict(self._pair_list())
        if re.fullmatch(r"-?[0-9]+", tok):
            return int(tok)
        raise ValueError(f"unexpected {tok!r}")

    def _sequence(self, close: str) -> list[Any]:
        items: list[Any] = []
        if self._peek() == close:
            self._next()
            return items
        while True:
            items.append(self.value())
            tok = self._next()
            if tok == close:
                return items
            if tok != ",":
                raise ValueError(f"expected ',' or {close!r}, got {tok!r}")

    def _pair_list(self) -> list[tuple[Any, Any]]:
        pairs: list[tuple[Any, Any]] = []
        while True:
            key = self.value()
            if self._next() != "=>":
                raise ValueError("expected '=>' in Dict")
            pairs.append((key, self.value()))
            tok = self._next()
            if tok == ")":
                return pairs
            if tok != ",":
                raise ValueError(f"expected ',' or ')', got {tok!r}")

    def done(self) -> None:
        if self.text[self.pos :].strip():
            raise ValueError(f"trailing text {self.text[self.pos :]!r}")


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt in _UNESCAPES:
            out.append(_UNESCAPES[nxt])
            i += 2
        else:
            raise ValueError(f"unknown escape \\{nxt}")
    return "".join(out)


def decode_value(param: jt.Param, text: str) -> Any:
    """Read a parameter's wire text back into a checked value; ParameterError if it is not one."""
    try:
        if param.kind == jt.BOOLEAN:
            if text not in ("true", "false"):
                raise ValueError("not true or false")
            value: Any = text == "true"
        elif param.kind == jt.INTEGER:
            value = int(text)
        elif param.kind == jt.NUMBER:
            value = float(text)
        elif param.kind in (jt.STRING_LIST, jt.PORTS, jt.ENV):
            reader = _Reader(text)
            value = reader.value()
            reader.done()
            if param.kind == jt.PORTS and isinstance(value, dict):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        else:
            value = text
    except (ValueError, IndexError) as exc:
        raise ParameterError(
            f"parameter {param.name}: cannot read {text!r:.200}: {exc}", param.name
        ) from None
    return check_value(param, value)


def decode_params(job_type: str, query: Mapping[str, str], *, partial: bool = False) -> dict[str, Any]:
    """The job parameters in a submit/update query (other keys, such as name, are skipped)."""
    spec = jt.job_type(job_type)
    params = {}
    for key, text in query.items():
        if key in ("name", "jruntok", "jrunns"):
            continue
        if key not in spec.params:
            raise ParameterError(f"{job_type} does not take parameter {key!r}", key)
        params[key] = decode_value(jt.PARAMETERS[key], text)
    return check_params(job_type, params, partial=partial)
