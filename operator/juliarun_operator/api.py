"""The JuliaRunJob vocabulary: its group, version and kind, the finalizer and annotations the
operator reads, the JuliaRun names of its jobs, and a typed view of its status.

Every layer reads these names from here (the operator, the CLI, the kubectl plugin, the
generators), so a rename is one edit. Plain data and pure functions: no I/O.

Job names: a default name carries a hash of the object's UID. No other object, in this
namespace or another, can come to hold it, so finding it in JuliaRun proves the job is this
object's: no record of the name is needed before `submitJob`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from typing import Any, TypedDict

GROUP, VERSION, PLURAL, KIND = "juliarun.dev", "v1alpha1", "juliarunjobs", "JuliaRunJob"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = "juliarun.dev/finalizer"
PAUSE_ANNOTATION = "juliarun.dev/paused"
ADOPT_ANNOTATION = "juliarun.dev/adopt"
COMPONENT = "juliarun-operator"  # Events' source, the Lease's field manager


class ManagementPolicy(enum.Enum):
    """`spec.managementPolicy`: what the operator may do to the JuliaRun job."""

    FULL = "Full"  # submit, scale, update and delete it
    OBSERVE = "Observe"  # only mirror it (spec.jobName): never a write to JuliaRun


DEFAULT_MANAGEMENT_POLICY = ManagementPolicy.FULL


def management_policy(spec: Mapping[str, Any]) -> ManagementPolicy:
    """The spec's policy; an unknown value counts as Observe, which sends nothing (the CRD
    admits only the enum's values)."""
    value = spec.get("managementPolicy") or DEFAULT_MANAGEMENT_POLICY.value
    try:
        return ManagementPolicy(value)
    except ValueError:
        return ManagementPolicy.OBSERVE


MAX_NAME = 63  # a DNS-1123 label: JuliaRun names Kubernetes objects after its jobs
HASH_LEN = 10


def default_job_name(namespace: str, name: str, uid: str) -> str:
    """`<namespace>-<name>`, shortened to fit, plus a hash of the object's UID."""
    digest = hashlib.sha256(uid.encode()).hexdigest()[:HASH_LEN]
    prefix = f"{namespace}-{name}"[: MAX_NAME - HASH_LEN - 1].replace(".", "-").rstrip("-")
    return f"{prefix}-{digest}"


def attempt_job_name(chosen: str | None, default: str, n: int) -> str:
    """The JuliaRun name of a batch job's attempt `n`: attempt 1 has the object's name (the
    chosen `spec.jobName`, else the default), attempt n > 1 the same with `-n`, cut to fit
    (a default name keeps the UID's hash, so it still proves itself)."""
    base = chosen or default
    if n <= 1:
        return base
    suffix = f"-{n}"
    if chosen:
        return base[: MAX_NAME - len(suffix)].rstrip("-") + suffix
    prefix, digest = base.rsplit("-", 1)
    return prefix[: MAX_NAME - HASH_LEN - 1 - len(suffix)].rstrip("-") + f"-{digest}{suffix}"


class Condition(TypedDict, total=False):
    """A metav1.Condition as status carries it."""

    type: str
    status: str  # "True", "False", "Unknown"
    reason: str
    message: str
    observedGeneration: int
    lastTransitionTime: str


class Scale(TypedDict):
    running: int
    requested: int


class Status(TypedDict, total=False):
    """`status` of a JuliaRunJob, as the operator writes it (the CRD declares the same)."""

    observedGeneration: int
    jobName: str | None  # the external name, recorded before submitJob where it does not prove itself
    submitted: bool
    submitTime: str | None
    connection: str  # "default", "Secret/<name>" or "Admin/<name>": fixed once submitted
    managementPolicy: str | None  # "Observe" while only mirrored: switching to Full is a takeover
    parametersHash: str
    phase: str
    message: str
    created: bool
    completed: bool
    workersStarted: int
    workersSucceeded: int
    scale: Scale
    workers: str  # "running/requested", a printer column
    endpoints: list[str]
    conditions: list[Condition]
    lastSyncTime: str
    lastLogs: str
    # batch jobs
    attempts: int
    failed: int
    succeeded: int
    startTime: str | None
    completionTime: str | None
    history: list[dict[str, Any]]
