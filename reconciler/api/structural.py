"""Structural schemas (what a CRD needs) from the models' JSON schema and from Kubernetes'
OpenAPI definitions.

pydantic describes a model with `$ref`s, `anyOf` for optional fields and titles; a CRD wants
every node inlined, typed and described, with Kubernetes' `x-kubernetes-*` extensions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.api.kubernetes import EMBEDDED_KEY

JSON = dict[str, Any]

CRD_DEFAULT_KEY = "x-crd-default"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

# Kubernetes' quantity grammar: a signed decimal number with an optional binary (Ki..Ei),
# decimal (m, k..E) or exponent suffix.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_INT_OR_STRING: JSON = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
}
_SPECIAL: dict[str, JSON] = {
    QUANTITY: {**_INT_OR_STRING, "pattern": QUANTITY_PATTERN},
    INT_OR_STRING: _INT_OR_STRING,
}

# Extensions of Kubernetes' published OpenAPI that CRD schemas do not accept, or that describe
# built-in behaviour (strategic merge patch) custom resources do not have.
_KUBERNETES_ONLY = frozenset(
    {
        "x-kubernetes-patch-strategy",
        "x-kubernetes-patch-merge-key",
        "x-kubernetes-unions",
        "x-kubernetes-group-version-kind",
    }
)
# Enums and defaults of embedded types are dropped: PGO's CRD has neither, so keeping them would
# reject or rewrite manifests PGO accepts unchanged (e.g. an empty toleration effect).
_NOT_COPIED = _KUBERNETES_ONLY | {"enum", "default", "description", "$ref", "allOf"}


def describe(text: str) -> str:
    """A docstring as a description: paragraphs kept, lines inside a paragraph joined."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


class KubernetesSchemas:
    """Inlines Kubernetes' definitions, describing fields down to `describe_depth` levels
    below the embedding field (deeper descriptions cost CRD size and rarely help)."""

    def __init__(self, definitions: Mapping[str, JSON], describe_depth: int) -> None:
        self._definitions = definitions
        self._describe_depth = describe_depth

    def inline(self, name: str) -> JSON:
        """The structural schema of the named definition."""
        return self._definition(name, 0, ())

    def _definition(self, name: str, depth: int, seen: tuple[str, ...]) -> JSON:
        if name in _SPECIAL:
            return dict(_SPECIAL[name])
        if name in seen:  # a recursive type: accept anything below this point
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return self._node(self._definitions[name], depth, (*seen, name))

    def _resolve(self, node: JSON) -> JSON:
        """The definition a node refers to (directly or via a single `allOf`), else the node."""
        ref = node.get("$ref") or next(
            (part["$ref"] for part in node.get("allOf", ()) if "$ref" in part), None
        )
        if ref is None:
            return node
        resolved: JSON = self._definitions[ref.rsplit("/", 1)[-1]]
        return resolved

    def _node(self, node: JSON, depth: int, seen: tuple[str, ...]) -> JSON:
        ref = node.get("$ref") or next(
            (part["$ref"] for part in node.get("allOf", ()) if "$ref" in part), None
        )
        result: JSON = {}
        if ref is not None:
            result.update(self._definition(ref.rsplit("/", 1)[-1], depth, seen))
            result.pop("description", None)
        for key, value in node.items():
            if key in _NOT_COPIED or (key == "format" and value == "int-or-string"):
                continue
            if key == "oneOf":  # only IntOrString-like nodes use oneOf
                result.update(_INT_OR_STRING)
            elif key == "properties":
                result[key] = {
                    name: self._node(child, depth + 1, seen) for name, child in value.items()
                }
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                result[key] = self._node(value, depth, seen)
            else:
                result[key] = value
        if "description" in node and depth <= self._describe_depth:
            result["description"] = node["description"]
        if result.get("x-kubernetes-list-type") == "map":
            self._default_list_map_keys(node, result)
        return result

    def _default_list_map_keys(self, source: JSON, result: JSON) -> None:
        """Keep the defaults of list-map keys: the apiserver requires every key to be required
        or defaulted (e.g. a container port's `protocol`, default TCP)."""
        source_item = self._resolve(source["items"])
        item = result["items"]
        for key in result.get("x-kubernetes-list-map-keys", ()):
            if key in item.get("required", ()):
                continue
            default = source_item.get("properties", {}).get(key, {}).get("default")
            if default is not None:
                item["properties"][key]["default"] = default


class ModelSchemas:
    """Converts one model's pydantic JSON schema (mode validation, by alias) into a structural
    schema, inlining `$defs` and the Kubernetes types it embeds."""

    def __init__(self, schema: JSON, kubernetes: KubernetesSchemas) -> None:
        self._defs: dict[str, JSON] = schema.get("$defs", {})
        self._kubernetes = kubernetes
        self._root = schema

    def convert(self) -> JSON:
        """The structural schema of the whole model."""
        return self._node(self._root, "")

    def _node(self, node: JSON, path: str) -> JSON:
        result = self._inherited(node, path)
        for key, value in node.items():
            if key in ("$ref", "$defs", "anyOf", "title", "default", EMBEDDED_KEY):
                continue
            if key == "x-kubernetes-validations":
                result[key] = result.get(key, []) + value
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    result[key] = self._node(value, f"{path}.*")
                elif "properties" not in node:  # dict[str, Any]: keep whatever it holds
                    result["x-kubernetes-preserve-unknown-fields"] = True
            else:
                result.update(self._own(key, value, path))
        return result

    def _inherited(self, node: JSON, path: str) -> JSON:
        """What a node takes from the model, Kubernetes type or union member it refers to."""
        if "$ref" in node:
            return self._node(self._defs[node["$ref"].rsplit("/", 1)[-1]], path)
        if EMBEDDED_KEY in node:
            return self._kubernetes.inline(node[EMBEDDED_KEY])
        if "anyOf" in node:
            options = [option for option in node["anyOf"] if option != {"type": "null"}]
            if len(options) != 1:
                raise ValueError(f"{path}: a union needs a Kubernetes type marker: {options}")
            return self._node(options[0], path)
        return {}

    def _own(self, key: str, value: Any, path: str) -> JSON:
        """A node's own keyword, converted."""
        if key == "properties":
            return {
                key: {
                    name: self._property(child, f"{path}.{name}") for name, child in value.items()
                }
            }
        if key == "items":
            return {key: self._node(value, f"{path}[]")}
        if key == "const":
            return {"enum": [value]}
        if key == CRD_DEFAULT_KEY:
            return {"default": value}
        if key == "description":
            return {key: describe(value)}
        return {key: value}

    def _property(self, node: JSON, path: str) -> JSON:
        result = self._node(node, path)
        if "description" not in result:
            raise ValueError(f"{path}: every field needs a description (a docstring)")
        return result
