"""The PostgresCluster kind: a highly available PostgreSQL cluster."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from reconciler.api.base import ApiModel, Rule, crd_default, list_map, validations
from reconciler.api.kubernetes import LocalObjectReference, SecretProjection
from reconciler.api.v1beta1.authentication import Authentication
from reconciler.api.v1beta1.config import PostgresConfig
from reconciler.api.v1beta1.instances import PostgresInstanceSetSpec
from reconciler.api.v1beta1.instrumentation import InstrumentationSpec
from reconciler.api.v1beta1.monitoring import MonitoringSpec
from reconciler.api.v1beta1.patroni import PatroniSpec
from reconciler.api.v1beta1.pgbackrest import Backups, DataSource
from reconciler.api.v1beta1.pgbouncer import Proxy
from reconciler.api.v1beta1.shared import (
    API_VERSION,
    ApiVersion,
    ImagePullPolicy,
    Int32,
    Int64,
    Metadata,
    RepoName,
    ServiceSpec,
)
from reconciler.api.v1beta1.status import PostgresClusterStatus
from reconciler.api.v1beta1.userinterface import UserInterfaceSpec
from reconciler.api.v1beta1.users import PostgresUserSpec

MIN_POSTGRES_VERSION = 11
MAX_POSTGRES_VERSION = 18


class DatabaseInitSQL(ApiModel):
    """A ConfigMap key holding SQL to run once, on the primary, after the cluster starts."""

    name: str
    """The ConfigMap in the cluster's namespace."""
    key: str
    """The key of the ConfigMap that holds the SQL."""


class StandbySpec(ApiModel):
    """Run the cluster as a standby that replays another cluster's WAL."""

    enabled: bool | None = Field(None, json_schema_extra=crd_default(True))
    """Whether the cluster is a standby; set to false to promote it."""
    repo_name: RepoName | None = None
    """A pgBackRest repository to replay WAL from."""
    host: str | None = None
    """A primary to stream WAL from (its host name or address)."""
    port: Int32 | None = Field(None, ge=1024)
    """The port of `host`."""


class PostgresClusterSpec(ApiModel):
    """The desired state of a PostgreSQL cluster."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                rule="!has(self.config) || !has(self.config.parameters)"
                " || !has(self.config.parameters.ssl_groups) || self.postgresVersion > 17",
                message="The ssl_groups parameter is only available in PostgreSQL 18 and later",
                fieldPath=".config.parameters.ssl_groups",
            ),
        )
    )

    metadata: Metadata | None = None
    """Labels and annotations added to every object of the cluster."""
    data_source: DataSource | None = None
    """Where the data of a new cluster comes from: a backup or existing volumes."""
    database_init_sql: DatabaseInitSQL | None = Field(None, alias="databaseInitSQL")
    """SQL to run once after the cluster is created."""
    disable_default_pod_scheduling: bool | None = None
    """Whether to leave out the operator's default topology spread constraints."""
    image: str | None = None
    """The PostgreSQL image; defaults to the operator's `RELATED_IMAGE_POSTGRES_<version>`."""
    image_pull_policy: ImagePullPolicy | None = None
    """When to pull images of the cluster."""
    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets to pull the cluster's images with."""
    postgres_version: Annotated[int, Field(ge=MIN_POSTGRES_VERSION, le=MAX_POSTGRES_VERSION)] = (
        Field(json_schema_extra={"format": "int32"})
    )
    """The PostgreSQL major version; it must match the image."""
    post_gis_version: str | None = Field(None, alias="postGISVersion")
    """The PostGIS version of the image, which selects `RELATED_IMAGE_POSTGRES_<v>_GIS_<g>`."""
    port: Int32 | None = Field(None, ge=1024, json_schema_extra=crd_default(5432))
    """The port PostgreSQL listens on."""
    instances: Annotated[list[PostgresInstanceSetSpec], Field(min_length=1)] = Field(
        json_schema_extra=list_map("name")
    )
    """The sets of PostgreSQL instances."""
    patroni: PatroniSpec | None = None
    """Patroni settings: failover timing, dynamic configuration, switchovers."""
    authentication: Authentication | None = None
    """Client authentication rules."""
    config: PostgresConfig | None = None
    """PostgreSQL parameters and configuration files."""
    backups: Backups | None = None
    """Backups; without them there is no point-in-time recovery."""
    custom_tls_secret: SecretProjection | None = Field(None, alias="customTLSSecret")
    """A Secret with `tls.crt`, `tls.key` and `ca.crt` for PostgreSQL's server certificate; the
    operator issues one when unset. Without `customReplicationTLSSecret` the replication
    certificate comes from the operator's root, which this `ca.crt` must then include (as with
    PGO)."""
    custom_replication_tls_secret: SecretProjection | None = Field(
        None, alias="customReplicationTLSSecret"
    )
    """A Secret with `tls.crt`, `tls.key` and `ca.crt` for the replication user `_crunchyrepl`,
    issued by the same certificate authority as `customTLSSecret`."""
    service: ServiceSpec | None = None
    """How the primary's Service (`<cluster>-ha`) is exposed."""
    replica_service: ServiceSpec | None = None
    """How the replicas' Service (`<cluster>-replicas`) is exposed."""
    proxy: Proxy | None = None
    """A connection pooler."""
    user_interface: UserInterfaceSpec | None = None
    """A web user interface."""
    monitoring: MonitoringSpec | None = None
    """Metrics."""
    instrumentation: InstrumentationSpec | None = None
    """An OpenTelemetry collector for logs and metrics."""
    standby: StandbySpec | None = None
    """Run as a standby of another cluster."""
    shutdown: bool | None = None
    """Whether to stop every pod of the cluster (the primary last); data stays."""
    paused: bool | None = None
    """Whether the operator stops changing the cluster."""
    openshift: bool | None = None
    """Whether the cluster runs on OpenShift; detected when unset."""
    supplemental_groups: list[Annotated[Int64, Field(ge=1, le=2147483647)]] | None = None
    """Extra group IDs of the instance pods' processes."""
    users: list[PostgresUserSpec] | None = Field(
        None, max_length=64, json_schema_extra=list_map("name")
    )
    """PostgreSQL roles to create, with their databases. When unset, a role and a database
    named after the cluster are created."""


class PostgresCluster(ApiModel):
    """A PostgreSQL cluster: instances with failover (Patroni), backups (pgBackRest), optional
    pooling (pgBouncer) and monitoring."""

    api_version: ApiVersion = API_VERSION
    """The API version of the object."""
    kind: Literal["PostgresCluster"] = "PostgresCluster"
    """The kind of the object."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The object's metadata (name, namespace, labels, ...)."""
    spec: PostgresClusterSpec
    """The desired state of the cluster."""
    status: PostgresClusterStatus | None = None
    """What the operator observed."""
