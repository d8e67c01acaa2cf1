"""The cluster's status: the `Ready` condition, what the spec asks that is not acted on yet, and
the merge patch that writes only what changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler import naming
from reconciler.runtime.client import JSON


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> JSON:
    """A JSON merge patch (RFC 7386) turning status `old` into `new`: removed keys become
    null, objects are patched key by key (a merge patch cannot replace one as a whole)."""
    patch: JSON = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if before == value:
            continue
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            patch[key] = status_patch(before, value)
        else:
            patch[key] = value
    return patch


def ready(status: JSON, spec: JSON) -> tuple[str, str, str]:
    """`Ready` (PGO has none) as (status, reason, message): every instance of every set has a
    ready pod."""
    observed = status.get("instances") or []
    wanted = sum(int(s["replicas"]) for s in spec["instances"])
    count = sum(int(s.get("readyReplicas", 0)) for s in observed)
    if spec.get("shutdown"):
        return "False", naming.REASON_SHUTDOWN, "The cluster is shut down (spec.shutdown)."
    if count >= wanted:
        return "True", naming.REASON_ALL_INSTANCES_READY, f"{count} of {wanted} instances ready"
    return "False", naming.REASON_INSTANCES_NOT_READY, f"{count} of {wanted} instances ready"


def unsupported_fields(spec: JSON) -> list[str]:
    """The sections of the spec this operator accepts (PGO's schema) but does not act on yet."""
    backups = spec.get("backups") or {}
    sections = {
        "spec.backups.snapshots": backups.get("snapshots"),
        "spec.instrumentation": spec.get("instrumentation"),
        "spec.userInterface": spec.get("userInterface"),
    }
    return [name for name, value in sections.items() if value]


def unsupported_message(fields: list[str]) -> str:
    """The `UnsupportedSpec` condition's message (and its Event's)."""
    message = (
        f"{', '.join(fields)}: accepted but not acted on by this version of the operator; "
        "the rest of the cluster is managed"
    )
    return message
