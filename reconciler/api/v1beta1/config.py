"""`spec.config`: PostgreSQL server parameters and extra configuration files."""

from __future__ import annotations

from pydantic import Field

from reconciler.api.base import ApiModel, Rule, validations
from reconciler.api.kubernetes import IntOrString, VolumeProjection

MANAGED_PARAMETERS = (
    "archive_command",
    "archive_mode",
    "cluster_name",
    "config_file",
    "data_directory",
    "external_pid_file",
    "hba_file",
    "hot_standby",
    "ident_file",
    "listen_addresses",
    "log_file_mode",
    "logging_collector",
    "port",
    "primary_conninfo",
    "primary_slot_name",
    "recovery_min_apply_delay",
    "restore_command",
    "ssl",
    "synchronous_standby_names",
    "wal_log_hints",
)
"""Parameters the operator and Patroni set themselves; a different value would break
replication, backups or TLS."""

MANAGED_PREFIXES = ("recovery_target", "ssl_", "unix_socket_")
"""Families of managed parameters; `ssl_groups` and `ssl_ecdh_curve` stay the user's."""

USER_SSL_PARAMETERS = ("ssl_ecdh_curve", "ssl_groups")


def _parameter_rules() -> list[Rule]:
    rules = [
        Rule(
            rule=f"!has(self.{name})",
            message=f"the {name} parameter is managed by the operator and cannot be set",
        )
        for name in MANAGED_PARAMETERS
    ]
    allowed = ", ".join(f"'{name}'" for name in USER_SSL_PARAMETERS)
    rules += [
        Rule(
            rule=f"self.all(name, !name.startsWith('{prefix}') || name in [{allowed}])",
            message=f"{prefix}* parameters are managed by the operator and cannot be set",
        )
        for prefix in MANAGED_PREFIXES
    ]
    rules.append(
        Rule(
            rule="!has(self.wal_level) || self.wal_level == 'logical'",
            message="wal_level is managed by the operator; only 'logical' may be set",
        )
    )
    return rules


class PostgresConfig(ApiModel):
    """PostgreSQL server configuration."""

    parameters: dict[str, IntOrString] | None = Field(
        None,
        json_schema_extra={"maxProperties": 50, **validations(*_parameter_rules())},
    )
    """Server parameters (`postgresql.conf`), e.g. `max_connections: 200`. Parameters that the
    operator manages (listening, TLS files, archiving, recovery, replication) are refused;
    `archive_timeout` and `archive_library` stay the user's, as with PGO."""
    files: list[VolumeProjection] | None = None
    """Extra files projected into `/etc/postgres`, e.g. for `ssl_ca_file` or `krb5.conf`."""
