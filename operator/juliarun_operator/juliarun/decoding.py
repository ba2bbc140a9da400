"""Reading parameters' wire text back into checked values: the server side of encoding.py
(the emulator uses it). A tiny reader for the Julia literals the client sends (strings,
ints, lists, tuples, Dicts); anything else is a ParameterError naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import jobtypes as jt
from .encoding import ESCAPES, check_params, check_value
from .errors import ParameterError

_UNESCAPES = {v[1]: k for k, v in ESCAPES.items()}


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
