"""`spec.userInterface`: the pgAdmin embedded in a PostgresCluster (superseded by the PGAdmin
kind)."""

from __future__ import annotations

from pydantic import Field

from reconciler.api.base import PRESERVE_UNKNOWN_FIELDS, ApiModel, crd_default
from reconciler.api.kubernetes import (
    Affinity,
    ResourceRequirements,
    Toleration,
    TopologySpreadConstraint,
    VolumeClaimSpec,
    VolumeProjection,
)
from reconciler.api.v1beta1.shared import Int32, Metadata, SecretKeyRef, ServiceSpec


class PGAdminConfiguration(ApiModel):
    """pgAdmin settings."""

    files: list[VolumeProjection] | None = None
    """Extra files projected into `/etc/pgadmin/conf.d`."""
    ldap_bind_password: SecretKeyRef | None = None
    """The Secret key that holds the LDAP bind password."""
    settings: dict[str, object] | None = Field(None, json_schema_extra=PRESERVE_UNKNOWN_FIELDS)
    """pgAdmin `config_system.py` settings, by name."""


class PGAdminPodSpec(ApiModel):
    """A pgAdmin 4 Deployment connected to this cluster."""

    metadata: Metadata | None = None
    """Labels and annotations of the pgAdmin objects."""
    affinity: Affinity | None = None
    """Scheduling constraints of the pgAdmin pod."""
    config: PGAdminConfiguration | None = None
    """pgAdmin settings."""
    data_volume_claim_spec: VolumeClaimSpec
    """The PersistentVolumeClaim spec of pgAdmin's data."""
    image: str | None = None
    """The pgAdmin image; defaults to the operator's `RELATED_IMAGE_PGADMIN`."""
    priority_class_name: str | None = None
    """The PriorityClass of the pgAdmin pod."""
    replicas: Int32 | None = Field(None, ge=0, le=1, json_schema_extra=crd_default(1))
    """How many pgAdmin pods run: 0 or 1."""
    resources: ResourceRequirements | None = None
    """Compute resources of the pgAdmin container."""
    service: ServiceSpec | None = None
    """How the pgAdmin Service is exposed."""
    tolerations: list[Toleration] | None = None
    """Taints the pgAdmin pod tolerates."""
    topology_spread_constraints: list[TopologySpreadConstraint] | None = None
    """How the pgAdmin pod spreads over failure domains."""


class UserInterfaceSpec(ApiModel):
    """A web user interface for the cluster."""

    pg_admin: PGAdminPodSpec
    """pgAdmin 4."""
