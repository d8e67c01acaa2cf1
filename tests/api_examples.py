"""The example manifests of `manifests/examples/`, for the API tests of every tier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPOSITORY / "manifests" / "examples"
CRD_DIR = REPOSITORY / "manifests" / "crd"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    """The one object of an example file."""
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def hippo() -> dict[str, Any]:
    """A fresh copy of the quick-start cluster, for tests to change."""
    return load(EXAMPLES_DIR / "hippo.yaml")


def hippo_upgrade(namespace: str, **spec: Any) -> dict[str, Any]:
    """The example PGUpgrade in `namespace`, from PostgreSQL 15 (the process node's) to 17,
    with `spec` fields overriding."""
    upgrade = load(EXAMPLES_DIR / "pgupgrade.yaml")
    upgrade["metadata"]["namespace"] = namespace
    upgrade["spec"].update({"fromPostgresVersion": 15, "toPostgresVersion": 17, **spec})
    return upgrade
