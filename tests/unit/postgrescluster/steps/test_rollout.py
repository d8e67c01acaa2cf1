"""A rolling update's order: replicas one at a time, a switchover, then the old primary."""

from __future__ import annotations

from reconciler.postgrescluster.steps.rollout import Action, next_action

LABELS = "postgres-operator.crunchydata.com/"


def _sts(
    name: str, revision: str = "new", generation: int = 2, observed: int = 2
) -> dict[str, object]:
    return {
        "metadata": {"name": name, "generation": generation},
        "status": {"observedGeneration": observed, "updateRevision": revision},
    }


def _pod(
    instance: str, revision: str, *, primary: bool = False, ready: bool = True
) -> dict[str, object]:
    labels = {f"{LABELS}instance": instance, "controller-revision-hash": revision}
    if primary:
        labels[f"{LABELS}role"] = "master"
    return {
        "metadata": {"name": f"{instance}-0", "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


SETS = {name: _sts(name) for name in ("a", "b", "c")}


def test_nothing_to_do_when_current_or_unknown() -> None:
    pods = [_pod("a", "new", primary=True), _pod("b", "new"), _pod("c", "new")]
    assert next_action(pods, SETS) is None
    unobserved = {**SETS, "a": _sts("a", observed=1)}
    assert (
        next_action(
            [_pod("a", "old", primary=True), _pod("b", "new"), _pod("c", "new")], unobserved
        )
        is None
    )


def test_replicas_first_one_at_a_time_and_only_when_all_ready() -> None:
    pods = [_pod("a", "old", primary=True), _pod("b", "old"), _pod("c", "old")]
    assert next_action(pods, SETS) == Action("delete", "b-0")
    pods[1] = _pod("b", "new", ready=False)  # b is coming back
    assert next_action(pods, SETS) is None
    assert next_action(pods[:2], SETS) is None  # c's pod is missing
    pods[1] = _pod("b", "new")
    assert next_action(pods, SETS) == Action("delete", "c-0")


def test_primary_last_through_a_switchover() -> None:
    pods = [_pod("a", "old", primary=True), _pod("b", "new"), _pod("c", "new")]
    assert next_action(pods, SETS) == Action("switchover", "a-0", "b-0")
    pods = [_pod("a", "old"), _pod("b", "new", primary=True), _pod("c", "new")]
    assert next_action(pods, SETS) == Action("delete", "a-0")


def test_a_lone_primary_restarts_in_place() -> None:
    assert next_action([_pod("a", "old", primary=True)], {"a": _sts("a")}) == Action(
        "delete", "a-0"
    )
