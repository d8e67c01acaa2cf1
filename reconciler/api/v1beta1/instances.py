"""`spec.instances`: the sets of PostgreSQL instances."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from reconciler.api.base import ApiModel, crd_default, list_map
from reconciler.api.kubernetes import (
    Affinity,
    Container,
    IntOrString,
    ResourceRequirements,
    Toleration,
    TopologySpreadConstraint,
    VolumeClaimSpec,
)
from reconciler.api.v1beta1.shared import ContainerResources, Int32, Metadata

INSTANCE_SET_NAME_PATTERN = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"


class TablespaceVolume(ApiModel):
    """A volume for one PostgreSQL tablespace, mounted at `/tablespaces/<name>`."""

    name: Annotated[str, Field(min_length=1, pattern="^[a-z][a-z0-9]*$")]
    """The tablespace volume's name: lowercase letters and digits, starting with a letter."""
    data_volume_claim_spec: VolumeClaimSpec
    """The PersistentVolumeClaim spec of the tablespace volume."""


class InstanceVolumes(ApiModel):
    """Additional volumes of every instance in the set."""

    temp: VolumeClaimSpec | None = None
    """An ephemeral volume for PostgreSQL temporary files, mounted at `/pgtmp`."""


class InstanceSidecars(ApiModel):
    """Settings of the operator's sidecar containers in instance pods."""

    replica_cert_copy: ContainerResources | None = None
    """The container that keeps the replication certificates up to date."""


class PostgresInstanceSetSpec(ApiModel):
    """A set of identical PostgreSQL instances: one StatefulSet (and one pod) per replica."""

    name: Annotated[str | None, Field(pattern=INSTANCE_SET_NAME_PATTERN)] = Field(
        None, json_schema_extra=crd_default("")
    )
    """The name of the set, unique in the cluster; the operator names an unnamed set after its
    position (`00`, `01`, ...). Keep the cluster name plus this name within 46 characters."""
    metadata: Metadata | None = None
    """Labels and annotations of the set's StatefulSets, pods, volumes and other objects."""
    replicas: Int32 | None = Field(None, ge=1, json_schema_extra=crd_default(1))
    """How many instances this set runs."""
    data_volume_claim_spec: VolumeClaimSpec
    """The PersistentVolumeClaim spec of each instance's data directory (`/pgdata`)."""
    wal_volume_claim_spec: VolumeClaimSpec | None = None
    """A separate PersistentVolumeClaim for the write-ahead log (`/pgwal`); without it the WAL
    stays on the data volume."""
    tablespace_volumes: list[TablespaceVolume] | None = Field(
        None, json_schema_extra=list_map("name")
    )
    """Volumes for tablespaces (feature gate `TablespaceVolumes`)."""
    volumes: InstanceVolumes | None = None
    """Additional volumes of each instance."""
    resources: ResourceRequirements | None = None
    """Compute resources of the `database` container."""
    affinity: Affinity | None = None
    """Scheduling constraints of the instance pods."""
    tolerations: list[Toleration] | None = None
    """Taints the instance pods tolerate."""
    topology_spread_constraints: list[TopologySpreadConstraint] | None = None
    """How the instance pods spread over failure domains; added to the operator's defaults
    unless `disableDefaultPodScheduling` is true."""
    priority_class_name: str | None = None
    """The PriorityClass of the instance pods."""
    min_available: IntOrString | None = None
    """The minimum number (or percentage) of instances of this set that must stay available
    during voluntary disruptions. Defaults to 1 when the set has more than one replica."""
    containers: list[Container] | None = None
    """Extra containers added to every instance pod (feature gate `InstanceSidecars`)."""
    sidecars: InstanceSidecars | None = None
    """Settings of the operator's sidecar containers."""
