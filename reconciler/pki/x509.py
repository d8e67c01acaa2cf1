"""X.509 certificate authorities and leaf certificates as PGO issues them: ECDSA P-256 keys
(PEM "EC PRIVATE KEY", SEC1), signatures ECDSA with SHA-384, authorities that sign certificates
and CRLs only, leaves for digital signature and key encipherment without extended key usage.

Used for the clusters' PKI and for the local test control plane (which asks for extended key
usages on its own certificates).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Backdating absorbs clock skew between the signer and the verifier.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def certificate_pem(self) -> bytes:
        """The certificate, PEM encoded."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The private key, PEM encoded as PGO writes it (SEC1 "EC PRIVATE KEY", unencrypted)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, certificate_pem: bytes, key_pem: bytes) -> Self:
        """Load a certificate and its key; raises ValueError (TypeError) if unpaired (not ECDSA)."""
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("the private key is not an ECDSA key")
        if certificate.public_key() != key.public_key():
            raise ValueError("the certificate does not belong to the private key")
        return cls(certificate, key)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def new_authority(
    common_name: str, *, valid_for: datetime.timedelta, now: datetime.datetime | None = None
) -> Certificate:
    """A self-signed certificate authority that may sign leaf certificates only."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return Certificate(certificate, key)


def issue(
    authority: Certificate,
    common_name: str,
    *,
    valid_for: datetime.timedelta,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    organizations: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
    now: datetime.datetime | None = None,
) -> Certificate:
    """A leaf certificate signed by `authority` for the given names; `server` and `client` add
    those extended key usages (PGO's leaves have none)."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    alternative_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
    if alternative_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternative_names), critical=False
        )
    return Certificate(builder.sign(authority.key, hashes.SHA384()), key)
