"""The kopf handlers: events in, `Runtime` methods called, outcomes counted.

Handlers return None (a returned value would be written into status by kopf) and turn
`Retry` and JuliaRun errors into kopf's TemporaryError with a backed-off delay.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import kopf

from ..juliarun.errors import ApiError
from .kube import GROUP, PLURAL, VERSION
from .runtime import ADOPT_ANNOTATION, PAUSE_ANNOTATION, Retry, Runtime

RESOURCE = (GROUP, VERSION, PLURAL)
FINALIZER = "juliarun.dev/finalizer"
# kopf's own annotations; not juliarun.dev/, since kopf hides its prefix from the diffs
# that our pause and adopt annotations must show up in.
KOPF_PREFIX = "kopf.juliarun.dev"
log = logging.getLogger("juliarun_operator")


def _run(memo: kopf.Memo, name: str, body: Any, retry: int, fn: Callable[[], str]) -> None:
    runtime: Runtime = memo.runtime
    try:
        outcome = fn()
    except Retry as exc:
        runtime.metrics.reconciled(name, "retry")
        if retry == 0:
            runtime.kube.event(body, "Warning", "Retrying", f"{name}: {exc}")
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
    except ApiError as exc:
        runtime.metrics.reconciled(name, "error")
        if retry == 0:
            runtime.kube.event(body, "Warning", "JuliaRunError", f"{name}: {exc}")
        raise kopf.TemporaryError(str(exc), delay=runtime.config.backoff.delay(retry + 1)) from None
    runtime.metrics.reconciled(name, outcome)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration")
    settings.posting.enabled = False  # our own Events say what happened, once
    settings.execution.max_workers = memo.max_workers
    settings.watching.server_timeout = 300
    settings.peering.lifetime = memo.peering_lifetime
    # Under load kopf's own patches take a while to come back through the watch; when its
    # wait for them (5 s by default) runs out it handles a stale body and repeats the create
    # cycle, with its writes. Waiting longer is cheaper than repeating.
    settings.persistence.consistency_timeout = 30
    # Every object kopf works on holds its bodies, patches and a task (~170 KB each, measured):
    # 10,000 created at once would all be in flight. A bound keeps the rest as queued events;
    # idle workers leave after 0.5 s (kopf: 5 s) so that their places turn over quickly.
    settings.queueing.worker_limit = memo.max_in_flight or None
    settings.batching.idle_timeout = 0.5
    memo.start()


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.stop()


@kopf.on.event(*RESOURCE)
def track(event: dict, memo: kopf.Memo, **_: Any) -> None:
    if event.get("object"):
        memo.runtime.track(event.get("type") or "ADDED", event["object"])


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
def ensure(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _run(memo, "ensure", body, retry, lambda: memo.runtime.ensure(body))


def _not_creation(reason: str, **_: Any) -> bool:
    """Field handlers skip creation and resume, where `ensure` reads the whole object. As a
    filter, not an early return: a second handler in a cycle costs kopf progress writes."""
    return reason not in (kopf.Reason.CREATE, kopf.Reason.RESUME)


@kopf.on.field(*RESOURCE, field="spec.parallelism", when=_not_creation)
def scale(body: kopf.Body, new: Any, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _run(memo, "scale", body, retry, lambda: memo.runtime.scale(body, new))


@kopf.on.update(*RESOURCE, field="spec")
def update(body: kopf.Body, old: Any, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _run(memo, "update", body, retry, lambda: memo.runtime.update(body, old or {}))


@kopf.on.field(*RESOURCE, field=["metadata", "annotations", PAUSE_ANNOTATION], when=_not_creation)
@kopf.on.field(*RESOURCE, field=["metadata", "annotations", ADOPT_ANNOTATION], when=_not_creation)
def annotation_changed(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _run(memo, "annotation", body, retry, lambda: memo.runtime.ensure(body))


@kopf.on.delete(*RESOURCE)
def delete(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    _run(memo, "delete", body, retry, lambda: memo.runtime.delete(body))

