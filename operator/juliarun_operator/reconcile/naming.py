"""External job names: deterministic, within JuliaRun's limits, distinct across namespaces."""

from __future__ import annotations

import hashlib

MAX_NAME = 63  # a DNS-1123 label: JuliaRun names Kubernetes objects after its jobs
HASH_LEN = 8


def default_job_name(namespace: str, name: str) -> str:
    """`<namespace>-<name>`, shortened to fit, plus a hash of both.

    The hash keeps names apart that the dash would otherwise join the same way
    ("a-b"/"c" and "a"/"b-c"), and names that differ only past the cut.
    """
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:HASH_LEN]
    prefix = f"{namespace}-{name}"[: MAX_NAME - HASH_LEN - 1].rstrip("-.")
    return f"{prefix}-{digest}".replace(".", "-")
