"""The objects around an instance's StatefulSet: its volumes, its ConfigMap, its set's budget."""

from __future__ import annotations

import copy
from typing import Any

from reconciler import naming
from reconciler.intent import Owner, metadata
from reconciler.runtime.client import JSON


def data_volume(owner: Owner, instance_set: JSON, instance: str, *, wal: bool = False) -> JSON:
    """`<inst>-pgdata` (or `<inst>-pgwal`): the claim spec from the set, without limits.

    PGO drops `resources.limits` because a limit on a claim means nothing to most provisioners
    (the AutoGrowVolumes gate reads it as a growth ceiling instead).
    """
    spec = copy.deepcopy(instance_set["walVolumeClaimSpec" if wal else "dataVolumeClaimSpec"])
    (spec.get("resources") or {}).pop("limits", None)
    role = naming.ROLE_POSTGRES_WAL if wal else naming.ROLE_POSTGRES_DATA
    name = naming.instance_wal_volume(instance) if wal else naming.instance_data_volume(instance)
    labels = {
        **naming.instance_labels(owner.name, instance_set["name"], instance),
        naming.LABEL_ROLE: role,
        naming.LABEL_DATA: naming.DATA_POSTGRES,
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(owner, name, labels, extra=instance_set.get("metadata")),
        "spec": spec,
    }


def config_map(owner: Owner, instance_set: JSON, instance: str, patroni_yaml: str) -> JSON:
    """`<inst>-config`: the instance's Patroni configuration."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            owner,
            naming.instance_config_map(instance),
            naming.instance_labels(owner.name, instance_set["name"], instance),
            extra=instance_set.get("metadata"),
        ),
        "data": {"patroni.yaml": patroni_yaml},
    }


def min_available(instance_set: JSON) -> Any:
    """The set's minAvailable: explicit, else 1 when it has more than one replica, else 0."""
    explicit = instance_set.get("minAvailable")
    if explicit is not None:
        return explicit
    return 1 if instance_set.get("replicas", 1) > 1 else 0


def disruption_budget(owner: Owner, instance_set: JSON) -> JSON | None:
    """`<c>-set-<set>`, or None when the set may lose all its pods (minAvailable 0)."""
    minimum = min_available(instance_set)
    if minimum in (0, "0", "0%"):
        return None
    labels = {
        **naming.cluster_labels(owner.name),
        naming.LABEL_INSTANCE_SET: instance_set["name"],
    }
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(
            owner,
            naming.instance_set_disruption_budget(owner.name, instance_set["name"]),
            labels,
            extra=instance_set.get("metadata"),
        ),
        "spec": {"minAvailable": minimum, "selector": {"matchLabels": labels}},
    }
