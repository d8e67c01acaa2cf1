"""Stopping every instance of a cluster in order: the replicas first, then the primary, so
that the primary, which stops last, holds every committed transaction (a deletion, and an
in-place restore, which starts from it again if the restore fails)."""

from __future__ import annotations

import contextlib

from reconciler import naming
from reconciler.postgrescluster.observed import Instances, instance_of, is_primary
from reconciler.runtime.client import Client, NotFoundError
from reconciler.runtime.resources import STATEFUL_SETS


async def stop_instances(client: Client, namespace: str, instances: Instances) -> None:
    """Scale the replicas' StatefulSets to 0, and the primary's once no replica runs; only
    those not at 0 already, so a stopped cluster costs no write."""
    primaries = {instance_of(p) for p in instances.pods if is_primary(p)}
    replicas = [s for s in instances.statefulsets if s["metadata"]["name"] not in primaries]
    running_replica = any(not is_primary(p) for p in instances.pods)
    for sts in replicas if running_replica else instances.statefulsets:
        if (sts.get("spec") or {}).get("replicas", 1) == 0:
            continue
        # Gone already (the cache lags a deletion): stopped, which is all this asks.
        with contextlib.suppress(NotFoundError):
            await client.patch(
                STATEFUL_SETS,
                sts["metadata"]["name"],
                {"spec": {"replicas": 0}},
                namespace=namespace,
                field_manager=naming.FIELD_MANAGER,
            )
