"""Decisions of the Patroni subreconciler: switchover requests and configuration patches."""

from __future__ import annotations

import pytest

from reconciler.postgrescluster.steps.patroni import (
    InvalidSwitchover,
    config_patch,
    next_restart,
    refusal_message,
    refuses,
    switchover_request,
)

INSTANCES = ["hippo-instance1-abcd", "hippo-instance1-efgh"]


def test_switchover_only_when_enabled_and_the_trigger_is_new() -> None:
    enabled = {"enabled": True}
    assert switchover_request(None, "1", None, INSTANCES, INSTANCES[0]) is None
    assert switchover_request({"enabled": False}, "1", None, INSTANCES, INSTANCES[0]) is None
    assert switchover_request(enabled, None, None, INSTANCES, INSTANCES[0]) is None
    assert switchover_request(enabled, "1", "1", INSTANCES, INSTANCES[0]) is None
    assert switchover_request(enabled, "2", "1", INSTANCES, INSTANCES[0]) == ("Switchover", None)


def test_switchover_targets_and_failover() -> None:
    request = {"enabled": True, "targetInstance": INSTANCES[1]}
    assert switchover_request(request, "x", None, INSTANCES, INSTANCES[0]) == (
        "Switchover",
        INSTANCES[1],
    )
    failover = {**request, "type": "Failover"}
    assert switchover_request(failover, "x", None, INSTANCES, INSTANCES[0]) == (
        "Failover",
        INSTANCES[1],
    )


@pytest.mark.parametrize(
    ("request_", "instances", "message"),
    [
        ({"enabled": True, "targetInstance": "nope"}, INSTANCES, 'targetInstance "nope" is not'),
        ({"enabled": True, "type": "Failover"}, INSTANCES, "Failover needs targetInstance"),
        ({"enabled": True}, INSTANCES[:1], "at least two instances"),
    ],
)
def test_impossible_requests_say_what_to_change(
    request_: dict[str, object], instances: list[str], message: str
) -> None:
    with pytest.raises(InvalidSwitchover, match=message):
        switchover_request(request_, "x", None, instances, instances[0])


def test_a_refused_trigger_is_settled_until_the_annotation_changes() -> None:
    """Correcting the spec alone never carries out a trigger that was refused: the switchover
    would otherwise run before the user asks again (and again when they do)."""
    invalid = {"enabled": True, "targetInstance": "nope"}
    with pytest.raises(InvalidSwitchover) as error:
        switchover_request(invalid, "first", None, INSTANCES, INSTANCES[0])
    condition = {"type": "SwitchoverRefused", "message": refusal_message("first", error.value)}
    assert 'targetInstance "nope"' in condition["message"]
    assert refuses(condition, "first")
    assert not refuses(condition, "second")
    assert not refuses(condition, "firs")
    assert not refuses(condition, None)

    corrected = {"enabled": True, "targetInstance": INSTANCES[1]}
    args = (corrected, "first", None, INSTANCES, INSTANCES[0])
    assert switchover_request(*args, refused=refuses(condition, "first")) is None
    assert switchover_request(*args) == ("Switchover", INSTANCES[1])


def test_config_patch_holds_only_what_differs() -> None:
    desired = {"ttl": 30, "postgresql": {"parameters": {"max_connections": "100", "jit": "off"}}}
    current = {
        "ttl": 30,
        "loop_wait": 10,
        "postgresql": {"parameters": {"max_connections": 100, "jit": "off", "extra": "1"}},
    }
    assert config_patch(desired, current) == {}
    changed = {"ttl": 20, "postgresql": {"parameters": {"max_connections": "200"}}}
    assert config_patch(changed, current) == changed
    assert config_patch(
        {"postgresql": {"pg_hba": ["a", "b"]}}, {"postgresql": {"pg_hba": ["a"]}}
    ) == {"postgresql": {"pg_hba": ["a", "b"]}}


def test_pending_restarts_replicas_first_one_at_a_time() -> None:
    leader = {"name": "a-0", "role": "leader", "state": "running", "pending_restart": True}
    replica = {"name": "b-0", "role": "replica", "state": "streaming", "pending_restart": True}
    assert next_restart([leader, replica]) == "b-0"
    assert next_restart([leader, {**replica, "pending_restart": False}]) == "a-0"
    assert next_restart([leader, {**replica, "state": "starting"}]) is None
    assert next_restart([{**leader, "pending_restart": False}]) is None
