"""Status conditions (metav1.Condition): set one without disturbing the others' history."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

Condition = dict[str, Any]


def now() -> str:
    """The current time in the API's format, to the second."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    observed_generation: int | None,
    at: str | None = None,
) -> list[Condition]:
    """The conditions with `type_` set; its transition time changes only when its status does."""
    previous = next((c for c in conditions if c.get("type") == type_), None)
    transition = (
        previous["lastTransitionTime"]
        if previous and previous.get("status") == status and previous.get("lastTransitionTime")
        else at or now()
    )
    condition: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    others = [c for c in conditions if c.get("type") != type_]
    return sorted([*others, condition], key=lambda c: str(c["type"]))


def remove_condition(conditions: Sequence[Condition], type_: str) -> list[Condition]:
    """The conditions without `type_`."""
    return [c for c in conditions if c.get("type") != type_]


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of `type_`, if set."""
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(status: Mapping[str, Any], type_: str) -> bool:
    """Whether an object's `status` holds condition `type_` with status True."""
    found = find(status.get("conditions") or [], type_)
    return found is not None and found.get("status") == "True"
