"""The base of every API model, and the markers that carry Kubernetes-only schema facts."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A JSON object of the API, with its camelCase field names.

    Unknown fields are kept (`extra="allow"`), not rejected: an object written under an older or
    newer CRD still parses, and dumping it gives the fields back unchanged. The apiserver prunes
    fields its CRD does not declare, so they never reach us from a current CRD anyway.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        use_attribute_docstrings=True,
        validate_by_alias=True,
        validate_by_name=True,
    )

    def dump(self) -> dict[str, Any]:
        """The JSON object: camelCase names, only the fields that were set, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)


class Rule(TypedDict, total=False):
    """One CEL validation rule of a CRD schema node (`x-kubernetes-validations`)."""

    rule: str
    message: str
    messageExpression: str
    fieldPath: str
    reason: str


def validations(*rules: Rule) -> dict[str, Any]:
    """Schema extras that attach CEL rules to a model or field."""
    return {"x-kubernetes-validations": list(rules)}


def list_map(*keys: str) -> dict[str, Any]:
    """Schema extras for a list whose items are merged by the given key fields."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


PRESERVE_UNKNOWN_FIELDS: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
"""Schema extras for an object whose fields are not ours to list (e.g. Patroni's own
configuration): the apiserver keeps whatever it holds."""

LIST_SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}
"""Schema extras for a list of unique scalars."""

ATOMIC: dict[str, Any] = {"x-kubernetes-list-type": "atomic"}
"""Schema extras for a list replaced as a whole by server-side apply."""


def crd_default(value: object) -> dict[str, Any]:
    """Schema extras for a default the apiserver writes into stored objects (as PGO's CRD does).

    The model keeps `None` for an unset field, so that dump -> parse round-trips and the
    operator's own defaults (`reconciler.api.defaults`) stay the one place that fills gaps.
    """
    return {"x-crd-default": value}
