"""What a tenant may hand the operator: URLs it may point at, Secrets it may have read.

Pure functions and constants, no Kubernetes calls: the reconciler applies them.

- `check_tenant_url(url, allowed_hosts)`: a `credentialsRef` URL is refused unless it is
  plain http(s) to a host and port on the administrator's allow-list (an entry without a
  port allows the scheme's default port only), with no userinfo, query or fragment (a
  query would choose the whole path of every call; userinfo is a credential in the clear).
  Nothing is resolved: the check is on the text, before any connection. A refusal does not
  tell the tenant what the list holds.
- `SECRET_LABEL`: a Secret is read for a tenant (credentialsRef, passwordSecretRef) only
  if it carries `juliarun.dev/credentials: "true"`, so someone who may create a JuliaRunJob
  but not read Secrets cannot hand the operator a Secret that was never meant for it.

The administrator's settings come from the environment (the chart sets them):
JULIARUN_TENANT_ALLOWED_HOSTS (comma-separated), JULIARUN_ALLOW_INSECURE_HTTP.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import urllib3.util

from .juliarun.context import TRUE_WORDS, is_loopback, public_url

ALLOWED_HOSTS_ENV = "JULIARUN_TENANT_ALLOWED_HOSTS"
ALLOW_INSECURE_HTTP_ENV = "JULIARUN_ALLOW_INSECURE_HTTP"
SECRET_LABEL = "juliarun.dev/credentials"  # noqa: S105 (a label's name, not a password)
SECRET_LABEL_VALUE = "true"  # noqa: S105

# An allow-list entry: "*" (any host), "host", "host:port", "*.domain" or "*.domain:port";
# hosts are DNS names, IPv4 addresses or bracketed IPv6 addresses. Without a port, the
# scheme's default (443 for https, 80 for http): a host's other ports are other services.
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_ENTRY_RE = re.compile(rf"^(\*|(\*\.)?{_LABEL}(\.{_LABEL})*|\[[0-9a-f:.]+\])(:[0-9]{{1,5}})?$")
# Characters that parsers disagree about (a backslash is a slash to browsers and some
# libraries, not to urlsplit) or that have no place in a URL.
_UNSAFE_RE = re.compile(r"[\x00-\x20\x7f\\]")


class TenantURLError(ValueError):
    """A tenant-given URL the operator will not connect to; the message says why."""


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """The allow-list from its environment form, `host[:port]` entries separated by commas.

    ValueError names an entry that is not a host, `*.domain` or `*`.
    """
    entries = tuple(e.strip().lower() for e in text.split(",") if e.strip())
    for entry in entries:
        if not _ENTRY_RE.fullmatch(entry) or entry.startswith("*.*"):
            raise ValueError(f"{ALLOWED_HOSTS_ENV}: {entry!r} is not a host, host:port, *.domain or *")
    return entries


def allowed_hosts_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if environ is None else environ
    return parse_allowed_hosts(env.get("JULIARUN_TENANT_ALLOWED_HOSTS", ""))


def insecure_http_allowed(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("JULIARUN_ALLOW_INSECURE_HTTP", "").lower() in TRUE_WORDS


def _split_entry(entry: str) -> tuple[str, int | None]:
    """An entry's host (brackets off) and its port, None if it names none."""
    if re.search(r":[0-9]+$", entry) and not entry.endswith("]"):
        host, _, port_text = entry.rpartition(":")
        return host.strip("[]"), int(port_text)
    return entry.strip("[]"), None


def _host_matches(host: str, port: int, default_port: int, entry: str) -> bool:
    entry, entry_port = _split_entry(entry)
    if port != (default_port if entry_port is None else entry_port):
        return False
    if entry == "*":
        return True
    if entry.startswith("*."):
        return host.endswith(entry[1:]) and host != entry[2:]
    try:  # IPv6 (and IPv4) compare as addresses: [::1] and [0:0::1] are one host
        return ipaddress.ip_address(host) == ipaddress.ip_address(entry)
    except ValueError:
        return host == entry


