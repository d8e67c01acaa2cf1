"""Whether a live object already holds what we would apply, so that a steady state sends nothing.

Comparing the intent with the cached object field by field is not enough on its own: the API
server adds defaults (so equality never holds), and a field dropped from the intent would stay
on the live object yet still "match". So two checks, both cheap and local:

- the live object carries the hash of the last intent applied (annotation `INTENT_HASH`), which
  catches intents that changed, fields removed included;
- every field of the intent has the same value in the live object (quantities compared by
  value: the server stores `1000m` as `1`), which catches edits made by someone else.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from reconciler.runtime import quantity

INTENT_HASH = "reconciler.dev/intent-hash"


def intent_hash(intent: dict[str, Any]) -> str:
    """A digest of the intent without its own hash annotation (keys sorted: order-independent)."""
    metadata = dict(intent.get("metadata") or {})
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != INTENT_HASH}
    metadata["annotations"] = annotations
    canonical = orjson.dumps({**intent, "metadata": metadata}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def with_intent_hash(intent: dict[str, Any]) -> dict[str, Any]:
    """The intent, annotated with its own hash (what gets applied)."""
    metadata = dict(intent.get("metadata") or {})
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        INTENT_HASH: intent_hash(intent),
    }
    return {**intent, "metadata": metadata}


def in_sync(intent: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Whether applying `intent` (annotated by `with_intent_hash`) would change nothing."""
    if live is None:
        return False
    live_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(INTENT_HASH)
    if live_hash != intent_hash(intent):
        return False
    return contains(live, intent)


def contains(live: Any, wanted: Any) -> bool:
    """Whether `live` has every field of `wanted` with an equal value (lists element-wise).

    A field of `wanted` that is empty or false may be absent from `live`.
    """
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(
            contains(live[key], value) if key in live else _omitted(value)
            for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(contains(a, b) for a, b in zip(live, wanted, strict=True))
        )
    if live == wanted:
        return True
    return isinstance(live, str) and isinstance(wanted, str) and _same_quantity(live, wanted)


def _omitted(value: Any) -> bool:
    # The server drops empty and false optional fields (Go's omitempty) from what it returns.
    return value is None or value is False or value in ({}, [], "")


def _same_quantity(a: str, b: str) -> bool:
    first, second = quantity.parse(a), quantity.parse(b)
    return first is not None and first == second
