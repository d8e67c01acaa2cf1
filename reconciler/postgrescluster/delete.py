"""Deleting a PostgresCluster: its instances stop in order, then Patroni's records go and the
finalizer is removed.

Everything else (Services, Secrets, volumes) goes with the cluster through its owner references,
collected by Kubernetes' garbage collector.
"""

from __future__ import annotations

import contextlib

from reconciler import naming
from reconciler.postgrescluster.observed import Reader, observe
from reconciler.postgrescluster.stop import stop_instances
from reconciler.postgrescluster.watches import CLUSTERS
from reconciler.runtime.client import JSON, Client, ConflictError, NotFoundError
from reconciler.runtime.controller import Result
from reconciler.runtime.resources import ENDPOINTS

# While instances are being removed, look again this often even without events.
TEARDOWN_POLL = 2.0


async def teardown(reader: Reader, client: Client, raw: JSON) -> Result | None:
    """Stop the replicas, then the primary, then remove Patroni's records and the finalizer;
    a Result while instances are still stopping."""
    meta = raw["metadata"]
    if naming.FINALIZER not in (meta.get("finalizers") or []):
        return None
    namespace, name = meta["namespace"], meta["name"]
    instances = observe(reader, namespace, name)
    await stop_instances(client, namespace, instances)
    if instances.pods:
        return Result(requeue_after=TEARDOWN_POLL)
    for endpoints in reader.list(ENDPOINTS, namespace, naming.patroni_record_labels(name)):
        with contextlib.suppress(NotFoundError):
            await client.delete(ENDPOINTS, endpoints["metadata"]["name"], namespace)
    finalizers = [f for f in meta.get("finalizers") or [] if f != naming.FINALIZER]
    # A conflict means it changed meanwhile: the next event brings us back.
    with contextlib.suppress(ConflictError, NotFoundError):
        await client.patch(
            CLUSTERS,
            name,
            {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}},
            namespace=namespace,
        )
    return None
