"""Instance volumes, ConfigMaps and the instance set's disruption budget."""

from __future__ import annotations

from typing import Any

from reconciler.intent import Owner
from reconciler.postgrescluster import instance_objects

OWNER = Owner("hippo", "ns", "uid-1")
CLAIM = {
    "accessModes": ["ReadWriteOnce"],
    "resources": {"requests": {"storage": "1Gi"}, "limits": {"storage": "5Gi"}},
}
PREFIX = "postgres-operator.crunchydata.com/"


def _set(**fields: Any) -> dict[str, Any]:
    return {"name": "instance1", "replicas": 1, "dataVolumeClaimSpec": CLAIM, **fields}


def test_data_volume_drops_limits_and_carries_pgo_labels() -> None:
    """`<inst>-pgdata`: role=pgdata, data=postgres, no resources.limits."""
    claim = instance_objects.data_volume(OWNER, _set(), "hippo-instance1-abcd")
    assert claim["metadata"]["name"] == "hippo-instance1-abcd-pgdata"
    assert claim["metadata"]["labels"][PREFIX + "role"] == "pgdata"
    assert claim["metadata"]["labels"][PREFIX + "data"] == "postgres"
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert CLAIM["resources"]["limits"] == {"storage": "5Gi"}  # type: ignore[index]


def test_wal_volume_is_named_and_labelled_for_wal() -> None:
    """`<inst>-pgwal` with role=pgwal, from walVolumeClaimSpec."""
    claim = instance_objects.data_volume(OWNER, _set(walVolumeClaimSpec=CLAIM), "i", wal=True)
    assert claim["metadata"]["name"] == "i-pgwal"
    assert claim["metadata"]["labels"][PREFIX + "role"] == "pgwal"


def test_disruption_budget_only_for_sets_that_must_keep_a_pod() -> None:
    """One replica: no PDB; two: minAvailable 1; explicit values win."""
    assert instance_objects.disruption_budget(OWNER, _set()) is None
    pdb = instance_objects.disruption_budget(OWNER, _set(replicas=2))
    assert pdb is not None
    assert pdb["metadata"]["name"] == "hippo-set-instance1"
    assert pdb["spec"] == {
        "minAvailable": 1,
        "selector": {
            "matchLabels": {PREFIX + "cluster": "hippo", PREFIX + "instance-set": "instance1"}
        },
    }
    assert instance_objects.disruption_budget(OWNER, _set(replicas=3, minAvailable=0)) is None
    explicit = instance_objects.disruption_budget(OWNER, _set(replicas=3, minAvailable="50%"))
    assert explicit is not None
    assert explicit["spec"]["minAvailable"] == "50%"
