"""Types shared by several parts of the v1beta1 API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from reconciler.api.base import ApiModel, Rule, crd_default, validations
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


DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Kubernetes object name (RFC 1123 subdomain)."""


class SecretKeyRef(ApiModel):
    """A key of a Secret in this namespace, named in full (unlike core's SecretKeySelector,
    whose name may be empty)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    """The Secret's name."""
    key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern="^[-._a-zA-Z0-9]+$",
            json_schema_extra=validations(
                Rule(
                    rule='self != "." && !self.startsWith("..")',
                    message='a key cannot be "." or start with ".."',
                )
            ),
        ),
    ]
    """The key within the Secret."""
    optional: bool | None = None
    """Whether the Secret or its key may be missing; false when unset."""


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
