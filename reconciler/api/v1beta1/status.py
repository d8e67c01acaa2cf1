"""`status`: what the operator observed of a PostgresCluster."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from reconciler.api.base import ApiModel, list_map
from reconciler.api.kubernetes import Condition
from reconciler.api.v1beta1.shared import Int32, Int64

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class InstanceSetStatus(ApiModel):
    """The pods of one instance set."""

    name: str
    """The instance set."""
    replicas: Int32 | None = None
    """How many instance pods exist."""
    ready_replicas: Int32 | None = None
    """How many instance pods are ready."""
    updated_replicas: Int32 | None = None
    """How many instance pods run the current pod template."""
    desired_pg_data_volume: dict[str, str] | None = Field(None, alias="desiredPGDataVolume")
    """The data volume size each instance asked for, by instance name (volume auto-grow)."""


class PatroniStatus(ApiModel):
    """What Patroni reported."""

    system_identifier: str | None = None
    """The PostgreSQL system identifier; set once the cluster is bootstrapped."""
    switchover: str | None = None
    """The trigger annotation value of the last completed switchover."""
    switchover_timeline: Int64 | None = None
    """The timeline of the primary when the switchover started."""


class RepoHostStatus(ApiModel):
    """The repository host."""

    api_version: str | None = None
    """The API version of the repository host workload."""
    kind: str | None = None
    """The kind of the repository host workload."""
    ready: bool | None = None
    """Whether the repository host is ready."""


class RepoStatus(ApiModel):
    """One pgBackRest repository."""

    name: str
    """The repository."""
    bound: bool | None = None
    """Whether the repository volume is bound."""
    volume: str | None = None
    """The PersistentVolume of the repository."""
    stanza_created: bool | None = None
    """Whether the stanza exists in the repository."""
    replica_create_backup_complete: bool | None = None
    """Whether the backup that seeds new replicas has finished."""
    repo_options_hash: str | None = None
    """A hash of the repository's options, to notice changes."""


class JobStatus(ApiModel):
    """The progress of a pgBackRest Job."""

    id: str
    """The annotation value that triggered the Job."""
    finished: bool
    """Whether the Job has finished."""
    start_time: Timestamp | None = None
    """When the Job started."""
    completion_time: Timestamp | None = None
    """When the Job completed."""
    active: Int32 | None = None
    """Running pods."""
    succeeded: Int32 | None = None
    """Succeeded pods."""
    failed: Int32 | None = None
    """Failed pods."""


class ScheduledBackupStatus(ApiModel):
    """One Job started by a backup schedule."""

    cron_job_name: str | None = None
    """The CronJob that started it."""
    repo: str | None = None
    """The repository backed up into."""
    type: str | None = None
    """The backup type: full, diff or incr."""
    start_time: Timestamp | None = None
    """When the Job started."""
    completion_time: Timestamp | None = None
    """When the Job completed."""
    active: Int32 | None = None
    """Running pods."""
    succeeded: Int32 | None = None
    """Succeeded pods."""
    failed: Int32 | None = None
    """Failed pods."""


class PGBackRestStatus(ApiModel):
    """pgBackRest."""

    repo_host: RepoHostStatus | None = None
    """The repository host."""
    repos: list[RepoStatus] | None = Field(None, json_schema_extra=list_map("name"))
    """The repositories."""
    manual_backup: JobStatus | None = None
    """The last manual backup."""
    restore: JobStatus | None = None
    """The last in-place restore."""
    scheduled_backups: list[ScheduledBackupStatus] | None = None
    """Recent scheduled backups."""


class PGBouncerStatus(ApiModel):
    """pgBouncer."""

    postgres_revision: str | None = None
    """A hash of the PostgreSQL side of pgBouncer's setup (its login role and function)."""
    ready_replicas: Int32 | None = None
    """How many pgBouncer pods are ready."""
    replicas: Int32 | None = None
    """How many pgBouncer pods exist."""


class ProxyStatus(ApiModel):
    """The connection pooler."""

    pg_bouncer: PGBouncerStatus | None = None
    """pgBouncer."""


class MonitoringStatus(ApiModel):
    """The exporter."""

    exporter_configuration: str | None = None
    """A hash of the exporter's configuration."""


class PGAdminStatus(ApiModel):
    """The embedded pgAdmin."""

    users_revision: str | None = None
    """A hash of the users written into pgAdmin."""


class UserInterfaceStatus(ApiModel):
    """The user interface."""

    pg_admin: PGAdminStatus | None = None
    """pgAdmin."""


class PostgresClusterStatus(ApiModel):
    """What the operator observed of the cluster."""

    conditions: list[Condition] | None = Field(None, json_schema_extra=list_map("type"))
    """The latest observations of the cluster's state."""
    instances: list[InstanceSetStatus] | None = Field(None, json_schema_extra=list_map("name"))
    """The instance sets, by name."""
    patroni: PatroniStatus | None = None
    """Patroni."""
    pgbackrest: PGBackRestStatus | None = None
    """pgBackRest."""
    proxy: ProxyStatus | None = None
    """The connection pooler."""
    users_revision: str | None = None
    """A hash of the user SQL last run."""
    database_revision: str | None = None
    """A hash of the database SQL last run."""
    database_init_sql: str | None = Field(None, alias="databaseInitSQL")
    """The ConfigMap whose init SQL has run successfully."""
    startup_instance: str | None = None
    """The instance that starts first (the primary before a shutdown, or a restore target)."""
    startup_instance_set: str | None = None
    """The instance set of `startupInstance`."""
    postgres_version: Int32 | None = None
    """The PostgreSQL major version of the data, after a major upgrade."""
    monitoring: MonitoringStatus | None = None
    """The exporter."""
    user_interface: UserInterfaceStatus | None = None
    """The user interface."""
    observed_generation: Int64 | None = Field(None, ge=0)
    """The spec generation the status describes."""
