"""Subreconciler: `<c>-config`, the Patroni configuration every instance shares."""

from __future__ import annotations

from typing import Any

from reconciler.postgrescluster import naming, patroni
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.intent import JSON, Owner, metadata
from reconciler.runtime.resources import CONFIG_MAPS


def postgres_settings(spec: JSON) -> patroni.PostgresSettings:
    """The parts of the spec that shape PostgreSQL's parameters and pg_hba."""
    return patroni.PostgresSettings(
        port=spec["port"],
        parameters=(spec.get("config") or {}).get("parameters") or {},
        authentication_rules=(spec.get("authentication") or {}).get("rules") or [],
        backups_enabled=bool((spec.get("backups") or {}).get("pgbackrest")),
    )


def config_map(owner: Owner, spec: JSON, *, bootstrapped: bool) -> JSON:
    """`<c>-config` with `patroni.yaml`."""
    settings: dict[str, Any] = spec["patroni"]
    document = patroni.cluster_yaml(
        owner.name,
        owner.namespace,
        postgres_settings(spec),
        settings.get("dynamicConfiguration") or {},
        ttl=settings["leaderLeaseDurationSeconds"],
        loop_wait=settings["syncPeriodSeconds"],
        bootstrapped=bootstrapped,
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
