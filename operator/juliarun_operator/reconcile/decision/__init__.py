"""The decision, pure: from a JuliaRunJob and JuliaRun's view of it, the plan. No I/O.

`reconcile(obj, facts)` is the entry (decide.py: live objects; deleting.py; batch.py: the
rules of batch jobs; observe.py: managementPolicy Observe and the takeover; rules.py: what
they share); status.py builds conditions, mapping.py turns a spec into JuliaRun parameters,
model.py holds the types; publish.py plans a service job's Service, EndpointSlice and
connection Secret (their bodies: published_objects.py; where they may point and the
endpoints' order: endpoints.py). This package imports nothing of the runtime or the
adapters (tests/unit/test_layers.py).
"""

from .decide import reconcile
from .model import (
    DEFAULT_CONNECTION,
    Action,
    Earlier,
    Facts,
    Kind,
    Memory,
    Note,
    ObjectState,
    Outcome,
    Plan,
    delete,
    event,
    post_logs,
    set_scale,
    submit,
    update,
    write_status,
)

__all__ = [
    "DEFAULT_CONNECTION",
    "Action",
    "Earlier",
    "Facts",
    "Kind",
    "Memory",
    "Note",
    "ObjectState",
    "Outcome",
    "Plan",
    "delete",
    "event",
    "post_logs",
    "reconcile",
    "set_scale",
    "submit",
    "update",
    "write_status",
]
