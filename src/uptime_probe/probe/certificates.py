"""What a served certificate says, and whether it has enough days left (`cert_min_days`).

Read with `cryptography`, from the DER bytes the TLS handshake handed over: the
standard library's `getpeercert()` returns the fields only for a certificate it
verified, and a report must also describe one it rejected. `cryptography` is imported
by the first certificate read, not with the daemon: its Rust bindings are about 8 MB
resident, which a daemon probing only plain HTTP never needs (docs/benchmarks.md, the
quiet daemon).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from uptime_probe.probe.model import FailureReason

if TYPE_CHECKING:
    from cryptography import x509

SECONDS_PER_DAY = 86400.0
# SANs listed in a report; a certificate for thousands of names stays one readable line.
MAX_NAMES = 100


@dataclass(frozen=True, slots=True)
class CertificateDetails:
    """The leaf certificate's identity and validity, as a person reads them."""

    subject: str
    issuer: str
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses
    not_before: float
    not_after: float

    @classmethod
    def from_der(cls, der: bytes) -> CertificateDetails | None:
        from cryptography import x509

        try:
            certificate = x509.load_der_x509_certificate(der)
            subject = certificate.subject.rfc4514_string()
            issuer = certificate.issuer.rfc4514_string()
        except ValueError:
            return None
        return cls(
            subject=subject,
            issuer=issuer,
            names=_alternative_names(certificate),
            not_before=certificate.not_valid_before_utc.timestamp(),
            not_after=certificate.not_valid_after_utc.timestamp(),
        )


def not_after_of(der: bytes | None) -> float | None:
    """When the certificate in `der` expires (epoch seconds); None without a readable one."""
    if not der:
        return None
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except ValueError:
        return None


def _alternative_names(certificate: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509

    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (x509.ExtensionNotFound, ValueError):
        return ()
    names = [
        *extension.value.get_values_for_type(x509.DNSName),
        *(str(address) for address in extension.value.get_values_for_type(x509.IPAddress)),
    ]
    return tuple(names[:MAX_NAMES])


def days_left(not_after: float, now: float | None = None) -> float:
    """Days until `not_after` (negative once it has passed)."""
    return (not_after - (time.time() if now is None else now)) / SECONDS_PER_DAY


def expiry_shortfall(not_after: float, min_days: float, now: float | None = None) -> str | None:
    """Why a certificate expiring at `not_after` fails `cert_min_days`, or None if it passes."""
    left = days_left(not_after, now)
    if left >= min_days:
        return None
    when = datetime.fromtimestamp(not_after, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if left < 0:
        return f"certificate expired {-left:.1f} days ago ({when}), cert_min_days {min_days:g}"
    return f"certificate expires in {left:.1f} days ({when}), below cert_min_days {min_days:g}"


def certificate_problem(not_after: float | None, min_days: float | None) -> tuple[str, str] | None:
    """Why the certificate a step saw fails `cert_min_days` (a reason and a message), or
    None when it holds or is not asked for."""
    if min_days is None:
        return None
    if not_after is None:
        return (
            FailureReason.ASSERTION_FAILED,
            "no TLS certificate was presented, so cert_min_days cannot hold",
        )
    shortfall = expiry_shortfall(not_after, min_days)
    return None if shortfall is None else (FailureReason.CERT_EXPIRING, shortfall)
