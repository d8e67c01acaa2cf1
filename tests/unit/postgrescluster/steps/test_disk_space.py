"""Condition PersistentVolumeFull: which claims a pod reports full, and how to grow them."""

from __future__ import annotations

from typing import Any

from reconciler import naming
from reconciler.postgrescluster.steps import disk_space


def _pod(full: str | None) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {naming.LABEL_INSTANCE: "hippo-i1-abcd", naming.LABEL_INSTANCE_SET: "i1"},
            "annotations": {naming.ANNOTATION_FULL_VOLUMES: full} if full is not None else {},
        },
        "spec": {
            "volumes": [
                {"name": "postgres-data", "persistentVolumeClaim": {"claimName": "d-pgdata"}},
                {"name": "postgres-wal", "persistentVolumeClaim": {"claimName": "d-pgwal"}},
                {"name": "tmp", "emptyDir": {}},
            ]
        },
    }


def test_full_volumes_name_the_claim_and_the_field_to_grow() -> None:
    lines = disk_space.full_volumes([_pod("postgres-wal,postgres-data")])
    assert lines == [
        "PersistentVolumeClaim d-pgdata of instance hippo-i1-abcd has less than 16Mi free; "
        "grow spec.instances[i1].dataVolumeClaimSpec.resources.requests.storage",
        "PersistentVolumeClaim d-pgwal of instance hippo-i1-abcd has less than 16Mi free; "
        "grow spec.instances[i1].walVolumeClaimSpec.resources.requests.storage",
    ]


def test_nothing_full_or_unknown_volumes_report_nothing() -> None:
    assert disk_space.full_volumes([_pod(None), _pod(""), _pod("tmp,nope")]) == []
