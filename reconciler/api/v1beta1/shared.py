"""Types shared by several parts of the v1beta1 API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reconciler.api.base import ApiModel, crd_default
from reconciler.api.kubernetes import ResourceRequirements

GROUP = "postgres-operator.crunchydata.com"
VERSION = "v1beta1"
ApiVersion = Literal["postgres-operator.crunchydata.com/v1beta1"]
API_VERSION: ApiVersion = "postgres-operator.crunchydata.com/v1beta1"

Int32 = Annotated[int, Field(json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]

REPO_NAME_PATTERN = "^repo[1-4]"
"""pgBackRest repositories are numbered: `repo1` to `repo4`."""

RepoName = Annotated[str, Field(pattern=REPO_NAME_PATTERN)]

ImagePullPolicy = Annotated[
    Literal["Always", "Never", "IfNotPresent"], Field(json_schema_extra={"maxLength": 15})
]


class Metadata(ApiModel):
    """Labels and annotations added to the objects the operator creates for this part."""

    labels: dict[str, str] | None = None
    """Labels to add; the operator's own labels take precedence."""
    annotations: dict[str, str] | None = None
    """Annotations to add; the operator's own annotations take precedence."""


class ContainerResources(ApiModel):
    """Settings of one operator-managed sidecar container."""

    resources: ResourceRequirements | None = None
    """Compute resources (CPU, memory) of the container."""


class ServiceSpec(ApiModel):
    """How a Service the operator creates is exposed."""

    metadata: Metadata | None = None
    """Labels and annotations of the Service."""
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] | None = Field(
        None, json_schema_extra=crd_default("ClusterIP")
    )
    """The Service type; `ClusterIP` keeps it inside the cluster."""
    node_port: Int32 | None = None
    """The port on every node for a NodePort or LoadBalancer Service; chosen by Kubernetes
    when unset. It must be in the cluster's node port range."""
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    """Whether the Service gets one IP family or both."""
    ip_families: list[Literal["IPv4", "IPv6"]] | None = None
    """The IP families of the Service, in order of preference."""
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    """Whether traffic from inside the cluster may go to endpoints on other nodes."""
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    """Whether external traffic may go to endpoints on other nodes (`Local` keeps the client
    source address)."""
