"""The cluster PKI: leaf validity and renewal."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509 as cx509

from reconciler import naming
from reconciler.pki import authority

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_fresh_leaf_is_current_until_two_thirds_of_its_life() -> None:
    """A leaf stays for two thirds of its year, then is due for renewal."""
    root = authority.new_root(NOW)
    names = naming.certificate_dns_names("hippo-primary", "ns")
    leaf = authority.issue_leaf(root, names[0], names, NOW)
    assert authority.leaf_is_current(leaf, root, names[0], names, NOW)
    assert authority.leaf_is_current(
        leaf, root, names[0], names, NOW + datetime.timedelta(days=240)
    )
    assert not authority.leaf_is_current(
        leaf, root, names[0], names, NOW + datetime.timedelta(days=250)
    )


def test_leaf_of_another_root_or_other_names_is_replaced() -> None:
    """A leaf signed by another root, or for other names, is not current."""
    root, other_root = authority.new_root(NOW), authority.new_root(NOW)
    names = naming.certificate_dns_names("hippo-primary", "ns")
    leaf = authority.issue_leaf(root, names[0], names, NOW)
    assert not authority.leaf_is_current(leaf, other_root, names[0], names, NOW)
    assert not authority.leaf_is_current(leaf, root, names[0], names[:2], NOW)
    assert not authority.leaf_is_current(leaf, root, "someone-else", names, NOW)


def test_root_is_usable_only_while_it_can_outlive_a_leaf_renewal() -> None:
    """A root near its end is not used to sign new leaves."""
    root = authority.new_root(NOW)
    assert authority.root_is_usable(root, NOW)
    assert not authority.root_is_usable(root, NOW + datetime.timedelta(days=3600))
    names = ["x"]
    leaf = authority.issue_leaf(root, "x", names, NOW)
    assert not authority.root_is_usable(leaf, NOW)


def test_certificates_follow_pgo_profile() -> None:
    """ecdsa-with-SHA384, SEC1 keys, the root signs certificates and CRLs only, leaves sign and
    encipher and carry no extended key usage."""
    root = authority.new_root(NOW)
    names = naming.certificate_dns_names("hippo-primary", "ns")
    leaf = authority.issue_leaf(root, names[0], names, NOW)
    for pair in (root, leaf):
        assert (
            pair.certificate.signature_algorithm_oid
            == cx509.SignatureAlgorithmOID.ECDSA_WITH_SHA384
        )
        assert pair.key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    root_usage = root.certificate.extensions.get_extension_for_class(cx509.KeyUsage).value
    assert root_usage.key_cert_sign
    assert root_usage.crl_sign
    assert not root_usage.digital_signature
    constraints = root.certificate.extensions.get_extension_for_class(cx509.BasicConstraints)
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    leaf_usage = leaf.certificate.extensions.get_extension_for_class(cx509.KeyUsage).value
    assert leaf_usage.digital_signature
    assert leaf_usage.key_encipherment
    assert not leaf_usage.key_cert_sign
    with pytest.raises(cx509.ExtensionNotFound):
        leaf.certificate.extensions.get_extension_for_class(cx509.ExtendedKeyUsage)
