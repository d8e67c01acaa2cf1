"""Setting status conditions."""

from __future__ import annotations

from reconciler.runtime.conditions import find, remove_condition, set_condition


def test_transition_time_moves_only_when_status_changes() -> None:
    """Same status keeps lastTransitionTime (and so writes nothing new); a new status moves it."""
    first = set_condition(
        [], "Ready", "False", "Pending", "waiting", observed_generation=1, at="2026-01-01T00:00:00Z"
    )
    same = set_condition(
        first,
        "Ready",
        "False",
        "Pending",
        "still waiting",
        observed_generation=2,
        at="2026-01-02T00:00:00Z",
    )
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["message"] == "still waiting"
    assert same[0]["observedGeneration"] == 2
    flipped = set_condition(
        same, "Ready", "True", "Ready", "ok", observed_generation=2, at="2026-01-03T00:00:00Z"
    )
    assert flipped[0]["lastTransitionTime"] == "2026-01-03T00:00:00Z"


def test_other_conditions_are_kept_in_a_stable_order() -> None:
    """Setting one condition leaves the others; the list is sorted by type."""
    conditions = set_condition([], "Ready", "True", "Ready", "", observed_generation=1, at="t")
    conditions = set_condition(
        conditions, "Progressing", "False", "Paused", "", observed_generation=1, at="t"
    )
    assert [c["type"] for c in conditions] == ["Progressing", "Ready"]
    assert find(conditions, "Ready") is not None
    assert [c["type"] for c in remove_condition(conditions, "Ready")] == ["Progressing"]
