"""Self-signed certificates made in the test run, with the `cryptography` package.

A module of its own (not conftest) so that tests can import `make_cert` by a
name no other test directory uses.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass
class CertFiles:
    cert: str
    key: str
    combined: str


def make_cert(directory: Path, name: str, kind: str = "ec", key_password: bytes | None = None) -> CertFiles:
    """A self-signed certificate for "localhost" (also the CA the client trusts)."""
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(key_password)
        if key_password
        else serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    paths = CertFiles(str(directory / f"{name}.crt"), str(directory / f"{name}.key"), str(directory / f"{name}.pem"))
    Path(paths.cert).write_bytes(cert_pem)
    Path(paths.key).write_bytes(key_pem)
    Path(paths.combined).write_bytes(cert_pem + key_pem)
    return paths
