"""What the operator published of each object (its Service, EndpointSlice, connection Secret)
as last seen: read once with a GET, then kept from the answers to its own writes, so that a
look at an object in the steady state costs no call. A full resync forgets it all (a change
made by someone else shows within the resync interval); a write refused as stale forgets
the object's entries (the next look reads them again).

Also where each connection may point a Service (the administrator's ranges)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from .. import decision as d
from ..adapters.kube import ApiException, KubeAPI
from ..decision.endpoints import Allowed
from ..decision.model import Resource
from .registry import Body

Key = tuple[Resource, str]
DEFAULT_RANGES = (
    "10.0.0.0/8",
)  # the default connection's, unless the administrator says: JuliaRun's pod network


class Published:
    def __init__(self, kube: KubeAPI):
        self.kube = kube
        self._seen: dict[str, dict[Key, Body | None]] = {}  # by object UID
        self._forbidden: dict[str, set[Key]] = {}  # ... and what the operator may not read (RBAC)
        self._stale: set[str] = set()  # objects whose view a write found wrong: read, never assumed
        self._failed: dict[str, dict[Key, str]] = {}  # ... and writes that failed, with why
        self._lock = threading.Lock()

    def found(
        self, obj: d.ObjectState, names: Iterable[Key], fresh: bool = False
    ) -> tuple[dict[Key, Body | None], frozenset[Key]]:
        """The objects of these names in the object's namespace, as last seen (read if never),
        and those the operator may not read there (its RBAC: a namespace not opted in).

        `fresh`: the object never published anything (publish.fresh): they are taken to be
        absent, unread (a new object costs no GET). A create then refused because one is
        there makes the object `stale`: read from then on."""
        with self._lock:
            seen = dict(self._seen.get(obj.uid, {}))
            forbidden = set(self._forbidden.get(obj.uid, ()))
            assume = fresh and obj.uid not in self._stale
        out: dict[Key, Body | None] = {}
        for key in names:
            if key not in seen and key not in forbidden and assume:
                seen[key] = None
            elif key not in seen and key not in forbidden:
                try:
                    seen[key] = _trimmed(self.kube.get_published(key[0], obj.namespace, key[1]))
                except ApiException as exc:
                    if exc.status != 403:
                        raise
                    forbidden.add(key)
            out[key] = seen.get(key)
        with self._lock:
            self._seen.setdefault(obj.uid, {}).update({k: v for k, v in out.items() if k not in forbidden})
            if forbidden:
                self._forbidden[obj.uid] = forbidden
        return out, frozenset(forbidden & set(out))

    def remember(self, uid: str, key: Key, body: Body | None) -> None:
        with self._lock:
            self._seen.setdefault(uid, {})[key] = _trimmed(body)
            self._failed.get(uid, {}).pop(key, None)

    def fail(self, uid: str, key: Key, why: str) -> None:
        """A write that failed (neither refused as stale nor forbidden): the condition says so
        until one succeeds; the controller retries it on the object's backoff."""
        with self._lock:
            self._failed.setdefault(uid, {})[key] = why

    def failures(self, uid: str) -> dict[Key, str]:
        with self._lock:
            return dict(self._failed.get(uid, {}))

    def forget(self, uid: str) -> None:
        with self._lock:
            self._seen.pop(uid, None)
            self._forbidden.pop(uid, None)
            self._stale.discard(uid)
            self._failed.pop(uid, None)

    def forbid(self, uid: str, key: Key) -> None:
        """A write the operator may not make there (its RBAC): said by the condition, not retried."""
        with self._lock:
            self._forbidden.setdefault(uid, set()).add(key)

    def stale(self, uid: str) -> None:
        """A write found the object's view wrong (gone, or there already): read it again."""
        with self._lock:
            self._seen.pop(uid, None)
            self._stale.add(uid)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()
            self._forbidden.clear()
            self._stale.clear()


def _trimmed(body: Body | None) -> Body | None:
    """What the decision reads of an object: without managedFields, its bulk (kept for
    every published object, so memory grows with the number of objects)."""
    if body is None or "managedFields" not in (body.get("metadata") or {}):
        return body
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {**body, "metadata": meta}


def ranges_key(obj: d.ObjectState, connection: str) -> str:
    """The connection as the administrator names it for its ranges: default, Admin/<secret>
    (a --namespace-connection Secret), or Secret/<namespace>/<name> (a tenant's credentialsRef)."""
    kind, _, name = connection.partition("/")
    return f"Secret/{obj.namespace}/{name}" if kind == "Secret" else connection


def parse_ranges(entries: Iterable[str]) -> dict[str, Allowed]:
    """`CONNECTION=RANGE` entries (a range or a .host-suffix each; `CONNECTION=` alone: none)
    into each connection's Allowed; the default connection has DEFAULT_RANGES unless named.
    ValueError names a bad entry."""
    given: dict[str, list[str]] = {}
    for entry in entries:
        connection, sep, value = entry.partition("=")
        if not sep or not connection.strip():
            raise ValueError(f"endpoint range {entry!r}: expected CONNECTION=RANGE (e.g. default=10.0.0.0/8)")
        given.setdefault(connection.strip(), []).append(value.strip())
    ranges = {d.DEFAULT_CONNECTION: Allowed.parse(DEFAULT_RANGES)}
    for connection, values in given.items():
        try:
            ranges[connection] = Allowed.parse(values)
        except ValueError as exc:
            raise ValueError(f"endpoint range of {connection}: {exc}") from None
    return ranges


def allowed(ranges: Mapping[str, Allowed], obj: d.ObjectState, connection: str) -> Allowed:
    return ranges.get(ranges_key(obj, connection), Allowed())
