"""From a JuliaRunJob to its JuliaRun job: for `juliarun logs --resource` and `kubectl juliarun`."""

from __future__ import annotations

import base64
from typing import Any, cast

from .juliarun import Context, Job, JuliaRunError
from .reconcile.kube import GROUP, PLURAL, VERSION


def resolve(
    name: str, namespace: str | None, kubeconfig: str | None, default: Context
) -> tuple[Job, Context]:
    """The JuliaRun job a JuliaRunJob stands for, and the connection that reaches it."""
    import kubernetes

    try:
        kubernetes.config.load_kube_config(config_file=kubeconfig)
        _, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
        namespace = namespace or active.get("context", {}).get("namespace") or "default"
    except kubernetes.config.ConfigException:
        kubernetes.config.load_incluster_config()
        namespace = namespace or "default"
    api = kubernetes.client.CustomObjectsApi()
    try:
        # A custom object comes back as parsed JSON, typed `object` by the client.
        obj = cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
    except kubernetes.client.ApiException as exc:
        raise JuliaRunError(f"JuliaRunJob {namespace}/{name}: HTTP {exc.status} {exc.reason}") from None
    job_name = (obj.get("status") or {}).get("jobName")
    if not job_name:
        raise JuliaRunError(f"JuliaRunJob {namespace}/{name} has no JuliaRun job yet")
    job = Job(obj["spec"]["type"], job_name)
    ref = obj["spec"].get("credentialsRef")
    if not ref:
        return job, default
    secret = kubernetes.client.CoreV1Api().read_namespaced_secret(ref["name"], namespace).data or {}
    text = {k: base64.b64decode(v).decode() for k, v in secret.items()}
    return job, Context(
        url=text["url"],
        token=text["token"],
        namespace=text["namespace"],
        connect_timeout=default.connect_timeout,
        read_timeout=default.read_timeout,
    )
