"""The objects the operator knows of, as the watch (and our own writes) last showed them.

Bodies are kept slim (no managedFields, no foreign annotations: it matters at tens of
thousands of objects) and never replaced by an older one (resourceVersion). Two indexes
by JuliaRun job name: `claims` (the object whose status records the name: the tenancy
check) and `routes` (the object a snapshot entry concerns: the poller's).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ...api import default_job_name
from ..decision import batch
from ..decision.model import ObjectState
from .connections import Connection

Key = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]  # a JuliaRunJob as the API server returns it
KEPT_META = (
    "name",
    "namespace",
    "uid",
    "generation",
    "deletionTimestamp",
    "finalizers",
    "resourceVersion",
    "creationTimestamp",
)
# What, besides status, makes a body worth deciding on again (our own status writes come
# back through the watch with nothing new).
MOVES = ("generation", "deletionTimestamp", "finalizers", "annotations", "uid")


def key_of(body: Mapping[str, Any]) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def slim(body: Mapping[str, Any]) -> Body:
    meta = body["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("juliarun.dev/")}
    kept = {k: meta[k] for k in KEPT_META if k in meta}
    return {
        "metadata": {**kept, "annotations": annotations},
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


def newer(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    if old is None:
        return True
    try:
        return int(new["metadata"]["resourceVersion"]) >= int(old["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return True


def names_of(body: Mapping[str, Any]) -> set[str]:
    """Every JuliaRun name the object may hold: recorded, chosen, its default, and those of
    a batch job's earlier attempts."""
    meta = body["metadata"]
    names = {
        body["status"].get("jobName"),
        body["spec"].get("jobName"),
        default_job_name(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")),
        *batch.earlier_names(ObjectState.of(body)),
    }
    return {n for n in names if n}


class Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[Key, Body] = {}
        self.claims: dict[str, Key] = {}  # job name -> the object whose status records it
        self.routes: dict[str, Key] = {}  # job name -> the object it concerns
        self.conn_of: dict[Key, Connection] = {}
        self.by_conn: dict[int, set[Key]] = {}  # id(connection) -> the objects that use it

    def update(self, event_type: str | None, body: Mapping[str, Any]) -> tuple[bool, Body | None]:
        """Take a watch event; (whether there is something new to decide, the forgotten body)."""
        key = key_of(body)
        with self.lock:
            old = self.objects.get(key)
            if event_type == "DELETED":
                self._forget(key)
                return False, old
            if not newer(body, old):
                return False, None
            new = slim(body)
            self._store(key, new, old)
        moved = (
            old is None
            or new["status"] != old["status"]
            or any(new["metadata"].get(k) != old["metadata"].get(k) for k in MOVES)
        )
        return moved, None

    def remember(self, body: Mapping[str, Any]) -> None:
        """A body that a write of ours returned, unless the watch brought a later one."""
        key = key_of(body)
        with self.lock:
            old = self.objects.get(key)
            if newer(body, old):
                self._store(key, slim(body), old)

    def replace_all(self, bodies: list[Body]) -> list[Body]:
        """A fresh list: the objects it lacks were deleted while no event said so; they are
        forgotten and returned."""
        listed = {key_of(b) for b in bodies}
        for body in bodies:
            self.update("ADDED", body)
        with self.lock:
            gone = [k for k in self.objects if k not in listed]
            return [b for b in (self._forget(k) for k in gone) if b]

    def _store(self, key: Key, new: Body, old: Body | None) -> None:
        previous = (old or {}).get("status", {}).get("jobName")
        name = new["status"].get("jobName")
        if previous and previous != name and self.claims.get(previous) == key:
            del self.claims[previous]
        if name:
            self.claims.setdefault(name, key)
        self.objects[key] = new

    def _forget(self, key: Key) -> Body | None:
        old = self.objects.pop(key, None)
        self._unroute(key)
        if old:
            for name in names_of(old):
                for index in (self.claims, self.routes):
                    if index.get(name) == key:
                        del index[name]
        return old

    def get(self, key: Key) -> Body | None:
        with self.lock:
            return self.objects.get(key)

    def keys(self) -> list[Key]:
        with self.lock:
            return list(self.objects)

    def route(self, name: str, key: Key, conn: Connection | None) -> None:
        with self.lock:
            if key in self.objects:  # not for an object forgotten meanwhile
                self.routes[name] = key
                if conn is not None and self.conn_of.get(key) is not conn:
                    self._unroute(key)
                    self.conn_of[key] = conn
                    self.by_conn.setdefault(id(conn), set()).add(key)

    def _unroute(self, key: Key) -> None:
        old = self.conn_of.pop(key, None)
        if old is not None:
            users = self.by_conn.get(id(old), set())
            users.discard(key)
            if not users:
                self.by_conn.pop(id(old), None)

    def holder(self, name: str) -> Key | None:
        with self.lock:
            return self.claims.get(name)

    def routed(self, names: set[str]) -> set[Key]:
        with self.lock:
            return {self.routes[n] for n in names if n in self.routes}

    def users(self) -> dict[int, list[Key]]:
        """Objects by the id of the connection they use."""
        with self.lock:
            return {cid: list(keys) for cid, keys in self.by_conn.items()}

    def users_of(self, conn: Connection) -> list[Key]:
        with self.lock:
            return list(self.by_conn.get(id(conn), ()))

    def connection_of(self, key: Key) -> Connection | None:
        with self.lock:
            return self.conn_of.get(key)

    def phases(self) -> dict[str, int]:
        with self.lock:
            counts: dict[str, int] = {}
            for body in self.objects.values():
                phase = body["status"].get("phase", "Pending")
                counts[phase] = counts.get(phase, 0) + 1
            return counts
