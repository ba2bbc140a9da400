"""Which JuliaRun connection an object uses, and the Secrets behind it.

The administrator maps a namespace to a connection (a Secret of the operator's own
namespace); a tenant may bring one (spec.credentialsRef, a Secret marked for the operator,
its url on the administrator's allow-list); everyone else uses the default. Once an object
has submitted, the connection recorded in its status is the one it keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...juliarun.redact import register_secret, unregistrable
from .. import decision as d
from ..adapters.kube import SecretProblem
from .connections import Connection, Connections, Credentials
from .credentials import SecretCache

if TYPE_CHECKING:
    from .controller import Config


CONNECTION_KEYS = ("url", "token", "namespace", "ca.crt")  # all a connection Secret is read for
MIN_TOKEN_LENGTH = 16  # a tenant's token: every form of it is scrubbed from every message


class Routing:
    def __init__(self, config: Config, connections: Connections, secrets: SecretCache):
        self.config, self.connections, self.secrets = config, connections, secrets

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        try:
            data = self.secrets.get(namespace, name, (key,), marked=True)
        except SecretProblem as exc:
            raise LookupError(str(exc)) from None
        if key not in data:
            raise LookupError(f"Secret {namespace}/{name} has no key {key!r}")
        # A tenant's secret becomes a pattern that scrubs every message: one that would match
        # ordinary text (a word, a number, URL syntax) is refused, and the rest is the
        # namespace's own compartment of patterns, which no other namespace can crowd out.
        why = unregistrable(data[key])
        if why:
            raise LookupError(f"Secret {namespace}/{name}: the value of key {key!r} {why}")
        register_secret(data[key], owner=namespace)
        return data[key]

    def wanted(self, obj: d.ObjectState) -> str:
        """The connection spec and administrator choose: a tenant's credentials Secret, the
        administrator's Secret for the namespace, or the default."""
        own = _tenants_own(obj)
        if own:
            return own
        mapped = self.config.namespace_connections.get(obj.namespace)
        return f"Admin/{mapped}" if mapped else d.DEFAULT_CONNECTION

    def connection(self, obj: d.ObjectState) -> tuple[Connection | None, str, bool]:
        """The object's connection (fixed once recorded in status), or why there is none."""
        which = obj.status.get("connection") or self.wanted(obj)
        if which == d.DEFAULT_CONNECTION:
            return self.connections.default, "", False
        kind, _, secret = which.partition("/")
        admin = kind == "Admin"
        namespace = self.config.own_namespace if admin else obj.namespace
        try:
            data = self.secrets.get(namespace, secret, CONNECTION_KEYS, marked=not admin)
        except SecretProblem as exc:
            return None, f"credentials: {exc}", True
        missing = [k for k in ("url", "token", "namespace") if not data.get(k)]
        if missing:
            return None, f"credentials: Secret {namespace}/{secret} has no key {missing[0]!r}", True
        if len(data["token"]) < MIN_TOKEN_LENGTH and not admin:  # as a pattern it would censor ordinary text
            return (
                None,
                f"credentials: Secret {namespace}/{secret}: token shorter than {MIN_TOKEN_LENGTH}",
                True,
            )
        refused = "" if admin or not self.config.check_url else self.config.check_url(data["url"])
        if refused:
            return None, f"credentials: Secret {namespace}/{secret}: {refused}", True
        return (
            self.connections.get(
                Credentials(data["url"], data["token"], data["namespace"], data.get("ca.crt"))
            ),
            "",
            False,
        )


def _tenants_own(obj: d.ObjectState) -> str:
    ref = obj.spec.get("credentialsRef")
    return f"Secret/{ref['name']}" if isinstance(ref, dict) and ref.get("name") else ""


def tenants_server(obj: d.ObjectState) -> bool:
    """Whether the object's JuliaRun is one its tenant named (credentialsRef): any service on
    an allowed host, whose replies are not for the tenant to read (the administrator's are)."""
    which = obj.status.get("connection") or _tenants_own(obj)
    return which.startswith("Secret/")
