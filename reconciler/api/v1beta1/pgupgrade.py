"""The PGUpgrade kind: a major PostgreSQL upgrade of a PostgresCluster with pg_upgrade."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from reconciler.api.base import ApiModel, Rule, list_map, validations
from reconciler.api.kubernetes import (
    Affinity,
    Condition,
    LocalObjectReference,
    ResourceRequirements,
    Toleration,
)
from reconciler.api.v1beta1.shared import (
    API_VERSION,
    ApiVersion,
    ImagePullPolicy,
    Int32,
    Int64,
    Metadata,
)

PostgresMajor = Annotated[int, Field(ge=11, le=18, json_schema_extra={"format": "int32"})]


class PGUpgradeSpec(ApiModel):
    """The desired upgrade. It runs once the cluster carries the annotation
    `postgres-operator.crunchydata.com/allow-upgrade: <this object's name>` and is shut down."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                rule="self.fromPostgresVersion < self.toPostgresVersion",
                message="toPostgresVersion must be greater than fromPostgresVersion",
                fieldPath=".toPostgresVersion",
            ),
            Rule(
                rule="!has(self.transferMethod) || (self.toPostgresVersion < 12"
                ' ? self.transferMethod in ["Copy","Link"] : true)',
                message="Only Copy or Link before PostgreSQL 12",
            ),
            Rule(
                rule="!has(self.transferMethod) || (self.toPostgresVersion < 17"
                ' ? self.transferMethod in ["Clone","Copy","Link"] : true)',
                message="Only Clone, Copy, or Link before PostgreSQL 17",
            ),
        )
    )

    metadata: Metadata | None = None
    """Labels and annotations of the upgrade Jobs."""
    postgres_cluster_name: Annotated[str, Field(min_length=1)]
    """The PostgresCluster to upgrade, in this namespace."""
    image: str | None = None
    """The upgrade image; defaults to the operator's `RELATED_IMAGE_PGUPGRADE`."""
    image_pull_policy: ImagePullPolicy | None = None
    """When to pull the upgrade image."""
    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets to pull the upgrade image with."""
    from_postgres_version: PostgresMajor
    """The PostgreSQL major version the cluster runs now."""
    to_postgres_version: PostgresMajor
    """The PostgreSQL major version to upgrade to."""
    to_postgres_image: str | None = None
    """The PostgreSQL image of the new version; defaults to the operator's image for it."""
    transfer_method: (
        Annotated[
            Literal["Clone", "Copy", "CopyFileRange", "Link"],
            Field(json_schema_extra={"maxLength": 15}),
        ]
        | None
    ) = None
    """How pg_upgrade transfers the data files."""
    jobs: Int32 | None = Field(None, ge=0)
    """How many processes pg_upgrade runs at once (`--jobs`)."""
    resources: ResourceRequirements | None = None
    """Compute resources of the upgrade Job."""
    affinity: Affinity | None = None
    """Scheduling constraints of the upgrade Job."""
    priority_class_name: str | None = None
    """The PriorityClass of the upgrade Job."""
    tolerations: list[Toleration] | None = None
    """Taints the upgrade Job tolerates."""


class PGUpgradeStatus(ApiModel):
    """What the operator observed of the upgrade."""

    conditions: list[Condition] | None = Field(None, json_schema_extra=list_map("type"))
    """The progress of the upgrade."""
    observed_generation: Int64 | None = Field(None, ge=0)
    """The spec generation the status describes."""


class PGUpgrade(ApiModel):
    """A major PostgreSQL upgrade of a PostgresCluster."""

    api_version: ApiVersion = API_VERSION
    """The API version of the object."""
    kind: Literal["PGUpgrade"] = "PGUpgrade"
    """The kind of the object."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The object's metadata."""
    spec: PGUpgradeSpec
    """The desired upgrade."""
    status: PGUpgradeStatus | None = None
    """What the operator observed."""
