"""Kubernetes' OpenAPI v3 definitions of the types our CRDs embed, captured from a real
kube-apiserver by `python -m reconciler_envtest.openapi_capture` into `definitions.json`."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DEFINITIONS_FILE = Path(__file__).with_name("definitions.json")


@cache
def definitions() -> dict[str, Any]:
    """The captured definitions, by name (e.g. `io.k8s.api.core.v1.Affinity`)."""
    captured: dict[str, Any] = json.loads(DEFINITIONS_FILE.read_text())["definitions"]
    return captured
