"""Subreconciler: `<c>-config`, the Patroni configuration every instance shares."""

from __future__ import annotations

from typing import Any

from reconciler import naming
from reconciler.intent import Owner, metadata
from reconciler.patroni import config as patroni_config
from reconciler.postgrescluster import configuration
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import JSON
from reconciler.runtime.resources import CONFIG_MAPS


def config_map(owner: Owner, spec: JSON, *, bootstrapped: bool) -> JSON:
    """`<c>-config` with `patroni.yaml`."""
    settings: dict[str, Any] = spec["patroni"]
    document = patroni_config.cluster_yaml(
        owner.name,
        owner.namespace,
        configuration.postgres_settings(spec),
        settings.get("dynamicConfiguration") or {},
        ttl=settings["leaderLeaseDurationSeconds"],
        loop_wait=settings["syncPeriodSeconds"],
        bootstrapped=bootstrapped,
        standby=configuration.standby_source(spec),
        verify_host=not spec.get("customTLSSecret"),
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            owner, naming.cluster_config_map(owner.name), naming.cluster_labels(owner.name)
        ),
        "data": {"patroni.yaml": document},
    }


async def reconcile(ctx: Context) -> None:
    """Render and apply `<c>-config`."""
    await ctx.apply(CONFIG_MAPS, config_map(ctx.owner, ctx.spec, bootstrapped=ctx.bootstrapped))
