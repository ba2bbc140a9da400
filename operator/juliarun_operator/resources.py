"""From a JuliaRunJob to its JuliaRun job: for `juliarun logs --resource` and `kubectl juliarun`."""

from __future__ import annotations

import atexit
import base64
import json
import os
import tempfile
from dataclasses import dataclass, replace
from typing import Any, cast

from .api import GROUP, PLURAL, VERSION
from .juliarun import Context, Job, JuliaRunError


def load(name: str, namespace: str | None, kubeconfig: str | None) -> tuple[dict[str, Any], str]:
    """A JuliaRunJob, and the namespace it was looked for in (as kubectl picks it: the flag,
    the kubeconfig context's, else `default`). JuliaRunError in kubectl's words otherwise."""
    import kubernetes

    try:
        kubernetes.config.load_kube_config(config_file=kubeconfig)
        _, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
        namespace = namespace or active.get("context", {}).get("namespace") or "default"
    except kubernetes.config.ConfigException:
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            raise JuliaRunError(
                "no kubeconfig: set KUBECONFIG or --kubeconfig (or run this in a pod)"
            ) from None
        namespace = namespace or "default"
    api = kubernetes.client.CustomObjectsApi()
    try:
        # A custom object comes back as parsed JSON, typed `object` by the client.
        obj = cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
    except kubernetes.client.ApiException as exc:
        raise JuliaRunError(kube_error(exc, f'{PLURAL}.{GROUP} "{name}"', namespace)) from None
    return obj, namespace


def kube_error(exc: Any, what: str, namespace: str) -> str:
    """An API server's refusal as kubectl words it: the Status message it sent."""
    try:
        message = str(json.loads(exc.body).get("message") or "")
    except (TypeError, ValueError, AttributeError):
        message = ""
    if exc.status == 404:
        return f'{what} not found in namespace "{namespace}"'
    return message or f"{what}: {exc.status} {exc.reason}"


@dataclass(frozen=True)
class Target:
    """The JuliaRun job a JuliaRunJob's logs come from, and the lines status kept of it."""

    job: Job
    kept: str  # status.lastLogs when the job is the latest attempt's, else ""


def target(obj: dict[str, Any], namespace: str, attempt: int | None = None) -> Target:
    """The current attempt's JuliaRun job, or attempt `attempt`'s."""
    from .reconcile.decision.batch import attempt_name
    from .reconcile.decision.model import ObjectState

    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    job_name = status.get("jobName")
    if not job_name:
        raise JuliaRunError(f'juliarunjob "{name}" in namespace "{namespace}" has no JuliaRun job yet')
    kept = status.get("lastLogs", "")
    current = status.get("attempts") or 1
    if attempt is not None and attempt != current:
        if not 1 <= attempt <= current:
            raise JuliaRunError(
                f'juliarunjob "{name}" in namespace "{namespace}" has no attempt {attempt} '
                f"(attempts: 1-{current})"
            )
        job_name, kept = attempt_name(ObjectState.of(obj), attempt), ""
    return Target(Job(obj["spec"]["type"], job_name), kept)


def connection(
    obj: dict[str, Any], namespace: str, default: Context | None = None
) -> tuple[Context | None, str | None]:
    """The connection that reaches the object's job: its credentialsRef Secret's, or
    `default`. (None, why) when the Secret cannot be read; (default, None) without one."""
    import kubernetes

    ref = obj["spec"].get("credentialsRef")
    if not ref:
        return default, None
    try:
        secret = kubernetes.client.CoreV1Api().read_namespaced_secret(ref["name"], namespace).data or {}
    except kubernetes.client.ApiException as exc:
        why = kube_error(exc, f'secrets "{ref["name"]}"', namespace)
        return None, f"cannot read the credentialsRef Secret: {why}"
    text = {k: base64.b64decode(v).decode() for k, v in secret.items()}
    missing = [key for key in ("url", "token", "namespace") if not text.get(key)]
    if missing:
        return None, f'Secret "{ref["name"]}" in namespace "{namespace}" has no {", ".join(missing)}'
    context = Context(
        url=text["url"],
        token=text["token"],
        namespace=text["namespace"],
        verify=ca_file(text["ca.crt"]) if text.get("ca.crt") else True,
    )
    if default is not None:
        context = replace(context, connect_timeout=default.connect_timeout, read_timeout=default.read_timeout)
    return context, None


def ca_file(pem: str) -> str:
    """A Secret's ca.crt as a file for TLS verification, removed when the process ends."""
    handle, path = tempfile.mkstemp(prefix="juliarun-ca-", suffix=".crt")
    with os.fdopen(handle, "w") as out:
        out.write(pem)
    atexit.register(os.unlink, path)
    return path


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
    obj, namespace = load(name, namespace, kubeconfig)
    found = target(obj, namespace, attempt)
    context, why_not = connection(obj, namespace, default)
    if context is None:
        raise JuliaRunError(why_not or "no connection")
    return found.job, context, found.kept
