"""Capture Kubernetes' OpenAPI definitions of the types our models embed.

    python -m reconciler_envtest.openapi_capture

starts a local control plane (`reconciler_envtest`), reads the OpenAPI v3 documents the
kube-apiserver publishes, keeps the embedded types and everything they refer to, and writes
`definitions.json`. Run it after changing the pinned Kubernetes version or embedding a new type.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.api.openapi import DEFINITIONS_FILE
from reconciler.runtime.client import Client
from reconciler_envtest import KUBERNETES_VERSION, ControlPlane

DOCUMENTS = ("api/v1", "apis/policy/v1")
"""The group-versions whose documents hold our types: core/v1, and policy/v1 for the
meta/v1 Condition (core/v1 does not use it)."""


def referenced(schemas: Mapping[str, Any], roots: Iterable[str]) -> dict[str, Any]:
    """The named definitions and every definition they refer to, transitively."""
    kept: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        kept[name] = schemas[name]
        pending.extend(_references(schemas[name]))
    return dict(sorted(kept.items()))


def _references(node: object) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


async def published_schemas() -> dict[str, Any]:
    """Every schema of `DOCUMENTS`, from a freshly started local kube-apiserver."""
    schemas: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="openapi-capture-") as run_dir:
        async with (
            ControlPlane(Path(run_dir)) as plane,
            await Client.from_kubeconfig(
                str(plane.kubeconfig), user_agent="reconciler-openapi-capture"
            ) as client,
        ):
            for document in DOCUMENTS:
                published = await client.request("GET", f"/openapi/v3/{document}")
                schemas.update(published["components"]["schemas"])
    return schemas


def main() -> None:
    """Capture the definitions into `reconciler/api/openapi/definitions.json`."""
    from reconciler.api.crd import embedded_definitions

    schemas = asyncio.run(published_schemas())
    captured = {
        "kubernetesVersion": KUBERNETES_VERSION,
        "definitions": referenced(schemas, embedded_definitions()),
    }
    DEFINITIONS_FILE.write_text(json.dumps(captured, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(captured['definitions'])} definitions to {DEFINITIONS_FILE}")


if __name__ == "__main__":
    main()
