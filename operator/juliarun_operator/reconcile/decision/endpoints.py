"""Where a job's Service may point, pure (CVE-2021-25740: whoever writes a Service's
addresses steers its traffic): the job's ports, the address ranges and host-name suffixes
the administrator allows for its connection (`Allowed`), and JuliaRun's endpoints sorted
into what may be published and what is refused, with why.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ...juliarun import jobtypes as jt

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HOST_NAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Allowed(NamedTuple):
    """Where a connection's jobs may point a Service: address ranges, and host-name
    suffixes (".example.com") an ExternalName Service may name. Empty: nowhere."""

    networks: tuple[Network, ...] = ()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str]) -> Allowed:
        """CIDR ranges and .suffixes; ValueError names a bad entry."""
        networks: list[Network] = []
        suffixes: list[str] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            if entry.startswith("."):
                if not HOST_NAME_RE.match(entry[1:].lower()):
                    raise ValueError(f"{entry!r} is not a host-name suffix such as .example.com")
                suffixes.append(entry.lower())
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is neither an address range (10.0.0.0/8) nor a host-name suffix "
                    "(.example.com)"
                ) from None
        return cls(tuple(networks), tuple(suffixes))

    def address(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)

    def host(self, name: str) -> bool:
        return any(name.endswith(s) for s in self.suffixes)

    def describe(self) -> str:
        shown = [str(n) for n in self.networks] + list(self.suffixes)
        return ", ".join(shown) if shown else "none"


class Port(NamedTuple):
    name: str
    container: int
    service: int


class Reported(NamedTuple):
    """What JuliaRun's endpoints say, sorted by what may be published."""

    addresses: tuple[str, ...] = ()  # allowed IPv4 addresses, in JuliaRun's order
    targets: Mapping[str, int] = {}  # port name -> the port JuliaRun reports for it
    host: str = ""  # an allowed host name (ExternalName), where no address is reported
    refused: tuple[str, ...] = ()  # endpoints left out, each with why


def ports(spec: Mapping[str, Any]) -> tuple[Port, ...]:
    """The job's ports: spec.ports, else its type's defaults (what JuliaRun exposes then)."""
    given = spec.get("ports")
    if isinstance(given, list):
        try:
            return tuple(Port(p["name"], int(p["containerPort"]), int(p["servicePort"])) for p in given)
        except (KeyError, TypeError, ValueError):
            return ()  # the parameters' check says what is wrong with them
    job_type = jt.JOB_TYPES.get(spec.get("type", ""))
    defaults = (job_type.defaults().get("ports") if job_type else None) or {}
    return tuple(Port(name, pair[0], pair[1]) for name, pair in defaults.items())


def parse_endpoint(text: str) -> tuple[str, int | None] | None:
    """(host, port) of an endpoint as JuliaRun reports it: a URL or `host:port`."""
    text = text.strip()
    try:
        parts = urlsplit(text if "//" in text else f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    return (host, port) if host else None


def sort_endpoints(endpoints: Sequence[str], job_ports: Sequence[Port], allowed: Allowed) -> Reported:
    """The addresses and host names that may be published, each port's target, and the
    endpoints refused (outside the allowed ranges, not one of the ports, IPv6)."""
    addresses: list[str] = []
    targets: dict[str, int] = {}
    hosts: list[str] = []
    refused: list[str] = []
    for text in endpoints:
        parsed = parse_endpoint(text)
        if parsed is None:
            refused.append(f"{text!r} is not an address")
            continue
        host, number = parsed
        port = _port_of(number, job_ports)
        if port is None:
            refused.append(f"{text} is not one of the job's ports")
            continue
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if not HOST_NAME_RE.match(host.lower()):
                refused.append(f"{text} is not an address")
            elif not allowed.host(host.lower()):
                refused.append(f"{text}: host name not allowed for this connection")
            elif host.lower() not in hosts:
                hosts.append(host.lower())
            continue
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
            # The API server refuses them in an EndpointSlice: no address of a pod elsewhere.
            refused.append(f"{text} is not an address a Service can point to")
        elif not allowed.address(ip):
            refused.append(f"{text} is outside the ranges allowed for this connection")
        elif ip.version != 4:
            refused.append(f"{text}: IPv6 addresses are not published")
        else:
            if str(ip) not in addresses:
                addresses.append(str(ip))
            targets.setdefault(port.name, number if number is not None else port.service)
    return Reported(tuple(addresses), targets, "" if addresses or not hosts else hosts[0], tuple(refused))


def _port_of(number: int | None, job_ports: Sequence[Port]) -> Port | None:
    """Which of the job's ports an endpoint is: by service port, else by container port;
    one without a number is the job's only port."""
    if number is None:
        return job_ports[0] if len(job_ports) == 1 else None
    return next((p for p in job_ports if p.service == number), None) or next(
        (p for p in job_ports if p.container == number), None
    )
