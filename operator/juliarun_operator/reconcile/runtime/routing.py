"""Which JuliaRun connection an object uses, and the Secrets behind it.

The administrator maps a namespace to a connection (a Secret of the operator's own
namespace); a tenant may bring one (spec.credentialsRef, a Secret marked for the operator,
its url on the administrator's allow-list); everyone else uses the default. Once an object
has submitted, the connection recorded in its status is the one it keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import decision as d
from ..adapters.kube import SecretProblem
from .connections import Connection, Connections, Credentials
from .credentials import SecretCache

if TYPE_CHECKING:
    from .controller import Config


CONNECTION_KEYS = ("url", "token", "namespace", "ca.crt")  # all a connection Secret is read for


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
        return data[key]

    def wanted(self, obj: d.ObjectState) -> str:
        """The connection spec and administrator choose: a tenant's credentials Secret, the
        administrator's Secret for the namespace, or the default."""
        ref = obj.spec.get("credentialsRef")
        if isinstance(ref, dict) and ref.get("name"):
            return f"Secret/{ref['name']}"
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
