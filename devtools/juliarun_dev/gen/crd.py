"""The JuliaRunJob CRD: the status schema, the printer columns, the whole definition and
its YAML text."""

from __future__ import annotations

import yaml

from juliarun_operator.reconcile.decision import status as st

from .common import GROUP, KIND, PHASES, PLURAL, SINGULAR, VERSION, Schema, header
from .spec import spec_schema

# --- status ------------------------------------------------------------------------------


CONDITION_TYPES = (st.READY, st.RECONCILING, st.STALLED, st.COMPLETE, st.FAILED, st.SUSPENDED)
# `kubectl explain jrj.status.conditions` shows this: every type the operator sets, and when.
CONDITIONS_DESCRIPTION = (
    f"Conditions of the job, one of each type. {st.READY}: at the requested scale, or completed. "
    f"{st.RECONCILING}: work pending (a submit, a scale, a change, a retry). "
    f"{st.STALLED}: an error no retry will fix (a refused spec, a name conflict, a failed or vanished job). "
    f"Batch types also: {st.COMPLETE} (an attempt succeeded), {st.FAILED} (failed for good: "
    f"JobFailed, BackoffLimitExceeded or DeadlineExceeded) and {st.SUSPENDED} (spec.suspend). "
    "Each has a status (True, False, Unknown), a reason, a message and the observedGeneration it is for."
)


def _condition_schema() -> Schema:
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "description": f"The condition: {', '.join(CONDITION_TYPES)}."},
            "status": {
                "type": "string",
                "enum": ["True", "False", "Unknown"],
                "description": "Status of the condition.",
            },
            "reason": {"type": "string", "description": "Machine-readable reason for the last transition."},
            "message": {"type": "string", "description": "Human-readable detail of the last transition."},
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the status last changed.",
            },
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The spec generation the condition was set for.",
            },
        },
    }


def status_schema() -> Schema:
    # Every field the operator writes is declared, so the API server prunes none of them.
    return {
        "type": "object",
        "description": "What the operator last observed of the JuliaRun job.",
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The spec generation last acted on.",
            },
            "jobName": {"type": "string", "description": "Name of the job in JuliaRun."},
            "phase": {"type": "string", "enum": PHASES, "description": "Summary of the job's state."},
            "submitted": {"type": "boolean", "description": "The job was submitted to JuliaRun."},
            "parametersHash": {
                "type": "string",
                "description": "Digest of the parameters last sent to JuliaRun; "
                "a spec whose digest differs is sent again with updateJob.",
            },
            "connection": {
                "type": "string",
                "description": "The JuliaRun connection the job was submitted through: "
                "default, or Secret/<name> (spec.credentialsRef); it cannot "
                "change once the job exists.",
            },
            "managementPolicy": {
                "type": "string",
                "enum": ["Observe"],
                "description": "Observe while the operator only mirrors the job (spec.managementPolicy "
                "Observe); switching to Full then takes the job over, where the adoption rules allow.",
            },
            "startTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the job began to run (reset on resume after suspend); "
                "activeDeadlineSeconds counts from here.",
            },
            "completionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the job completed successfully.",
            },
            "attempts": {
                "type": "integer",
                "description": "Attempts begun: the current one's number. Attempt n > 1 runs "
                "as JuliaRun job <name>-n.",
            },
            "failed": {"type": "integer", "description": "Attempts that failed."},
            "pastAttempts": {
                "type": "array",
                "maxItems": 20,
                "description": "The attempts before the current one (the last 20): how each ended.",
                "items": {
                    "type": "object",
                    "properties": {
                        "attempt": {"type": "integer", "description": "Its number."},
                        "jobName": {"type": "string", "description": "Its JuliaRun job."},
                        "result": {
                            "type": "string",
                            "enum": ["Failed", "Suspended"],
                            "description": "How it ended.",
                        },
                        "message": {"type": "string", "description": "Why."},
                        "endTime": {"type": "string", "format": "date-time", "description": "When."},
                    },
                },
            },
            "succeeded": {"type": "integer", "description": "1 once an attempt has succeeded."},
            "lastLogs": {
                "type": "string",
                "maxLength": 4096,
                "description": "The last log lines of the latest attempt that ended.",
            },
            "submitTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the operator last sent submitJob; a retry waits "
                "for that request to land or time out before deciding again.",
            },
            "created": {"type": "boolean", "description": "JuliaRun has created the job."},
            "completed": {"type": "boolean", "description": "The job has finished."},
            "workersStarted": {"type": "integer", "description": "Workers (or units) started."},
            "workersSucceeded": {"type": "integer", "description": "Workers (or units) that succeeded."},
            "scale": {
                "type": "object",
                "description": "Workers running and requested, as JuliaRun reports them.",
                "properties": {
                    "running": {"type": "integer", "description": "Workers running."},
                    "requested": {"type": "integer", "description": "Workers requested."},
                },
            },
            "workers": {"type": "string", "description": "Workers as running/requested."},
            "endpoints": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Addresses at which the job's ports are reachable.",
            },
            "binding": {
                "type": "object",
                "description": "The Service Binding spec's pointer: the connection Secret "
                "(spec.writeConnectionSecretToRef) the operator keeps.",
                "properties": {"name": {"type": "string", "description": "Name of the Secret."}},
            },
            "message": {"type": "string", "description": "Detail of the phase, e.g. the last error."},
            "lastSyncTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the operator last read the job from JuliaRun.",
            },
            "conditions": {
                "type": "array",
                "description": CONDITIONS_DESCRIPTION,
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


# --- the CRD -----------------------------------------------------------------------------


def printer_columns() -> list[Schema]:
    return [
        {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Workers", "type": "string", "jsonPath": ".status.workers"},
        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoints[0]"},
        {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempts", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


# Deleting the CRD deletes every JuliaRunJob (and so, through the finalizer, every JuliaRun
# job): no uninstall or prune may do it. Helm never deletes crds/ but a chart that templates
# them would; Argo CD neither prunes nor deletes it with the Application; Flux does not prune it.
CRD_KEEP_ANNOTATIONS = {
    "helm.sh/resource-policy": "keep",
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false,ServerSideApply=true",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def crd() -> Schema:
    schema = {
        "type": "object",
        "description": "A JuliaRun job run through the Kubernetes API.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}", "annotations": CRD_KEEP_ANNOTATIONS},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": ["jrj"],
                "categories": ["juliarun"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.parallelism",
                            "statusReplicasPath": ".status.scale.running",
                        },
                    },
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render_crd() -> str:
    return header("#") + yaml.safe_dump(crd(), sort_keys=False, width=100)
