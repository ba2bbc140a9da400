"""From a JuliaRunJob to its JuliaRun job: for `juliarun logs --resource` and `kubectl juliarun`."""

from __future__ import annotations

import base64
from typing import Any, cast

from .api import GROUP, PLURAL, VERSION
from .juliarun import Context, Job, JuliaRunError


def load(name: str, namespace: str | None, kubeconfig: str | None) -> tuple[dict[str, Any], str]:
    """A JuliaRunJob, and the namespace it was looked for in."""
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
    return obj, namespace


def attempts(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attempt of a batch JuliaRunJob, oldest first: the past ones as status keeps them
    and the current one (attempt, jobName, result, message, endTime)."""
    status = obj.get("status") or {}
    rows = [dict(past) for past in status.get("pastAttempts") or []]
    if status.get("jobName"):
        ended = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            ),
            None,
        )
        rows.append(
            {
                "attempt": status.get("attempts") or 1,
                "jobName": status["jobName"],
                "result": ended["type"] if ended else status.get("phase", ""),
                "message": ended.get("message", "") if ended else status.get("message", ""),
                "endTime": ended.get("lastTransitionTime", "") if ended else "",
            }
        )
    return rows


def resolve(
    name: str, namespace: str | None, kubeconfig: str | None, default: Context, attempt: int | None = None
) -> tuple[Job, Context, str]:
    """The JuliaRun job a JuliaRunJob stands for (its current attempt's, or attempt
    `attempt`'s), the connection that reaches it, and the job's last lines as status kept them."""
    import kubernetes

    from .reconcile.decision.batch import attempt_name
    from .reconcile.decision.model import ObjectState

    obj, namespace = load(name, namespace, kubeconfig)
    status = obj.get("status") or {}
    job_name = status.get("jobName")
    if not job_name:
        raise JuliaRunError(f"JuliaRunJob {namespace}/{name} has no JuliaRun job yet")
    kept = status.get("lastLogs", "")
    if attempt is not None and attempt != (status.get("attempts") or 1):
        if not 1 <= attempt <= (status.get("attempts") or 1):
            raise JuliaRunError(f"JuliaRunJob {namespace}/{name} has no attempt {attempt}")
        job_name, kept = attempt_name(ObjectState.of(obj), attempt), ""
    job = Job(obj["spec"]["type"], job_name)
    ref = obj["spec"].get("credentialsRef")
    if not ref:
        return job, default, kept
    secret = kubernetes.client.CoreV1Api().read_namespaced_secret(ref["name"], namespace).data or {}
    text = {k: base64.b64decode(v).decode() for k, v in secret.items()}
    return (
        job,
        Context(
            url=text["url"],
            token=text["token"],
            namespace=text["namespace"],
            connect_timeout=default.connect_timeout,
            read_timeout=default.read_timeout,
        ),
        kept,
    )
