"""The namespace root's owner references."""

from __future__ import annotations

from reconciler.intent import Owner
from reconciler.postgrescluster.steps.tls import root_owners

HIPPO = Owner("hippo", "ns", "uid-b")


def _ref(name: str, uid: str, **extra: object) -> dict[str, object]:
    return {
        "apiVersion": "postgres-operator.crunchydata.com/v1beta1",
        "kind": "PostgresCluster",
        "name": name,
        "uid": uid,
        **extra,
    }


def test_every_cluster_keeps_one_plain_reference() -> None:
    """Other clusters' references stay; this cluster's is plain (no controller, as PGO writes
    it), replaces an older form of itself, and the order is stable."""
    secret = {
        "metadata": {
            "ownerReferences": [
                _ref("zebra", "uid-c"),
                _ref("hippo", "uid-b", controller=False, blockOwnerDeletion=False),
                _ref("ant", "uid-a"),
            ]
        }
    }
    assert root_owners(secret, HIPPO) == [
        _ref("ant", "uid-a"),
        _ref("hippo", "uid-b"),
        _ref("zebra", "uid-c"),
    ]
    assert root_owners(None, HIPPO) == [_ref("hippo", "uid-b")]
