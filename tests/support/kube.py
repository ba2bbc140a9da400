"""A recording double of the runtime's Kubernetes port (`adapters.kube.KubeAPI`), for the
runtime's unit tests: it keeps the objects it is given, answers writes as the API server
would (a new resourceVersion; 409 for a stale one) and records every write."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from juliarun_operator.reconcile.adapters.kube import ApiException, SecretProblem


def body(
    name: str, version: int = 1, namespace: str = "team", spec: dict | None = None, **status: Any
) -> dict:
    return {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": str(version),
            "creationTimestamp": "2026-11-26T00:00:00Z",
        },
        "spec": spec if spec is not None else {"type": "Webserver"},
        "status": status,
    }


class RecordingKube:
    def __init__(self, *objects: dict, secrets: Mapping[tuple[str, str], dict[str, str]] | None = None):
        self.objects = {
            (o["metadata"]["namespace"], o["metadata"]["name"]): copy.deepcopy(o) for o in objects
        }
        self.secrets = dict(secrets or {})
        self.events: list[tuple[str, str, str]] = []
        self.writes: list[tuple[str, str]] = []  # (kind of write, object name)
        self.published: dict[tuple[Any, str, str], dict] = {}  # Services, EndpointSlices, Secrets
        self.crd: str | None = "crd-uid-1"  # the served CRD's uid ("": none served; None: no answer)

    def _bump(self, obj: dict) -> dict:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(obj)

    def _get(self, namespace: str, name: str) -> dict:
        try:
            return self.objects[(namespace, name)]
        except KeyError:
            raise ApiException(status=404, reason="Not Found") from None

    def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any], resource_version: str | None = None
    ) -> dict:
        obj = self._get(namespace, name)
        if resource_version and resource_version != obj["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.writes.append(("status", name))
        merged = {**obj.get("status", {}), **status}
        obj["status"] = {k: v for k, v in merged.items() if v is not None}
        return self._bump(obj)

    def set_finalizer(self, body: Mapping[str, Any], finalizer: str, present: bool) -> dict:
        meta = body["metadata"]
        obj = self._get(meta["namespace"], meta["name"])
        self.writes.append(("finalizer", meta["name"]))
        obj["metadata"]["finalizers"] = [finalizer] if present else []
        return self._bump(obj)

    def delete_object(self, namespace: str, name: str, uid: str) -> None:
        self.writes.append(("delete", name))
        self.objects.pop((namespace, name), None)

    def get_object(self, namespace: str, name: str) -> dict | None:
        obj = self.objects.get((namespace, name))
        return copy.deepcopy(obj) if obj else None

    def serving(self) -> str | None:
        return self.crd

    def list_objects(self, namespaces: list[str]) -> tuple[list[dict], str]:
        return [copy.deepcopy(o) for o in self.objects.values()], "1"

    def read_secret_data(
        self, namespace: str, name: str, marked: bool = True, keys: tuple[str, ...] = ()
    ) -> dict[str, str]:
        if (namespace, name) not in self.secrets:
            raise SecretProblem(f"Secret {namespace}/{name} not found")
        return {k: v for k, v in self.secrets[(namespace, name)].items() if k in keys}

    def event(self, body: Mapping[str, Any], etype: str, reason: str, message: str, now: float) -> None:
        self.writes.append(("event", body["metadata"]["name"]))
        self.events.append((etype, reason, message))

    # A job's Service, EndpointSlice and Secret: kept by (resource, namespace, name).
    def get_published(self, resource: Any, namespace: str, name: str) -> dict | None:
        found = self.published.get((resource, namespace, name))
        return copy.deepcopy(found) if found else None

    def create_published(self, resource: Any, namespace: str, body: Mapping[str, Any]) -> dict:
        key = (resource, namespace, body["metadata"]["name"])
        if key in self.published:
            raise ApiException(status=409, reason="AlreadyExists")
        self.writes.append((f"create {resource.value}", key[2]))
        stored = copy.deepcopy(dict(body))
        stored["metadata"] = {**stored["metadata"], "uid": f"uid-{key[2]}"}
        self.published[key] = stored
        return copy.deepcopy(stored)

    def patch_published(self, resource: Any, namespace: str, name: str, patch: Mapping[str, Any]) -> dict:
        key = (resource, namespace, name)
        if key not in self.published:
            raise ApiException(status=404, reason="Not Found")
        self.writes.append((f"patch {resource.value}", name))
        merged = {**self.published[key], **{k: v for k, v in patch.items() if k != "metadata"}}
        self.published[key] = merged
        return copy.deepcopy(merged)

    def delete_published(self, resource: Any, namespace: str, name: str, uid: str) -> None:
        self.writes.append((f"delete {resource.value}", name))
        self.published.pop((resource, namespace, name), None)
