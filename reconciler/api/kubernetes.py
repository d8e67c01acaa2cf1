"""Kubernetes API types embedded in our CRDs.

A field holding a Kubernetes type keeps its JSON as given (a plain dict); its schema is not written
here but taken from Kubernetes' own OpenAPI definitions (`reconciler.api.openapi`), which the CRD
generator inlines. The `KubernetesType` marker names the definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import GetJsonSchemaHandler, PlainValidator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from reconciler.api.base import Rule

EMBEDDED_KEY = "x-reconciler-kubernetes-type"
"""Placeholder key in the models' JSON schema, replaced by the inlined definition."""


@dataclass(frozen=True)
class KubernetesType:
    """Marks a field as the Kubernetes type named by its OpenAPI definition, optionally with
    CEL rules of our own on top."""

    definition: str
    rules: tuple[Rule, ...] = field(default=(), hash=False)

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema: dict[str, Any] = {EMBEDDED_KEY: self.definition}
        if self.rules:
            schema["x-kubernetes-validations"] = list(self.rules)
        return schema


_CORE = "io.k8s.api.core.v1."


def _int_or_string(value: object) -> int | str:
    """Kubernetes' int-or-string: one check, so that an error names the field only once."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise PydanticCustomError("int_or_string", "Input should be an integer or a string")


_INT_OR_STRING = PlainValidator(_int_or_string)

Affinity = Annotated[dict[str, Any], KubernetesType(_CORE + "Affinity")]
Container = Annotated[dict[str, Any], KubernetesType(_CORE + "Container")]
EnvVar = Annotated[dict[str, Any], KubernetesType(_CORE + "EnvVar")]
LocalObjectReference = Annotated[dict[str, Any], KubernetesType(_CORE + "LocalObjectReference")]
ResourceRequirements = Annotated[dict[str, Any], KubernetesType(_CORE + "ResourceRequirements")]
SecretKeySelector = Annotated[dict[str, Any], KubernetesType(_CORE + "SecretKeySelector")]
SecretProjection = Annotated[dict[str, Any], KubernetesType(_CORE + "SecretProjection")]
Toleration = Annotated[dict[str, Any], KubernetesType(_CORE + "Toleration")]
TopologySpreadConstraint = Annotated[
    dict[str, Any], KubernetesType(_CORE + "TopologySpreadConstraint")
]
VolumeProjection = Annotated[dict[str, Any], KubernetesType(_CORE + "VolumeProjection")]
LabelSelector = Annotated[
    dict[str, Any], KubernetesType("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
]
Condition = Annotated[
    dict[str, Any], KubernetesType("io.k8s.apimachinery.pkg.apis.meta.v1.Condition")
]
IntOrString = Annotated[
    int | str,
    _INT_OR_STRING,
    KubernetesType("io.k8s.apimachinery.pkg.util.intstr.IntOrString"),
]
Quantity = Annotated[
    int | str,
    _INT_OR_STRING,
    KubernetesType("io.k8s.apimachinery.pkg.api.resource.Quantity"),
]

VolumeClaimSpec = Annotated[
    dict[str, Any],
    KubernetesType(
        _CORE + "PersistentVolumeClaimSpec",
        rules=(
            Rule(
                rule="has(self.accessModes) && size(self.accessModes) > 0",
                message="missing accessModes",
            ),
            Rule(
                rule="has(self.resources) && has(self.resources.requests)"
                " && has(self.resources.requests.storage)",
                message="missing storage request",
            ),
        ),
    ),
]
"""A PersistentVolumeClaim spec that must name its access modes and storage request."""
