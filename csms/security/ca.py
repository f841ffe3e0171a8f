"""Sign a charger's CSR with the operator's charging-station CA (Security Whitepaper 3.2, A02).

Raises ``CsrRejected`` for a CSR we will not sign: unreadable, badly self-signed, or naming
another charger.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = timedelta(days=365)


class CsrRejected(ValueError):
    """The CSR cannot be signed; the message says why (never the CSR itself)."""


@dataclass(slots=True, frozen=True)
class SignedCertificate:
    pem: str
    serial_number: str
    subject: str
    not_before: datetime
    not_after: datetime


@dataclass(slots=True, frozen=True)
class ChargerCA:
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> ChargerCA:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the charger CA key must be RSA or EC")
        return cls(certificate, key)

    def sign(self, csr_pem: str, identity: str, now: datetime) -> SignedCertificate:
        """A client certificate for ``identity`` with the CSR's subject and key."""
        csr = parse_csr(csr_pem, identity)
        public_key = csr.public_key()
        if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            raise CsrRejected("Ed25519/Ed448 keys are not supported by chargers' TLS stacks")
        issuer = self.certificate
        serial = secrets.randbits(159)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(issuer.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(min(now + VALIDITY, issuer.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    key_agreement=isinstance(public_key, ec.EllipticCurvePublicKey),
                    content_commitment=False,
                    data_encipherment=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
                False,
            )
            .sign(self.private_key, hashes.SHA256())
        )
        return SignedCertificate(
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            serial_number=format(serial, "x"),
            subject=csr.subject.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )


def parse_csr(csr_pem: str, identity: str) -> x509.CertificateSigningRequest:
    """The CSR if it is well formed, self-signed correctly and names ``identity``."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CsrRejected("not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CsrRejected("the CSR signature does not verify")
    names = {
        attribute.value
        for oid in (NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER)
        for attribute in csr.subject.get_attributes_for_oid(oid)
    }
    if identity not in names:
        # Whitepaper 3.1: the certificate names the charger; a CSR for another would
        # let one charger obtain a certificate to impersonate a second.
        raise CsrRejected("the CSR subject does not name this charge point")
    return csr
