"""Drift detection: when a live object already holds an intent."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reconciler.runtime import drift

INTENT: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "a", "namespace": "n", "labels": {"x": "1"}},
    "data": {"k": "v"},
}


def _live(intent: dict[str, Any]) -> dict[str, Any]:
    """What the server returns after applying `intent`: it adds fields of its own."""
    applied = drift.with_intent_hash(intent)
    metadata = {**applied["metadata"], "uid": "u", "resourceVersion": "7"}
    return {**applied, "metadata": metadata}


def test_applied_intent_is_in_sync_despite_server_fields() -> None:
    """Fields the server adds (uid, resourceVersion) do not count as drift."""
    assert drift.in_sync(INTENT, _live(INTENT))


def test_missing_object_or_changed_intent_is_out_of_sync() -> None:
    """No live object, or a different intent (a removed field too), needs an apply."""
    assert not drift.in_sync(INTENT, None)
    changed = {**INTENT, "data": {}}
    assert not drift.in_sync(changed, _live(INTENT))


def test_someone_elses_edit_is_drift() -> None:
    """A live value that differs from the intent is drift even with a matching hash."""
    live = _live(INTENT)
    live["data"] = {"k": "edited"}
    assert not drift.in_sync(INTENT, live)


def test_quantities_compare_by_value_and_empty_fields_may_be_omitted() -> None:
    """`1000m` equals `1`, `1Gi` equals `1024Mi`; an empty or false field may be absent."""
    assert drift.contains({"cpu": "1", "memory": "1024Mi"}, {"cpu": "1000m", "memory": "1Gi"})
    assert not drift.contains({"cpu": "2"}, {"cpu": "1000m"})
    assert drift.contains({"a": 1}, {"a": 1, "env": [], "resources": {}, "readOnly": False})
    assert not drift.contains({"a": 1}, {"a": 1, "readOnly": True})


@given(
    st.dictionaries(st.text(min_size=1), st.text()), st.dictionaries(st.text(min_size=1), st.text())
)
def test_hash_ignores_key_order_and_its_own_annotation(
    a: dict[str, str], b: dict[str, str]
) -> None:
    """The hash depends on content only."""
    first = {"metadata": {"name": "x"}, "data": {**a, **b}}
    second = {"data": dict(reversed(list({**a, **b}.items()))), "metadata": {"name": "x"}}
    assert drift.intent_hash(first) == drift.intent_hash(second)
    assert drift.intent_hash(drift.with_intent_hash(first)) == drift.intent_hash(first)
