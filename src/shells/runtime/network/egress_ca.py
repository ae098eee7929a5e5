"""The instance's egress CA: the authority shells with secrets trust, so the host can answer their
TLS for the hosts their secrets go to (docs/secrets.md).

The control plane keeps the CA in the record, the same for every replica (``control.egress_ca``);
a node agent keeps the one the control plane sends it in its ``data_dir/egress-ca/`` (key 0600).
A CA is valid for ten years; leaf certificates are minted per host name on first use and kept in
memory.
The CA can only sign names (``nameConstraints`` are not used: a secret's hosts are arbitrary public
names), so its key is as sensitive as the secrets key: sealed with it in the record, never in a
shell.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CA_YEARS = 10
_LEAF_DAYS = 90
_MAX_LEAVES = 4096


class EgressCA:
    cert_pem: str
    key_pem: str
    """Sent only to the instance's node agents, whose egress proxies answer for the same CA."""

    def __init__(self, directory: Path, instance: str) -> None:
        """The CA kept in ``directory``, made there first if it holds none."""
        self._lock = threading.Lock()
        found = read_ca_files(directory)
        if found is None:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            found = new_ca_pem(instance)
            fd = os.open(directory / "ca.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(found[0])
            (directory / "ca.crt").write_text(found[1])
        self._use(*found)

    def _use(self, key_pem: str, cert_pem: str) -> None:
        """Sign with this PEM key and certificate from now on."""
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the egress CA's key is not an EC key")
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        if cert.public_key() != key.public_key():
            raise ValueError("the egress CA's certificate is not its key's")
        with self._lock:
            self._key, self._cert = key, cert
            self.key_pem, self.cert_pem = key_pem, cert_pem
            self._leaf_key = ec.generate_private_key(ec.SECP256R1())
            self._contexts: dict[str, ssl.SSLContext] = {}

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for ``host`` signed by the CA (HTTP/1.1 only:
        the proxy reads request heads)."""
        with self._lock:
            ctx = self._contexts.get(host)
            if ctx is None:
                if len(self._contexts) >= _MAX_LEAVES:
                    self._contexts.clear()
                ctx = self._contexts[host] = self._leaf_context(host)
            return ctx

    def _leaf_context(self, host: str) -> ssl.SSLContext:
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self._cert.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(  # strict verifiers (Python 3.13's default context) require it
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM)
        key = self._leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_alpn_protocols(["http/1.1"])
        with tempfile.TemporaryDirectory() as tmp:  # the ssl module loads keys from files only
            path = Path(tmp) / "leaf.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key + chain)
            ctx.load_cert_chain(path)
        return ctx


def read_ca_files(directory: Path) -> tuple[str, str] | None:
    """The PEM key and certificate kept in ``directory`` (``ca.key``, ``ca.crt``), or None."""
    try:
        return (directory / "ca.key").read_text(), (directory / "ca.crt").read_text()
    except FileNotFoundError:
        return None


def new_ca_pem(instance: str) -> tuple[str, str]:
    """A new CA for ``instance``: its PEM key (PKCS#8) and self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Shells egress CA {instance}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365 * _CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_key.decode(), cert.public_bytes(serialization.Encoding.PEM).decode()
