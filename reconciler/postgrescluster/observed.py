"""What a reconcile sees of its cluster's instances, gathered once from the cache.

Steps read this snapshot instead of listing pods and StatefulSets again; what changes while a
reconcile runs arrives as an event and brings another reconcile.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler import naming
from reconciler.runtime.client import JSON
from reconciler.runtime.resources import PODS, STATEFUL_SETS, Resource


def pod_ready(pod: JSON) -> bool:
    """Whether the pod's `Ready` condition is true."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_primary(pod: JSON) -> bool:
    """Whether Patroni labelled the pod as its leader."""
    labels = pod["metadata"].get("labels") or {}
    return labels.get(naming.LABEL_ROLE) == naming.ROLE_PATRONI_LEADER


def patroni_role(pod: JSON) -> str:
    """The role in the `status` annotation Patroni keeps on its pod (`master`, `replica`,
    `standby_leader`); "" when there is none yet."""
    text = (pod["metadata"].get("annotations") or {}).get("status") or ""
    try:
        member = json.loads(text)
    except ValueError:
        return ""
    return str(member.get("role") or "") if isinstance(member, dict) else ""


def instance_of(obj: JSON) -> str:
    """The instance an object belongs to (its label)."""
    return str(obj["metadata"]["labels"][naming.LABEL_INSTANCE])


def instance_set_of(obj: JSON) -> str:
    """The instance set an object belongs to (its label; "" when it has none)."""
    return str(obj["metadata"]["labels"].get(naming.LABEL_INSTANCE_SET, ""))


def outdated(pod: JSON, statefulsets: dict[str, JSON]) -> bool | None:
    """Whether the pod runs an older template than its StatefulSet's; None when unknown yet."""
    sts = statefulsets.get((pod["metadata"].get("labels") or {}).get(naming.LABEL_INSTANCE, ""))
    if sts is None:
        return None
    status = sts.get("status") or {}
    if status.get("observedGeneration") != sts["metadata"].get("generation"):
        return None  # the StatefulSet controller has not taken in the new template yet
    revision = (pod["metadata"].get("labels") or {}).get("controller-revision-hash")
    return bool(revision and status.get("updateRevision") and revision != status["updateRevision"])


@dataclass(frozen=True, slots=True)
class Instances:
    """The cluster's instance pods and StatefulSets, as cached when the reconcile began."""

    pods: list[JSON]
    statefulsets: list[JSON]

    @property
    def primary(self) -> JSON | None:
        """The pod Patroni labelled leader, ready or not."""
        return next((p for p in self.pods if is_primary(p)), None)

    @property
    def ready_primary(self) -> JSON | None:
        """The leader's pod when it is ready: SQL and Patroni's API can be reached through it."""
        primary = self.primary
        return primary if primary is not None and pod_ready(primary) else None

    @property
    def writable_primary(self) -> JSON | None:
        """The ready leader when it accepts writes: not the standby leader of a standby
        cluster, which Patroni labels `master` too (PGO's `IsWritable`)."""
        primary = self.ready_primary
        if primary is None or patroni_role(primary) == "standby_leader":
            return None
        return primary

    @property
    def names(self) -> list[str]:
        """The instances with a StatefulSet, sorted."""
        return sorted(s["metadata"]["name"] for s in self.statefulsets)

    def statefulsets_by_name(self) -> dict[str, JSON]:
        """The StatefulSets by instance name."""
        return {s["metadata"]["name"]: s for s in self.statefulsets}


class Reader(Protocol):
    """Read access to the informer cache."""

    def get(self, resource: Resource, namespace: str | None, name: str) -> JSON | None:
        """The cached object, or None."""
        ...

    def list(
        self, resource: Resource, namespace: str | None, labels: Mapping[str, str | None]
    ) -> list[JSON]:
        """Cached objects matching `labels` (a None value means: the key exists)."""
        ...


def observe(reader: Reader, namespace: str, cluster: str) -> Instances:
    """The instance pods and StatefulSets of `cluster`, from the cache."""
    selector: dict[str, str | None] = {
        naming.LABEL_CLUSTER: cluster,
        naming.LABEL_INSTANCE: None,
    }
    return Instances(
        pods=reader.list(PODS, namespace, selector),
        statefulsets=reader.list(STATEFUL_SETS, namespace, selector),
    )
