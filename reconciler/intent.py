"""What every object the controller applies has in common: its owner, its metadata, and for
Jobs the envelope around their pod.

Builders return complete objects ("intents") for server-side apply; they are pure, so the same
spec always renders the same bytes and a restart of the operator changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.runtime.client import JSON

API_VERSION = "postgres-operator.crunchydata.com/v1beta1"
KIND = "PostgresCluster"


@dataclass(frozen=True, slots=True)
class Owner:
    """The PostgresCluster that owns an object, and the metadata it asks every object to carry."""

    name: str
    namespace: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, cluster: JSON) -> Owner:
        """The owner view of a PostgresCluster object (`spec.metadata` included)."""
        meta = cluster["metadata"]
        spec_metadata = (cluster.get("spec") or {}).get("metadata") or {}
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            labels=dict(spec_metadata.get("labels") or {}),
            annotations=dict(spec_metadata.get("annotations") or {}),
        )


def owner_reference(owner: Owner) -> JSON:
    """The controller reference that makes the cluster's deletion collect the object."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def merged_labels_and_annotations(
    owner: Owner,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The user's labels and annotations (`spec.metadata`, then `extra`, e.g. an instance
    set's metadata) overlaid by the operator's own, which always win; sorted."""
    extra = extra or {}
    merged_labels = {**owner.labels, **(extra.get("labels") or {}), **labels}
    merged_annotations = {
        **owner.annotations,
        **(extra.get("annotations") or {}),
        **(annotations or {}),
    }
    return dict(sorted(merged_labels.items())), dict(sorted(merged_annotations.items()))


def metadata(
    owner: Owner,
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> JSON:
    """Object metadata: name, namespace, merged labels and annotations, the owner reference."""
    merged_labels, merged_annotations = merged_labels_and_annotations(
        owner, labels, annotations, extra=extra
    )
    result: JSON = {
        "name": name,
        "namespace": owner.namespace,
        "labels": merged_labels,
        "ownerReferences": [owner_reference(owner)],
    }
    if merged_annotations:
        result["annotations"] = merged_annotations
    return result


def batch_job(
    meta: JSON,
    pod: JSON,
    *,
    pod_annotations: Mapping[str, str],
    backoff_limit: int | None = None,
    ttl_seconds_after_finished: int | None = None,
) -> JSON:
    """A batch/v1 Job with `meta` that runs `pod`: the pod carries the Job's labels (they are
    how the operator and `kubectl logs -l` find a Job's pods) and `pod_annotations`."""
    spec: JSON = {} if backoff_limit is None else {"backoffLimit": backoff_limit}
    spec["template"] = {
        "metadata": {"labels": meta["labels"], "annotations": dict(pod_annotations)},
        "spec": pod,
    }
    if ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}
