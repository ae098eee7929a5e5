"""A test CA of its own and one server certificate it signs for a few DNS names (wildcards too),
written as PEM files: what tests give a TLS server under test and the client that must trust it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    """The CA certificate a client trusts."""
    cert: Path
    """The server certificate."""
    key: Path
    """Its private key (PKCS#8)."""


def issue(directory: Path, names: tuple[str, ...], ca_name: str = "shells test CA") -> TlsFiles:
    """Write ``ca.pem``, ``server.crt`` and ``server.key`` for ``names`` into ``directory`` (two days)."""
    return issue_each(directory, {"server": names}, ca_name)["server"]


def issue_each(directory: Path, leaves: dict[str, tuple[str, ...]], ca_name: str) -> dict[str, TlsFiles]:
    """One CA (``ca.pem``) and, for each ``leaves`` entry, ``<entry>.crt`` and ``<entry>.key`` for its
    names, all signed by it: the certificates of the members of one cluster, say (two days)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(issuer)
        .issuer_name(issuer)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    issued = {}
    for entry, names in leaves.items():
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        files = TlsFiles(directory / "ca.pem", directory / f"{entry}.crt", directory / f"{entry}.key")
        files.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        issued[entry] = files
    return issued
