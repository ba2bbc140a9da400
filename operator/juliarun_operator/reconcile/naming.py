"""External job names: within JuliaRun's limits, and this object's alone.

A default name carries a hash of the object's UID. No other object, in this namespace or
another, can come to hold it, so finding it in JuliaRun proves the job is this object's:
no record of the name is needed before `submitJob`.
"""

from __future__ import annotations

import hashlib

MAX_NAME = 63  # a DNS-1123 label: JuliaRun names Kubernetes objects after its jobs
HASH_LEN = 10


def default_job_name(namespace: str, name: str, uid: str) -> str:
    """`<namespace>-<name>`, shortened to fit, plus a hash of the object's UID."""
    digest = hashlib.sha256(uid.encode()).hexdigest()[:HASH_LEN]
    prefix = f"{namespace}-{name}"[: MAX_NAME - HASH_LEN - 1].replace(".", "-").rstrip("-")
    return f"{prefix}-{digest}"