def check_tenant_url(
    url: object, allowed_hosts: Iterable[str], *, allow_insecure_http: bool = False, key: str = "url"
) -> str:
    """`url` if a tenant may point the operator at it; TenantURLError naming what is wrong.

    `key` names the field in messages (e.g. "credentialsRef url"). Refused: anything not
    a string; whitespace, control characters or backslashes; a scheme other than http
    and https; userinfo; a query or a fragment (even empty: `?` or `#`); no host; a host
    and port outside `allowed_hosts` (an empty list allows none; an entry without a port
    allows the scheme's default port only); plain http to a host other than loopback (an
    address, or a loopback name listed exactly) unless `allow_insecure_http`.
    """
    if not isinstance(url, str) or not url:
        raise TenantURLError(f"{key}: expected a URL such as https://juliarun.example.com")
    if _UNSAFE_RE.search(url):
        raise TenantURLError(f"{key}: whitespace, control characters and backslashes are not allowed")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TenantURLError(f"{key}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise TenantURLError(f"{key}: the scheme must be https or http, not {parts.scheme or '(none)'!r}")
    if "@" in parts.netloc:
        raise TenantURLError(f"{key}: userinfo (user:password@) is not allowed; the token goes in the Secret")
    if parts.query or "?" in url:
        raise TenantURLError(f"{key}: a query (?...) is not allowed")
    if parts.fragment or "#" in url:
        raise TenantURLError(f"{key}: a fragment (#...) is not allowed")
    if not host:
        raise TenantURLError(f"{key}: no host")
    # requests parses URLs with urllib3: both must see the same host, or the check would
    # be of a URL other than the one connected to.
    try:
        other = (urllib3.util.parse_url(url).host or "").strip("[]").lower().rstrip(".")
    except ValueError:
        other = None
    if other != host:
        raise TenantURLError(f"{key}: the host cannot be read unambiguously")
    allowed = list(allowed_hosts)
    if not allowed:
        raise TenantURLError(
            f"{key}: the administrator allows no JuliaRun hosts for tenants "
            f"({ALLOWED_HOSTS_ENV} is empty); leave credentialsRef out to use the default"
        )
    default_port = 443 if parts.scheme == "https" else 80
    if not any(_host_matches(host, port, default_port, entry) for entry in allowed):
        # What the list holds is the administrator's: a tenant learns only that this is not on it.
        raise TenantURLError(
            f"{key}: {host}:{port} is not on the administrator's allow-list of JuliaRun hosts "
            f"for tenants ({ALLOWED_HOSTS_ENV}, the chart's tenancy.allowedHosts)"
        )
    if parts.scheme == "http" and not _loopback(host, allowed) and not allow_insecure_http:
        raise TenantURLError(
            f"{key}: plain http to {public_url(url)} is not allowed (the token would "
            "cross the network unencrypted); use https"
        )
    return url


def _loopback(host: str, allowed: Iterable[str]) -> bool:
    """Plain http to `host` stays on this machine: a loopback address, or a loopback name
    (localhost, *.localhost) the administrator listed as it is. A name is only as local as
    the resolver makes it, so no wildcard vouches for one."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return is_loopback(host) and any(_split_entry(entry)[0] == host for entry in allowed)


def secret_is_marked(labels: Mapping[str, str] | None) -> bool:
    """The Secret's owner marked it for the operator (`juliarun.dev/credentials: "true"`)."""
    return (labels or {}).get(SECRET_LABEL) == SECRET_LABEL_VALUE


def unmarked_secret_message(namespace: str, name: str) -> str:
    """What to tell a tenant whose object names a Secret not marked for the operator."""
    return (
        f"Secret {namespace}/{name} is not marked for the operator: label it "
        f"{SECRET_LABEL}={SECRET_LABEL_VALUE} "
        f"(kubectl label secret {name} -n {namespace} {SECRET_LABEL}={SECRET_LABEL_VALUE})"
    )
