"""Certificate Secrets: names, keys, and reading them back."""

from __future__ import annotations

import base64
import datetime

from cryptography import x509 as cx509

from reconciler.intent import Owner
from reconciler.pki import authority, certificates

OWNER = Owner("hippo", "ns", "uid-1")
NOW = datetime.datetime.now(datetime.UTC)
ROOT = authority.new_root(NOW)


def test_cluster_certificate_names_the_services_and_every_pod() -> None:
    """CN is the primary's FQDN; SANs hold the four forms of both Services and of the pods
    under `<c>-pods` (a wildcard: replication connects to a pod by that name, verify-full),
    and a certificate with them is issued and read back as current."""
    common_name, names = certificates.cluster_names(OWNER)
    assert common_name == "hippo-primary.ns.svc.cluster.local."
    assert "hippo-replicas.ns.svc" in names
    assert names[8:] == [
        "*.hippo-pods.ns.svc.cluster.local.",
        "*.hippo-pods.ns.svc",
        "*.hippo-pods.ns",
        "*.hippo-pods",
    ]
    leaf = authority.issue_leaf(ROOT, common_name, names, NOW)
    assert authority.leaf_is_current(leaf, ROOT, common_name, names, NOW)


def test_instance_secret_has_pgo_keys_and_reads_back() -> None:
    """`<inst>-certs` carries PGO's six keys; the certificate reads back from dns.crt/dns.key."""
    common_name, names = certificates.instance_names(OWNER, "hippo-instance1-abcd")
    assert common_name == "hippo-instance1-abcd-0.hippo-pods.ns.svc.cluster.local."
    leaf = authority.issue_leaf(ROOT, common_name, names, NOW)
    secret = certificates.instance_secret(OWNER, "instance1", "hippo-instance1-abcd", ROOT, leaf)
    assert secret["metadata"]["name"] == "hippo-instance1-abcd-certs"
    assert sorted(secret["data"]) == [
        "dns.crt", "dns.key", "patroni.ca-roots", "patroni.crt-combined",
        "pgbackrest-server.crt", "pgbackrest-server.key",
    ]  # fmt: skip
    again = certificates.read(secret, "dns.crt", "dns.key")
    assert again is not None
    assert authority.leaf_is_current(again, ROOT, common_name, names, NOW)
    combined = base64.b64decode(secret["data"]["patroni.crt-combined"])
    assert cx509.load_pem_x509_certificate(combined[combined.index(b"-----BEGIN CERTIFICATE") :])


def test_reading_a_broken_secret_gives_nothing() -> None:
    """Missing keys or garbage mean no certificate (and so a new one)."""
    assert certificates.read(None, "tls.crt", "tls.key") is None
    garbage = {"data": {"tls.crt": base64.b64encode(b"nope").decode(), "tls.key": ""}}
    assert certificates.read(garbage, "tls.crt", "tls.key") is None


def test_replication_certificate_is_for_the_replication_user() -> None:
    """`<c>-replication-cert` is a client certificate with CN `_crunchyrepl`."""
    common_name, names = certificates.replication_names()
    leaf = authority.issue_leaf(ROOT, common_name, names, NOW)
    secret = certificates.replication_secret(OWNER, ROOT, leaf)
    assert secret["metadata"]["name"] == "hippo-replication-cert"
    assert secret["metadata"]["labels"][
        "postgres-operator.crunchydata.com/cluster-certificate"
    ] == ("replication-client-tls")
    assert common_name == "_crunchyrepl"


def test_long_names_keep_the_common_name_within_64_characters() -> None:
    """A long namespace moves the CN to a shorter DNS form; the SANs keep every form."""
    owner = Owner("hippo", "a-rather-long-namespace-name-for-testing", "uid")
    common_name, names = certificates.instance_names(owner, "hippo-instance1-abcd")
    assert len(common_name) <= 64
    assert common_name in names
    assert names[0].endswith(".svc.cluster.local.")
    leaf = authority.issue_leaf(ROOT, common_name, names, NOW)
    assert authority.leaf_is_current(leaf, ROOT, common_name, names, NOW)
