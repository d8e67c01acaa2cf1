"""`spec.proxy`: the pgBouncer connection pooler."""

from __future__ import annotations

from pydantic import Field

from reconciler.api.base import ApiModel, crd_default
from reconciler.api.kubernetes import (
    Affinity,
    Container,
    IntOrString,
    ResourceRequirements,
    SecretProjection,
    Toleration,
    TopologySpreadConstraint,
    VolumeProjection,
)
from reconciler.api.v1beta1.shared import ContainerResources, Int32, Metadata, ServiceSpec


class PGBouncerConfiguration(ApiModel):
    """pgBouncer settings (see the pgBouncer documentation)."""

    files: list[VolumeProjection] | None = None
    """Extra files projected into `/etc/pgbouncer`; a `pgbouncer.ini` there is included."""
    global_: dict[str, str] | None = Field(None, alias="global")
    """Settings of the `[pgbouncer]` section."""
    databases: dict[str, str] | None = None
    """Entries of the `[databases]` section; by default every database is reachable."""
    users: dict[str, str] | None = None
    """Entries of the `[users]` section."""


class PGBouncerSidecars(ApiModel):
    """Settings of the operator's sidecars in pgBouncer pods."""

    pgbouncer_config: ContainerResources | None = None
    """The container that reloads pgBouncer when its configuration changes."""


class PGBouncerPodSpec(ApiModel):
    """A pgBouncer Deployment in front of the primary."""

    metadata: Metadata | None = None
    """Labels and annotations of the pgBouncer objects."""
    affinity: Affinity | None = None
    """Scheduling constraints of the pgBouncer pods."""
    config: PGBouncerConfiguration | None = None
    """pgBouncer settings."""
    containers: list[Container] | None = None
    """Extra containers added to the pgBouncer pods."""
    custom_tls_secret: SecretProjection | None = Field(None, alias="customTLSSecret")
    """A Secret with `tls.crt`, `tls.key` and `ca.crt` that pgBouncer presents to clients;
    the operator issues one when unset."""
    image: str | None = None
    """The pgBouncer image; defaults to the operator's `RELATED_IMAGE_PGBOUNCER`."""
    port: Int32 | None = Field(None, ge=1024, json_schema_extra=crd_default(5432))
    """The port pgBouncer listens on."""
    priority_class_name: str | None = None
    """The PriorityClass of the pgBouncer pods."""
    replicas: Int32 | None = Field(None, ge=0, json_schema_extra=crd_default(1))
    """How many pgBouncer pods run."""
    min_available: IntOrString | None = None
    """The minimum number (or percentage) of pgBouncer pods that must stay available during
    voluntary disruptions."""
    resources: ResourceRequirements | None = None
    """Compute resources of the pgBouncer container."""
    service: ServiceSpec | None = None
    """How the pgBouncer Service is exposed."""
    sidecars: PGBouncerSidecars | None = None
    """Settings of the operator's sidecars."""
    tolerations: list[Toleration] | None = None
    """Taints the pgBouncer pods tolerate."""
    topology_spread_constraints: list[TopologySpreadConstraint] | None = None
    """How the pgBouncer pods spread over failure domains."""


class Proxy(ApiModel):
    """A connection pooler between clients and PostgreSQL."""

    pg_bouncer: PGBouncerPodSpec
    """pgBouncer."""
