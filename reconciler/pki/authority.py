"""The cluster PKI as PGO lays it out: a root per namespace, leaf certificates per purpose.

The root lives in the Secret `pgo-root-cacert` (`root.crt`, `root.key`) and signs every leaf of
every cluster in the namespace. Leaves last a year and are replaced once two thirds of their life
has passed, or as soon as they no longer match what is wanted (another root, other names).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature

from reconciler.pki import x509

ROOT_COMMON_NAME = "postgres-operator-ca"
ROOT_LIFETIME = datetime.timedelta(days=3650)
LEAF_LIFETIME = datetime.timedelta(days=365)
# A certificate is renewed once less than a third of its lifetime remains.
RENEWAL_RATIO = 3


def new_root(now: datetime.datetime | None = None) -> x509.Certificate:
    """A new root certificate authority for a namespace."""
    return x509.new_authority(ROOT_COMMON_NAME, valid_for=ROOT_LIFETIME, now=now)


def root_is_usable(root: x509.Certificate, now: datetime.datetime) -> bool:
    """Whether the root is a CA that is valid now and for long enough to sign a full leaf."""
    certificate = root.certificate
    try:
        constraints = certificate.extensions.get_extension_for_class(cx509.BasicConstraints)
    except cx509.ExtensionNotFound:
        return False
    return (
        constraints.value.ca
        and certificate.not_valid_before_utc <= now
        and now + LEAF_LIFETIME / RENEWAL_RATIO < certificate.not_valid_after_utc
    )


def issue_leaf(
    root: x509.Certificate,
    common_name: str,
    names: Sequence[str],
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """A leaf certificate for server and client use, signed by the root."""
    return x509.issue(root, common_name, valid_for=LEAF_LIFETIME, dns_names=names, now=now)


def leaf_is_current(
    leaf: x509.Certificate,
    root: x509.Certificate,
    common_name: str,
    names: Sequence[str],
    now: datetime.datetime,
) -> bool:
    """Whether `leaf` may stay: signed by `root`, for exactly these names, not due for renewal."""
    certificate = leaf.certificate
    try:
        certificate.verify_directly_issued_by(root.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    subject = certificate.subject.get_attributes_for_oid(cx509.NameOID.COMMON_NAME)
    if [a.value for a in subject] != [common_name]:
        return False
    try:
        alternative = certificate.extensions.get_extension_for_class(cx509.SubjectAlternativeName)
    except cx509.ExtensionNotFound:
        return False
    if sorted(alternative.value.get_values_for_type(cx509.DNSName)) != sorted(names):
        return False
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    renew_at = certificate.not_valid_after_utc - lifetime / RENEWAL_RATIO
    return certificate.not_valid_before_utc <= now < renew_at
