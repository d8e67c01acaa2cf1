"""PostgreSQL's and Patroni's configuration for a cluster: the spec with what each subsystem
contributes (the steps that render `<c>-config` and patch Patroni's DCS share it)."""

from __future__ import annotations

from reconciler.patroni import config as patroni_config
from reconciler.pgbackrest import postgres as pgbackrest
from reconciler.pgbouncer import config as pgbouncer_config
from reconciler.pgbouncer import postgres as pgbouncer
from reconciler.pgmonitor import exporter
from reconciler.pgmonitor import postgres as pgmonitor
from reconciler.postgres.config import PostgresSettings
from reconciler.runtime.client import JSON


def postgres_settings(spec: JSON) -> PostgresSettings:
    """The parts of the spec, and the subsystems' parameters, that shape PostgreSQL's
    parameters and pg_hba."""
    monitoring = exporter.exporter_settings(spec) is not None
    return PostgresSettings(
        port=spec["port"],
        parameters=(spec.get("config") or {}).get("parameters") or {},
        authentication_rules=(spec.get("authentication") or {}).get("rules") or [],
        contributed=pgbackrest.archive_parameters(
            backups=pgbackrest.backups_enabled(spec), standby_repo=pgbackrest.standby_repo(spec)
        ),
        contributed_hba=[
            *pgbouncer.hba(enabled=pgbouncer_config.settings(spec) is not None),
            *pgmonitor.hba(enabled=monitoring),
        ],
        preload_libraries=pgmonitor.preload_libraries(enabled=monitoring),
    )


def standby_source(spec: JSON) -> patroni_config.StandbySource | None:
    """Where a standby cluster's leader gets WAL (`spec.standby`), None unless `enabled`."""
    standby = spec.get("standby") or {}
    if not standby.get("enabled"):
        return None
    repo = pgbackrest.standby_repo(spec)
    return patroni_config.StandbySource(
        host=standby.get("host") or None,
        port=standby.get("port"),
        restore_command=pgbackrest.restore_command(repo) if repo else None,
    )


def dynamic_configuration(spec: JSON) -> JSON:
    """The DCS contents the spec asks for, exactly as rendered for bootstrap."""
    settings = spec["patroni"]
    return patroni_config.dynamic_configuration(
        postgres_settings(spec),
        settings.get("dynamicConfiguration") or {},
        ttl=settings["leaderLeaseDurationSeconds"],
        loop_wait=settings["syncPeriodSeconds"],
        standby=standby_source(spec),
    )
