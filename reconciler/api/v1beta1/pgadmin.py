"""The PGAdmin kind: a standalone pgAdmin 4 that can serve several PostgresClusters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from reconciler.api.base import PRESERVE_UNKNOWN_FIELDS, ApiModel, Rule, list_map, validations
from reconciler.api.kubernetes import (
    Affinity,
    Condition,
    LabelSelector,
    LocalObjectReference,
    ResourceRequirements,
    SecretKeySelector,
    Toleration,
    VolumeClaimSpec,
    VolumeProjection,
)
from reconciler.api.v1beta1.instrumentation import InstrumentationSpec
from reconciler.api.v1beta1.shared import (
    API_VERSION,
    ApiVersion,
    ImagePullPolicy,
    Int64,
    Metadata,
    SecretKeyRef,
)


class OAuthConfiguration(ApiModel):
    """One OAuth2 provider of pgAdmin, its settings in a Secret."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    name: Annotated[str, Field(min_length=1, max_length=20, pattern="^[A-Za-z0-9]+$")]
    """The provider's `OAUTH2_NAME`."""
    secret: SecretKeyRef
    """The Secret key holding the provider's settings as a JSON object."""


class StandalonePGAdminConfiguration(ApiModel):
    """pgAdmin settings."""

    files: list[VolumeProjection] | None = None
    """Extra files projected into `/etc/pgadmin/conf.d`."""
    config_database_uri: SecretKeyRef | None = Field(None, alias="configDatabaseURI")
    """A Secret key holding the URI of an external configuration database."""
    gunicorn: dict[str, Any] | None = Field(None, json_schema_extra=PRESERVE_UNKNOWN_FIELDS)
    """Settings of the gunicorn web server, by name."""
    ldap_bind_password: SecretKeyRef | None = None
    """The Secret key that holds the LDAP bind password."""
    oauth_configurations: list[OAuthConfiguration] | None = Field(
        None, min_length=1, max_length=10, json_schema_extra=list_map("name")
    )
    """OAuth2 providers, joined to any `OAUTH2_CONFIG` of `settings`."""
    settings: dict[str, Any] | None = Field(None, json_schema_extra=PRESERVE_UNKNOWN_FIELDS)
    """pgAdmin `config_system.py` settings, by name."""


class ServerGroup(ApiModel):
    """A server group of pgAdmin, listing PostgresClusters by name or by label."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                rule="[has(self.postgresClusterName), has(self.postgresClusterSelector)]"
                ".exists_one(x, x)",
                message="exactly one of postgresClusterName or postgresClusterSelector is required",
            )
        )
    )

    name: str
    """The group name shown in pgAdmin."""
    postgres_cluster_name: str | None = None
    """A PostgresCluster in this namespace."""
    postgres_cluster_selector: LabelSelector | None = None
    """A label selector of PostgresClusters in this namespace; `{}` selects all."""


class PGAdminUser(ApiModel):
    """A pgAdmin login."""

    username: str
    """The login name (an email address)."""
    role: Literal["Administrator", "User"] | None = None
    """The role of the login in pgAdmin."""
    password_ref: SecretKeySelector
    """The Secret key holding the login's password."""


class PGAdminSpec(ApiModel):
    """The desired pgAdmin."""

    metadata: Metadata | None = None
    """Labels and annotations of the pgAdmin objects."""
    config: StandalonePGAdminConfiguration | None = None
    """pgAdmin settings."""
    instrumentation: InstrumentationSpec | None = None
    """OpenTelemetry collection of pgAdmin's logs."""
    data_volume_claim_spec: VolumeClaimSpec
    """The PersistentVolumeClaim spec of pgAdmin's data."""
    image: str | None = None
    """The pgAdmin image; defaults to the operator's `RELATED_IMAGE_STANDALONE_PGADMIN`."""
    image_pull_policy: ImagePullPolicy | None = None
    """When to pull the pgAdmin image."""
    image_pull_secrets: list[LocalObjectReference] | None = None
    """Secrets to pull the pgAdmin image with."""
    resources: ResourceRequirements | None = None
    """Compute resources of the pgAdmin container."""
    affinity: Affinity | None = None
    """Scheduling constraints of the pgAdmin pod."""
    priority_class_name: str | None = None
    """The PriorityClass of the pgAdmin pod."""
    tolerations: list[Toleration] | None = None
    """Taints the pgAdmin pod tolerates."""
    server_groups: list[ServerGroup] | None = None
    """Server groups and the PostgresClusters in them."""
    users: list[PGAdminUser] | None = Field(None, json_schema_extra=list_map("username"))
    """pgAdmin logins."""
    service_name: str | None = None
    """The name of a Service to create for pgAdmin; none is created when unset."""


class PGAdminStatus(ApiModel):
    """What the operator observed of pgAdmin."""

    conditions: list[Condition] | None = Field(None, json_schema_extra=list_map("type"))
    """The latest observations of pgAdmin's state."""
    image_sha: str | None = Field(None, alias="imageSHA")
    """The digest of the running pgAdmin image."""
    major_version: int | None = None
    """The pgAdmin major version of the image."""
    observed_generation: Int64 | None = Field(None, ge=0)
    """The spec generation the status describes."""


class PGAdmin(ApiModel):
    """A standalone pgAdmin 4."""

    api_version: ApiVersion = API_VERSION
    """The API version of the object."""
    kind: Literal["PGAdmin"] = "PGAdmin"
    """The kind of the object."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The object's metadata."""
    spec: PGAdminSpec
    """The desired pgAdmin."""
    status: PGAdminStatus | None = None
    """What the operator observed."""
