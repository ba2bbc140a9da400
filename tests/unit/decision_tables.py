"""What the decision tables (test_decide.py, test_decide_batch.py) share: the facts a decision
is made with, and reading its plan (the actions' kinds, the one status write, a condition)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from juliarun_operator.juliarun.client import JobInfo
from juliarun_operator.reconcile import decision as d

NOW = 1_800_000_000.0


def facts_with(params: dict) -> Callable[..., d.Facts]:
    """`facts(jobs, memory, **fields)` for objects whose spec maps to `params`."""

    def facts(jobs: Iterable[JobInfo] = (), memory: d.Memory | None = None, **kw: Any) -> d.Facts:
        base = {
            "now": NOW,
            "memory": memory or d.Memory(),
            "params": params,
            "snapshot": {j.name: j for j in jobs},
            "snapshot_time": NOW - 1,
            "landing": 40.0,
            "acting_since": NOW - 1000,
        }
        return d.Facts(**{**base, **kw})

    return facts


def kinds(plan: d.Plan) -> list[d.Kind]:
    return [a.kind for a in plan.actions]


def written(plan: d.Plan) -> dict:
    """The plan's one status write."""
    writes = [a.status for a in plan.actions if a.kind is d.Kind.WRITE_STATUS]
    assert len(writes) == 1, kinds(plan)
    return writes[0]


def cond(fields: dict, ctype: str) -> tuple[str, str]:
    """A condition's status and reason."""
    c = next(c for c in fields["conditions"] if c["type"] == ctype)
    return c["status"], c["reason"]
