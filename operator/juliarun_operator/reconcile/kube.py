"""The Kubernetes side: status patches, Events, Secrets. Blocking calls, run in threads."""

from __future__ import annotations

import base64
import logging
import socket
import threading
from typing import Any, Mapping

import kubernetes

from .status import now_iso

GROUP, VERSION, PLURAL, KIND = "juliarun.dev", "v1alpha1", "juliarunjobs", "JuliaRunJob"
COMPONENT = "juliarun-operator"

log = logging.getLogger(__name__)


class Kube:
    """Thin wrappers over the official client, with the operator's group and kind."""

    def __init__(self, kubeconfig: str | None = None, pool_size: int = 32):
        config = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
        # Status writes and handler threads share the pool; the default (5 x CPUs) is too few.
        config.connection_pool_maxsize = pool_size
        self.api = kubernetes.client.ApiClient(config)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.host = socket.gethostname()
        self.writes = 0  # status patches and events, for the benchmarks
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.writes += 1

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict:
        """Merge-patch the status subresource; returns the object as written."""
        self._count()
        return self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)})

    def read_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """Every key of a Secret, decoded; LookupError when the Secret does not exist."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                raise LookupError(f"Secret {namespace}/{name} not found") from None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def read_secret(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded; LookupError names what is missing."""
        data = self.read_secret_data(namespace, name)
        if key not in data:
            raise LookupError(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]

    def event(self, body: Mapping[str, Any], etype: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about a JuliaRunJob; failures are logged, never raised."""
        meta = body["metadata"]
        now = now_iso()
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta.get("uid")},
            "type": etype, "reason": reason, "message": message[:1024],
            "source": {"component": COMPONENT, "host": self.host},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": COMPONENT, "reportingInstance": self.host,
        }
        self._count()
        try:
            self.core.create_namespaced_event(meta["namespace"], event)
        except kubernetes.client.ApiException as exc:
            log.warning("cannot post event %s for %s/%s: HTTP %s", reason,
                        meta["namespace"], meta["name"], exc.status)
