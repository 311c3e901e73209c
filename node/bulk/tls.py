"""The bulk TLS listener's certificate: self-signed, made at start, pinned through the ticket.

No CA is involved: the fetcher learns the certificate's sha256 in the ticket, over the
libp2p connection that already authenticated the provider's peer ID, and accepts exactly
that certificate (``aiohttp.Fingerprint``). An ECDSA P-256 key is made in milliseconds, so a
new one per start costs nothing and no key outlives the process on disk longer than needed.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class Certificate:
    context: ssl.SSLContext
    sha256: bytes  # of the DER certificate: what aiohttp.Fingerprint compares


def make_certificate(directory: Path) -> Certificate:
    """A fresh self-signed certificate and the server context that presents it (blocking: run off the loop)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mycel-bulk")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_path, key_path)
    key_path.unlink()  # loaded: the key lives in the context only
    return Certificate(context, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
