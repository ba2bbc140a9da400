"""Certificates and kubeconfigs of the local cluster (devcluster, devnode): a CA, the API
server's serving certificate, an admin client certificate and the service-account key pair."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import yaml

# 10.244.0.1: the node bridge address the API server listens on with a node (devnode/);
# 10.0.0.1: the `kubernetes` Service.
_SANS = [
    "IP:127.0.0.1",
    "DNS:localhost",
    "IP:10.244.0.1",
    "IP:10.0.0.1",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
]
_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {sans}
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
""".replace("{sans}", ",".join(_SANS))


def _openssl(*args: str, cwd: Path) -> None:
    from .devcluster import DevClusterError  # here: devcluster imports this module

    if shutil.which("openssl") is None:
        raise DevClusterError("openssl not found (Debian/Ubuntu: apt-get install openssl)")
    # openssl from PATH, with arguments we make.
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)  # noqa: S603, S607
    if result.returncode != 0:
        raise DevClusterError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_pki(pki: Path) -> None:
    """A CA, the apiserver's serving cert, an admin client cert and the service-account key pair."""
    pki.mkdir(mode=0o700, parents=True)
    (pki / "openssl.cnf").write_text(_OPENSSL_CONFIG)
    ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "365",
        "-config",
        "openssl.cnf",
    ]
    signed = ["-CA", "ca.crt", "-CAkey", "ca.key"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=juliarun-dev-ca",
        "-extensions",
        "ca_ext",
        cwd=pki,
    )
    _openssl(
        "req",
        "-x509",
        *ec,
        *signed,
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.crt",
        "-subj",
        "/CN=kube-apiserver",
        "-extensions",
        "server_ext",
        cwd=pki,
    )
    # O=system:masters: the group that RBAC's bootstrap policy makes cluster-admin.
    _openssl(
        "req",
        "-x509",
        *ec,
        *signed,
        "-keyout",
        "admin.key",
        "-out",
        "admin.crt",
        "-subj",
        "/O=system:masters/CN=juliarun-admin",
        "-extensions",
        "client_ext",
        cwd=pki,
    )
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=pki)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, server: str, pki: Path) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    # Certificates are embedded so the file stays usable wherever it is copied.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "juliarun-dev",
                "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": "juliarun-admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [
            {"name": "juliarun-dev", "context": {"cluster": "juliarun-dev", "user": "juliarun-admin"}}
        ],
        "current-context": "juliarun-dev",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # It holds the admin key: private before the first byte is written.
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
