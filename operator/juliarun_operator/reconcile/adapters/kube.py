"""The Kubernetes side: status patches, finalizers, Events, Secrets. Blocking calls with
time-outs, run in the controller's worker threads."""

from __future__ import annotations

import base64
import binascii
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

import kubernetes

from ...api import COMPONENT, GROUP, KIND, PLURAL, VERSION
from ...tenancy import secret_is_marked, unmarked_secret_message
from ..decision.model import Resource
from ..decision.status import iso

TIMEOUT = (5.0, 30.0)  # connect, read: no Kubernetes call may hang a worker

log = logging.getLogger(__name__)
Body = dict[str, Any]  # a JuliaRunJob as the API server returns it (the custom objects API: JSON)
ApiException = kubernetes.client.ApiException


MAX_SECRET_VALUE = 64 * 1024  # bytes of one Secret value the operator reads (a CA bundle fits)


class SecretProblem(Exception):
    """A Secret that cannot be used: missing, forbidden, unreadable. The message names it
    and what is wrong, never a value."""


def decode_secret(
    namespace: str, name: str, data: Mapping[str, str | bytes], keys: tuple[str, ...]
) -> dict[str, str]:
    """The `keys` of a Secret's base64 `data` (those present), each at most MAX_SECRET_VALUE bytes."""
    decoded = {}
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        too_big = SecretProblem(
            f"Secret {namespace}/{name}: key {key!r} is over {MAX_SECRET_VALUE // 1024} KiB, "
            "more than the operator reads"
        )
        if len(value) > (MAX_SECRET_VALUE + 2) // 3 * 4:  # base64 of more than the limit: not decoded
            raise too_big
        try:
            raw = base64.b64decode(value)
            if len(raw) > MAX_SECRET_VALUE:
                raise too_big
            decoded[key] = raw.decode()
        except (binascii.Error, UnicodeDecodeError):
            raise SecretProblem(f"Secret {namespace}/{name}: key {key!r} is not UTF-8 text") from None
    return decoded


def load_config(kubeconfig: str | None) -> kubernetes.client.Configuration:
    config = kubernetes.client.Configuration()
    if kubeconfig:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
        return config
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=config)
    return config


