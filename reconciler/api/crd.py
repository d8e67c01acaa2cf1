"""CustomResourceDefinitions generated from the models: `reconciler crd` prints them, and
`manifests/crd/` holds the committed output."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from reconciler.api import openapi
from reconciler.api.kubernetes import EMBEDDED_KEY
from reconciler.api.structural import JSON, KubernetesSchemas, ModelSchemas, describe
from reconciler.api.v1beta1 import GROUP, VERSION, PGAdmin, PGUpgrade, PostgresCluster
from reconciler.runtime.client import Client
from reconciler.runtime.resources import CUSTOM_RESOURCE_DEFINITIONS, Resource

DESCRIBE_DEPTH = 1
"""Descriptions of embedded Kubernetes types are kept for their own fields only; deeper ones
would double the PostgresCluster CRD (containers, affinity) for little help."""

CATEGORIES = ["postgres-operator"]


@dataclass(frozen=True)
class Kind:
    """One custom resource kind of the API and how it is presented."""

    model: type[BaseModel]
    plural: str
    printer_columns: list[JSON] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The kind, e.g. `PostgresCluster`."""
        return self.model.__name__

    @property
    def crd_name(self) -> str:
        """The CRD's object name, `<plural>.<group>`."""
        return f"{self.plural}.{GROUP}"

    @property
    def resource(self) -> Resource:
        """Where objects of this kind live in the REST tree."""
        return Resource(GROUP, VERSION, self.plural, self.name)

    @property
    def file_name(self) -> str:
        """The file of the CRD in `manifests/crd/`."""
        return f"{GROUP}_{self.plural}.yaml"


POSTGRES_CLUSTERS = Kind(
    PostgresCluster,
    "postgresclusters",
    printer_columns=[
        {
            "name": "Ready",
            "type": "string",
            "description": "Ready instances of each instance set",
            "jsonPath": ".status.instances[*].readyReplicas",
        },
        {
            "name": "Postgres",
            "type": "integer",
            "description": "PostgreSQL major version",
            "jsonPath": ".spec.postgresVersion",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
)
PG_UPGRADES = Kind(PGUpgrade, "pgupgrades")
PG_ADMINS = Kind(PGAdmin, "pgadmins")
KINDS = (POSTGRES_CLUSTERS, PG_UPGRADES, PG_ADMINS)


def embedded_definitions() -> set[str]:
    """The Kubernetes definitions the models embed directly."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if EMBEDDED_KEY in node:
                found.add(node[EMBEDDED_KEY])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for kind in KINDS:
        walk(kind.model.model_json_schema(by_alias=True))
    return found


def openapi_schema(kind: Kind) -> JSON:
    """The structural `openAPIV3Schema` of a kind."""
    kubernetes = KubernetesSchemas(openapi.definitions(), DESCRIBE_DEPTH)
    schema = ModelSchemas(kind.model.model_json_schema(by_alias=True), kubernetes).convert()
    properties = schema["properties"]
    # apiVersion, kind and metadata are the apiserver's: no enum, no schema of our own.
    properties["apiVersion"] = {
        "type": "string",
        "description": describe(
            "The versioned schema of this object. Servers convert recognized schemas to the"
            " latest internal value and may reject unrecognized values."
        ),
    }
    properties["kind"] = {
        "type": "string",
        "description": "The REST resource this object represents, in CamelCase.",
    }
    properties["metadata"] = {"type": "object"}
    # As PGO's: an object without a spec is stored, and the controller reports it (InvalidSpec).
    schema.pop("required", None)
    return schema


def custom_resource_definition(kind: Kind) -> JSON:
    """The CustomResourceDefinition of a kind, served and stored as v1beta1."""
    version: JSON = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": openapi_schema(kind)},
        "subresources": {"status": {}},
    }
    if kind.printer_columns:
        version["additionalPrinterColumns"] = kind.printer_columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.name,
                "listKind": f"{kind.name}List",
                "plural": kind.plural,
                "singular": kind.name.lower(),
                "categories": CATEGORIES,
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def to_yaml(document: Any) -> str:
    """One YAML document, in the layout of the committed files."""
    return yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def rendered() -> dict[str, str]:
    """Every generated file of `manifests/crd/`, by file name."""
    files = {kind.file_name: to_yaml(custom_resource_definition(kind)) for kind in KINDS}
    files["kustomization.yaml"] = to_yaml(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [kind.file_name for kind in KINDS],
            "labels": [{"pairs": {"app.kubernetes.io/name": "pgo"}, "includeSelectors": False}],
        }
    )
    return files


def all_documents() -> str:
    """Every CRD as one multi-document YAML stream."""
    return "---\n".join(to_yaml(custom_resource_definition(kind)) for kind in KINDS)


def differences(directory: Path) -> list[str]:
    """The generated files that are missing from `directory` or differ from it."""
    return [
        name
        for name, text in rendered().items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]


def write(directory: Path) -> list[str]:
    """Write the generated files into `directory`; return the names of those that changed."""
    changed = differences(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        if name in changed:
            (directory / name).write_text(text)
    return changed


async def install(
    client: Client,
    definitions: Sequence[JSON] | None = None,
    *,
    field_manager: str,
    timeout: float = 30.0,
) -> None:
    """Apply the CRDs (default: every kind's) and wait until the apiserver serves them."""
    definitions = definitions or [custom_resource_definition(kind) for kind in KINDS]
    for definition in definitions:
        await client.apply(CUSTOM_RESOURCE_DEFINITIONS, definition, field_manager=field_manager)
    deadline = asyncio.get_running_loop().time() + timeout
    for definition in definitions:
        name = definition["metadata"]["name"]
        while True:
            found = await client.get(CUSTOM_RESOURCE_DEFINITIONS, name)
            conditions = (found.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"CustomResourceDefinition {name} not Established in {timeout}s")
            await asyncio.sleep(0.05)
