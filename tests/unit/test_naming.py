"""Names as PGO spells them, and DNS names in one place."""

from __future__ import annotations

from reconciler import naming


def test_dns_names_of_services_and_instance_pods() -> None:
    assert naming.service_dns("hippo-primary", "ns") == "hippo-primary.ns.svc"
    assert naming.instance_pod_dns("hippo-a-b2c4-0", "hippo", "ns") == (
        "hippo-a-b2c4-0.hippo-pods.ns.svc"
    )
    # PGO's four forms in a certificate, the FQDN with a trailing dot first.
    assert naming.certificate_dns_names("hippo-primary", "ns") == [
        "hippo-primary.ns.svc.cluster.local.",
        "hippo-primary.ns.svc",
        "hippo-primary.ns",
        "hippo-primary",
    ]


def test_generated_instance_names_use_pgo_form() -> None:
    name = naming.generate_instance("hippo", "instance1")
    prefix, suffix = name[: -len("-xxxx")], name[-4:]
    assert prefix == "hippo-instance1"
    assert set(suffix) <= set(naming.SAFE_ALPHABET)
    assert naming.instance_pod(name) == f"{name}-0"