class KubeAPI(Protocol):
    """What the runtime asks of Kubernetes: `Kube` over the official client, or a recording
    double in the runtime's unit tests."""

    def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any], resource_version: str | None = None
    ) -> Body: ...

    def set_finalizer(self, body: Mapping[str, Any], finalizer: str, present: bool) -> Body: ...

    def delete_object(self, namespace: str, name: str, uid: str) -> None: ...

    def get_object(self, namespace: str, name: str) -> Body | None: ...

    def serving(self) -> str | None: ...

    def list_objects(self, namespaces: list[str]) -> tuple[list[Body], str]: ...

    def read_secret_data(
        self, namespace: str, name: str, marked: bool = True, keys: tuple[str, ...] = ()
    ) -> dict[str, str]: ...

    def event(self, body: Mapping[str, Any], etype: str, reason: str, message: str, now: float) -> None: ...

    # A job's Service, EndpointSlice and connection Secret (decision/publish.py).
    def get_published(self, resource: Resource, namespace: str, name: str) -> Body | None: ...

    def create_published(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Body: ...

    def patch_published(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> Body: ...

    def delete_published(self, resource: Resource, namespace: str, name: str, uid: str) -> None: ...


class Kube:
    """Thin wrappers over the official client, with the operator's group and kind."""

    def __init__(
        self, kubeconfig: str | None = None, pool_size: int = 32, on_write: Callable[[], None] | None = None
    ):
        config = load_config(kubeconfig)
        config.connection_pool_maxsize = pool_size
        self.api = kubernetes.client.ApiClient(config)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.discovery = kubernetes.client.DiscoveryV1Api(self.api)
        self.extensions = kubernetes.client.ApiextensionsV1Api(self.api)
        self.host = socket.gethostname()
        self.writes = 0  # status patches, finalizer patches and Events: for the benchmarks
        self._lock = threading.Lock()
        self.on_write = on_write

    def _count(self) -> None:
        with self._lock:
            self.writes += 1
        if self.on_write:
            self.on_write()

    def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any], resource_version: str | None = None
    ) -> Body:
        """Merge-patch the fields of status this write owns (None removes one). With
        `resource_version`, only onto that version of the object (409 otherwise): a write
        decided on an older body never rolls a newer status back."""
        patch: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        self._count()
        written = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, patch, _request_timeout=TIMEOUT
        )
        return cast("Body", written)

    def serving(self) -> str | None:
        """Which JuliaRunJob CRD the API server serves now: its uid once discovery lists the
        resource ("" while it does not), so that a CRD deleted and created again between two
        looks is told from the one before. None: no answer says (nothing restarts on a blip)."""
        try:
            found = self.custom.get_api_resources(GROUP, VERSION, _request_timeout=TIMEOUT)
            if not any(r.name == PLURAL for r in (found.resources or [])):
                return ""
            crd = self.extensions.read_custom_resource_definition(
                f"{PLURAL}.{GROUP}", _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            return "" if exc.status == 404 else None
        except Exception:
            return None
        return str(crd.metadata.uid or "") if crd.metadata else None

    def get_object(self, namespace: str, name: str) -> Body | None:
        """The JuliaRunJob as it is now; None if it is gone."""
        try:
            found = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast("Body", found)

    def set_finalizer(self, body: Mapping[str, Any], finalizer: str, present: bool) -> Body:
        """Add or remove one finalizer with a JSON patch that fails (409/422) if the list
        changed since `body`: others' finalizers are never lost."""
        meta = body["metadata"]
        current = list(meta.get("finalizers") or [])
        ops: list[dict[str, Any]]
        if present:
            ops = (
                [
                    {"op": "test", "path": "/metadata/finalizers", "value": current},
                    {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
                ]
                if current
                else [{"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]
            )
        else:
            index = current.index(finalizer)
            ops = [
                {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
                {"op": "remove", "path": f"/metadata/finalizers/{index}"},
            ]
        self._count()
        written = self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            meta["namespace"],
            PLURAL,
            meta["name"],
            ops,
            _content_type="application/json-patch+json",
            _request_timeout=TIMEOUT,
        )
        return cast("Body", written)

    def delete_object(self, namespace: str, name: str, uid: str) -> None:
        """Delete a JuliaRunJob, only the one with this UID (not one re-created under its
        name); gone already is fine."""
        self._count()
        options = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(uid=uid), propagation_policy="Background"
        )
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body=options, _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def list_objects(self, namespaces: list[str]) -> tuple[list[Body], str]:
        """Every JuliaRunJob (of the namespaces, or all), and the list's resourceVersion."""
        items: list[Body] = []
        version = ""
        for namespace in namespaces or [""]:
            token = None
            while True:
                kwargs: dict[str, Any] = {"limit": 500, "_request_timeout": TIMEOUT}
                if token:
                    kwargs["_continue"] = token
                page = cast(
                    Body,
                    (
                        self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kwargs)
                        if namespace
                        else self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)
                    ),
                )
                items += page.get("items") or []
                version = page.get("metadata", {}).get("resourceVersion", version)
                token = page.get("metadata", {}).get("continue")
                if not token:
                    break
        return items, version

    def read_secret_data(
        self, namespace: str, name: str, marked: bool = True, keys: tuple[str, ...] = ()
    ) -> dict[str, str]:
        """The `keys` of a Secret its owner marked for the operator, decoded (the others are
        never decoded or kept); SecretProblem names what is wrong. An unmarked Secret is never
        used: someone who may create a JuliaRunJob but not read Secrets cannot hand one to a
        job of theirs. A value over MAX_SECRET_VALUE bytes is refused: a tenant's Secrets
        cannot fill the operator's memory."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretProblem(f"Secret {namespace}/{name} not found") from None
            if exc.status == 403:
                raise SecretProblem(
                    f"Secret {namespace}/{name} may not be read by the operator (forbidden)"
                ) from None
            raise SecretProblem(f"Secret {namespace}/{name} cannot be read: HTTP {exc.status}") from None
        except Exception as exc:  # a time-out or a broken connection: ours to retry
            raise SecretProblem(f"Secret {namespace}/{name} cannot be read: {type(exc).__name__}") from None
        if marked and not secret_is_marked(secret.metadata.labels if secret.metadata else None):
            raise SecretProblem(unmarked_secret_message(namespace, name))
        return decode_secret(namespace, name, secret.data or {}, keys)

    def event(self, body: Mapping[str, Any], etype: str, reason: str, message: str, now: float) -> None:
        """Post a core/v1 Event about a JuliaRunJob; failures are logged, never raised."""
        meta = body["metadata"]
        stamp = iso(now)
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": etype,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT, "host": self.host},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": COMPONENT,
            "reportingInstance": self.host,
        }
        self._count()
        try:
            # A dict is sent as JSON as it stands; the model class would only be converted back.
            self.core.create_namespaced_event(meta["namespace"], cast(Any, event), _request_timeout=TIMEOUT)
        except Exception as exc:
            log.warning(
                "cannot post event %s for %s/%s: %s",
                reason,
                meta["namespace"],
                meta["name"],
                getattr(exc, "status", type(exc).__name__),
            )

    # --- a job's Service, EndpointSlice and connection Secret -----------------------------------

    def _calls(self, resource: Resource) -> tuple[Callable[..., Any], ...]:
        """read, create, patch, delete of the resource's API."""
        if resource is Resource.SERVICE:
            c = self.core
            return (
                c.read_namespaced_service,
                c.create_namespaced_service,
                c.patch_namespaced_service,
                c.delete_namespaced_service,
            )
        if resource is Resource.ENDPOINT_SLICE:
            e = self.discovery
            return (
                e.read_namespaced_endpoint_slice,
                e.create_namespaced_endpoint_slice,
                e.patch_namespaced_endpoint_slice,
                e.delete_namespaced_endpoint_slice,
            )
        c = self.core
        return (
            c.read_namespaced_secret,
            c.create_namespaced_secret,
            c.patch_namespaced_secret,
            c.delete_namespaced_secret,
        )

    def _plain(self, answer: Any) -> Body:
        return cast("Body", self.api.sanitize_for_serialization(answer))

    def get_published(self, resource: Resource, namespace: str, name: str) -> Body | None:
        """The object as it is now (a Secret's data still base64); None if there is none."""
        read = self._calls(resource)[0]
        try:
            return self._plain(read(name, namespace, _request_timeout=TIMEOUT))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_published(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Body:
        create = self._calls(resource)[1]
        self._count()
        # A dict is sent as JSON as it stands.
        return self._plain(create(namespace, cast(Any, dict(body)), _request_timeout=TIMEOUT))

    def patch_published(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> Body:
        """A JSON merge patch: the lists it names (ports, endpoints) are replaced whole."""
        call = self._calls(resource)[2]
        self._count()
        answer = call(
            name,
            namespace,
            cast(Any, dict(patch)),
            _content_type="application/merge-patch+json",
            _request_timeout=TIMEOUT,
        )
        return self._plain(answer)

    def delete_published(self, resource: Resource, namespace: str, name: str, uid: str) -> None:
        """Delete the object, only the one with this UID; gone already is fine."""
        delete = self._calls(resource)[3]
        self._count()
        options = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(uid=uid) if uid else None
        )
        try:
            delete(name, namespace, body=options, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status not in (404, 409):  # 409: another object of that name now: not ours
                raise
