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
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

INTENT_HASH = "reconciler.dev/intent-hash"

_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


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
    first, second = _quantity(a), _quantity(b)
    return first is not None and first == second


def _quantity(text: str) -> Decimal | None:
    match = _QUANTITY.match(text)
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        return None
