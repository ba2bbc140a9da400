"""Every environment variable the operator and the `juliarun` CLI read, and their parsing.

The lists are the reference the docs are checked against (tests/unit/test_release.py):
each name is documented in README.md and docs/install.md. Reading a number from the
environment goes through `env_int` / `env_float`, so a bad value is one line naming the
variable (`EnvVarError`), not a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# How the CLI, the Python client and the operator reach JuliaRun (juliarun.Context.from_env).
CONNECTION: dict[str, str] = {
    "JULIARUN_URL": "JuliaRun's address",
    "JULIARUN_TOKEN": "the token itself",
    "JULIARUN_TOKEN_FILE": "a file holding the token",
    "JULIARUN_NAMESPACE": "the JuliaRun namespace jobs go to",
    "JULIARUN_CA_FILE": "CA bundle to verify JuliaRun's TLS certificate",
    "JULIARUN_INSECURE": "true: do not verify JuliaRun's TLS certificate",
    "JULIARUN_TIMEOUT": "connect and read time-out of JuliaRun calls, in seconds",
    "JULIARUN_ALLOW_INSECURE_HTTP": "true: allow plain http to a host other than loopback (warned)",
    "JULIARUN_USE_ENV_PROXY": "true: honour the HTTP(S)_PROXY variables (ignored otherwise)",
}

# `juliarun operator` only: the defaults of its flags.
OPERATOR: dict[str, str] = {
    "KUBECONFIG": "kubeconfig file (--kubeconfig)",
    "WATCH_NAMESPACES": "comma-separated namespaces to watch (--watch-namespace)",
    "JULIARUN_SYNC_INTERVAL": "seconds between snapshots when nothing waits (--sync-interval)",
    "JULIARUN_HEALTH_INTERVAL": "seconds between getSystemStatus checks (--health-interval)",
    "JULIARUN_RESYNC_INTERVAL": "seconds between full passes with a fresh list (--resync-interval)",
    "JULIARUN_SUBMIT_LANDING_WINDOW": "seconds a lost submitJob may still land (--submit-landing-window)",
    "METRICS_PORT": "port of /metrics, /healthz, /readyz (--metrics-port)",
    "LOG_FORMAT": "text or json (--log-format)",
    "LEASE_NAME": "the Lease that elects the acting replica (--lease-name)",
    "LEASE_NAMESPACE": "its namespace, default the pod's (--lease-namespace)",
    "LEASE_DURATION": "seconds before a silent replica's Lease is taken over (--lease-duration)",
    "POD_NAME": "this replica's name in the Lease (default: the host name)",
    "WORKERS": "objects handled at once (--workers)",
    "JULIARUN_MAX_CALLS": "JuliaRun calls under way at once per connection (--max-calls)",
    "JULIARUN_TENANT_ALLOWED_HOSTS": "hosts a credentials Secret's url may name, comma-separated",
    "NAMESPACE_CONNECTIONS": "namespace=Secret pairs: the administrator's connection per namespace",
    "ADOPT_NAMESPACES": "namespaces that may adopt jobs and name them freely; * for all (--adopt-namespace)",
    "ENDPOINT_RANGES": "CONNECTION=RANGE entries: where a connection's Services may point (--endpoint-range)",
}

# Read by the Python client inside a JuliaRun job (juliarun.current_job, Julia's `self()`).
JOB: dict[str, str] = {
    "JRUN_TYPE": "the job type of the JuliaRun job this process runs in",
    "JRUN_NAME": "the name of that job",
}

# Every variable a running operator reads (documented in README.md and docs/install.md).
ALL: dict[str, str] = {**CONNECTION, **OPERATOR}
# Every variable the package reads, bar the development tools (devcluster, gen).
KNOWN: dict[str, str] = {**ALL, **JOB}


class EnvVarError(ValueError):
    """An environment variable holds a value its reader cannot use."""


def _get(name: str, environ: Mapping[str, str] | None) -> str | None:
    if name not in KNOWN:  # keeps the lists above complete
        raise KeyError(f"{name} is not listed in juliarun_operator.envvars")
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def env_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """The integer in `name`, or `default` when it is unset or empty."""
    value = _get(name, environ)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise EnvVarError(f"environment variable {name}={value!r}: expected a whole number") from None


def env_float(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """The number in `name`, or `default` when it is unset or empty."""
    value = _get(name, environ)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise EnvVarError(f"environment variable {name}={value!r}: expected a number") from None


def env_str(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The text in `name`, or `default` when it is unset or empty."""
    value = _get(name, environ)
    return default if value is None else value


def env_list(name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The comma-separated items in `name`, blanks dropped."""
    return [item.strip() for item in (_get(name, environ) or "").split(",") if item.strip()]
