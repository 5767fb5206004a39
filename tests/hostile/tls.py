"""Server certificates that a client should accept or reject, built on ``trustme``.

Each helper writes its PEM files under ``directory`` (give it pytest's
``tmp_path``) and returns a ``TlsCase``: the server's ``SSLContext`` to hand to
``HostileServer(ssl_context=...)``, the CA bundle a client is told to trust,
and when the served certificate stops being valid.  Only ``valid_cert``
verifies; every other case makes a client that trusts ``ca_path`` fail with
``ssl.SSLCertVerificationError`` (in aiohttp, ``ClientConnectorCertificateError``)::

    case = expired_cert(tmp_path)
    async with HostileServer(ssl_context=case.server_context) as server:
        await session.get(f"{server.url}/ok", ssl=case.client_context())

OpenSSL's ``verify_code`` for each case, as seen by a client:

    self_signed_cert     18  self-signed certificate
    untrusted_ca_cert    20  unable to get local issuer certificate
    expired_cert         10  certificate has expired
    wrong_host_cert      64  IP address mismatch (62 for a name)
    incomplete_chain_cert 20 unable to get local issuer certificate

``expiring_cert(directory, days=3)`` verifies, but expires in ``days`` days.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "TlsCase",
    "expired_cert",
    "expiring_cert",
    "incomplete_chain_cert",
    "self_signed_cert",
    "untrusted_ca_cert",
    "valid_cert",
    "wrong_host_cert",
]

SERVER_IDENTITIES = ("127.0.0.1", "localhost")
WRONG_HOST = "other.example"


@dataclass(frozen=True, slots=True)
class TlsCase:
    """What one certificate scenario needs on both sides of the connection."""

    server_context: ssl.SSLContext
    ca_path: Path
    """PEM bundle the client should trust: the issuing CA, except where the case is
    about an unknown issuer, where it is an unrelated CA."""
    not_after: datetime
    """Expiry of the certificate the server presents (timezone-aware, UTC)."""

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts ``ca_path`` and nothing else."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def _server_context() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)


def _write_ca(ca: trustme.CA, directory: Path, name: str) -> Path:
    path = directory / f"{name}-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _issued_case(
    directory: Path,
    name: str,
    identities: tuple[str, ...],
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> TlsCase:
    ca = trustme.CA()
    leaf = ca.issue_cert(*identities, not_before=not_before, not_after=not_after)
    context = _server_context()
    leaf.configure_cert(context)
    served = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    return TlsCase(context, _write_ca(ca, directory, name), served.not_valid_after_utc)


def valid_cert(directory: Path) -> TlsCase:
    """A certificate for 127.0.0.1 and localhost, issued by the CA at ``ca_path``."""
    return _issued_case(directory, "valid", SERVER_IDENTITIES)


def expired_cert(directory: Path) -> TlsCase:
    """Right names and issuer, but it expired a day ago."""
    now = datetime.now(UTC)
    return _issued_case(
        directory,
        "expired",
        SERVER_IDENTITIES,
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )


def wrong_host_cert(directory: Path) -> TlsCase:
    """Valid and trusted, but issued for ``other.example``, not for 127.0.0.1."""
    return _issued_case(directory, "wrong-host", (WRONG_HOST,))


def untrusted_ca_cert(directory: Path) -> TlsCase:
    """Right names, issued by a CA the client does not trust (``ca_path`` is another CA)."""
    case = _issued_case(directory, "untrusted-issuer", SERVER_IDENTITIES)
    unrelated = _write_ca(trustme.CA(), directory, "untrusted-unrelated")
    return TlsCase(case.server_context, unrelated, case.not_after)


def self_signed_cert(directory: Path) -> TlsCase:
    """A leaf for 127.0.0.1 and localhost signed by its own key.

    trustme only issues from a CA, so this one is built with ``cryptography``.
    ``ca_path`` is an unrelated CA: what a client trusts is beside the point,
    since nothing but the certificate itself vouches for it.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile self-signed")])
    now = datetime.now(UTC)
    not_after = (now + timedelta(days=30)).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "self-signed-cert.pem"
    key_path = directory / "self-signed-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = _server_context()
    context.load_cert_chain(cert_path, key_path)
    unrelated = _write_ca(trustme.CA(), directory, "self-signed-unrelated")
    return TlsCase(context, unrelated, cert.not_valid_after_utc)


def expiring_cert(directory: Path, days: float = 3.0) -> TlsCase:
    """Valid and trusted, but it expires in ``days`` days."""
    now = datetime.now(UTC)
    return _issued_case(
        directory,
        "expiring",
        SERVER_IDENTITIES,
        not_before=now - timedelta(days=60),
        not_after=now + timedelta(days=days),
    )


def incomplete_chain_cert(directory: Path) -> TlsCase:
    """Issued by an intermediate CA that the server does not send: a client that trusts
    only the root (``ca_path``) cannot build the chain, as with a forgotten
    ``fullchain.pem``."""
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert(*SERVER_IDENTITIES)
    cert_path = directory / "incomplete-chain-leaf.pem"
    key_path = directory / "incomplete-chain-key.pem"
    cert_path.write_bytes(leaf.cert_chain_pems[0].bytes())  # the leaf alone
    leaf.private_key_pem.write_to_path(str(key_path))
    context = _server_context()
    context.load_cert_chain(cert_path, key_path)
    served = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    return TlsCase(
        context, _write_ca(root, directory, "incomplete-chain"), served.not_valid_after_utc
    )
