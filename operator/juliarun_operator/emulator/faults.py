"""Fault injection: which operations misbehave, how, and the seeded dice that decide.

A fault configuration is a JSON-able dict:
    {"*": {"latency": 0.2}, "getJobStatus": {"error_rate": 0.5}, "system_status": false}
Keys are API operation names or "*" (every operation); an operation's own settings win
over "*" kind by kind. "system_status": false makes getSystemStatus answer false.

"jobs" is a list of job failure rules, the first that matches a submitted job's name wins:
    {"jobs": [{"match": "team-*", "fail": "all", "count": 1}]}
`match` is a shell-style pattern of the job name, `fail` one of all, some, crash (see
lifecycle.py), `count` how many submits the rule fails before it stops matching (unset: all).
As a `--fault` flag: `jobs:PATTERN=FAIL` or `jobs:PATTERN=FAIL:COUNT`, rules in flag order.

`echo_rate` answers with an error page that echoes the request line, query and token
included, as aiohttp does for a request line over its limit and as some proxies do: the
test that no token leaks through an error body. `echo_status` is its HTTP status (400).
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass
from typing import Any

CONTEXT_OPERATIONS = ("getSystemStatus", "listJobs", "getAllJobInfo")
JOB_OPERATIONS = (
    "getJobStatus",
    "getJobScale",
    "setJobScale",
    "getJobEndpoint",
    "deleteJob",
    "tailJob",
    "submitJob",
    "updateJob",
    "getEncodedURL",
)
OPERATIONS = CONTEXT_OPERATIONS + JOB_OPERATIONS

RATES = ("error_rate", "hang_rate", "http_5xx_rate", "malformed_rate", "drop_rate", "echo_rate")
SECONDS = ("latency", "hang_seconds")
STATUSES = ("echo_status",)
KINDS = RATES + SECONDS + STATUSES
DEFAULT_HANG_SECONDS = 300.0  # far past any sensible client time-out
DEFAULT_ECHO_STATUS = 400

# What a request gets instead of its normal answer, checked in this order.
DROP, HTTP_5XX, ECHO, MALFORMED, ERROR = "drop", "http_5xx", "echo", "malformed", "error"
_OUTCOMES = (
    (DROP, "drop_rate"),
    (HTTP_5XX, "http_5xx_rate"),
    (ECHO, "echo_rate"),
    (MALFORMED, "malformed_rate"),
    (ERROR, "error_rate"),
)


FAIL_MODES = ("all", "some", "crash")


def _job_rules(rules: Any) -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        raise ValueError("jobs must be a list of {match, fail, count} rules")
    out = []
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - {"match", "fail", "count"}:
            raise ValueError("a jobs rule is an object with match, fail and optionally count")
        if not isinstance(rule.get("match"), str) or rule.get("fail") not in FAIL_MODES:
            raise ValueError(
                f"a jobs rule needs match (a name pattern) and fail (one of {', '.join(FAIL_MODES)})"
            )
        count = rule.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise ValueError("jobs: count must be a non-negative integer")
        out.append(dict(rule))
    return out


def normalise(config: Any) -> dict[str, Any]:
    """A checked copy of a fault configuration; ValueError says what is wrong."""
    if not isinstance(config, dict):
        raise ValueError("fault configuration must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key == "jobs":
            out[key] = _job_rules(value)
            continue
        if key == "system_status":
            if not isinstance(value, bool):
                raise ValueError("system_status must be true or false")
            out[key] = value
            continue
        if key != "*" and key not in OPERATIONS:
            raise ValueError(f"unknown operation {key!r}: expected '*' or one of {', '.join(OPERATIONS)}")
        if not isinstance(value, dict):
            raise ValueError(f"faults of {key!r} must be an object of kind -> number")
        kinds = {}
        for kind, number in value.items():
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}: expected one of {', '.join(KINDS)}")
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
                raise ValueError(f"{key}:{kind} must be a non-negative number")
            if kind in RATES and number > 1:
                raise ValueError(f"{key}:{kind} is a probability: at most 1")
            if kind in STATUSES and (number != int(number) or not 400 <= number <= 599):
                raise ValueError(f"{key}:{kind} is an HTTP error status: 400 to 599")
            kinds[kind] = float(number)
        out[key] = kinds
    return out


FLAG_FORMS = "OP:KIND=VALUE, jobs:PATTERN=FAIL[:COUNT] or system_status=true|false"


def _job_flag(text: str, pattern: str, value: str) -> dict[str, Any]:
    """The jobs rule of a `--fault jobs:PATTERN=FAIL[:COUNT]` flag."""
    if not pattern:
        raise ValueError(f"--fault {text!r}: expected jobs:PATTERN=FAIL[:COUNT] with a PATTERN")
    fail, sep, count = value.partition(":")
    rule: dict[str, Any] = {"match": pattern, "fail": fail}
    if sep:
        if not count.isdigit():
            raise ValueError(f"--fault {text!r}: COUNT {count!r} is not a whole number")
        rule["count"] = int(count)
    return rule


def parse_flag(text: str, config: dict[str, Any]) -> None:
    """Add one `--fault` flag (one of FLAG_FORMS) to `config`."""
    target, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--fault {text!r}: expected {FLAG_FORMS}")
    if target == "system_status":
        if value not in ("true", "false"):
            raise ValueError("--fault system_status= takes true or false")
        config["system_status"] = value == "true"
        return
    op, sep, kind = target.partition(":")
    if not sep:
        raise ValueError(f"--fault {text!r}: expected {FLAG_FORMS}")
    if op == "jobs":
        config.setdefault("jobs", []).append(_job_flag(text, kind, value))
        normalise(config)  # fail on the flag that broke it
        return
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--fault {text!r}: {value!r} is not a number") from None
    config.setdefault(op, {})[kind] = number
    normalise(config)  # fail on the flag that broke it


@dataclass(frozen=True)
class Decision:
    latency: float = 0.0
    hang: float = 0.0  # seconds to hang before answering; 0 for none
    outcome: str | None = None  # one of DROP, HTTP_5XX, ECHO, MALFORMED, ERROR, or normal
    status: int = DEFAULT_ECHO_STATUS  # of an ECHO answer


NO_FAULT = Decision()


class Faults:
    """The current configuration and a seeded random source to apply it."""

    def __init__(self, config: dict[str, Any] | None = None, seed: int | None = None):
        self.rng = random.Random(seed)  # noqa: S311 (seeded fault injection, not secrets)
        self.set(config or {})

    def set(self, config: dict[str, Any]) -> None:
        self.config = normalise(config)
        # Effective kinds per operation, merged once here rather than on every request.
        self.job_rules: list[dict[str, Any]] = self.config.get("jobs", [])  # counts go down
        default = self.config.get("*", {})
        self._by_op = {op: {**default, **self.config.get(op, {})} for op in OPERATIONS}

    @property
    def system_status(self) -> bool:
        return bool(self.config.get("system_status", True))

    def decide(self, operation: str) -> Decision:
        kinds = self._by_op.get(operation)
        if not kinds:
            return NO_FAULT
        hang = 0.0
        if self.rng.random() < kinds.get("hang_rate", 0.0):
            hang = kinds.get("hang_seconds", DEFAULT_HANG_SECONDS)
        outcome = None
        for name, rate in _OUTCOMES:
            if self.rng.random() < kinds.get(rate, 0.0):
                outcome = name
                break
        return Decision(
            kinds.get("latency", 0.0), hang, outcome, int(kinds.get("echo_status", DEFAULT_ECHO_STATUS))
        )

    def job_failure(self, name: str) -> dict[str, Any] | None:
        """The first job rule that fails a job of this name now, if any."""
        for rule in self.job_rules:
            if fnmatch.fnmatchcase(name, rule["match"]) and rule.get("count") != 0:
                return rule
        return None

    @staticmethod
    def used(rule: dict[str, Any]) -> None:
        """A submit that `rule` failed has landed: one fewer left."""
        if rule.get("count") is not None:
            rule["count"] -= 1
