"""PARAM=VALUE arguments: each value read according to its parameter's kind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from ..juliarun import PARAMETERS, ParameterError
from ..juliarun import jobtypes as jt

# Kinds whose PARAM=VALUE text is the value itself: YAML would turn `image=1.0` or
# `start_script=yes` into a number or a boolean.
RAW_KINDS = frozenset({jt.STRING, jt.QUANTITY, jt.SECRET, jt.ENUM})
# Kinds that are collections of strings: YAML's base loader keeps every scalar in them a
# string, so `envvars={DEBUG: 1}` means "1", not 1.
STRING_COLLECTION_KINDS = frozenset({jt.STRING_LIST, jt.ENV})


def parse_value(name: str, text: str) -> Any:
    """The value of parameter `name` written as `text`, read according to its kind."""
    param = PARAMETERS.get(name)
    if param is None or param.kind in RAW_KINDS:
        # Unknown names pass through untouched: the client refuses them, naming the
        # parameters the job type does take.
        return text
    loader = yaml.BaseLoader if param.kind in STRING_COLLECTION_KINDS else yaml.SafeLoader
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - both loaders are safe
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ParameterError(f"parameter {name}: cannot read {text!r}: {problem}", name) from None


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """PARAM=VALUE arguments as a parameter dict; ParameterError names the faulty one."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"expected PARAM=VALUE, got {pair!r}", name or None)
        if name in params:
            raise ParameterError(f"parameter {name} given more than once", name)
        params[name] = parse_value(name, text)
    return params
