"""When the operator may release Patroni's leader lock for a dead primary, and when not."""

from __future__ import annotations

from typing import Any

from reconciler.patroni.leader_lock import dead_leader, holder, release_patch
from reconciler.runtime.client import JSON

RENEWED = "2026-11-30T13:20:05.500000+00:00"


def lock(member: str | None = "hippo-a-0", renewed: str = RENEWED) -> JSON:
    annotations: dict[str, Any] = {"renewTime": renewed, "ttl": "30"}
    if member is not None:
        annotations["leader"] = member
    return {"metadata": {"name": "hippo-ha", "resourceVersion": "42", "annotations": annotations}}


def pod(name: str, state: JSON, last: JSON | None = None, **meta: Any) -> JSON:
    status: JSON = {"name": "database", "state": state, "lastState": {}}
    if last is not None:
        status["lastState"] = {"terminated": last}
    return {
        "metadata": {"name": name, **meta},
        "status": {"containerStatuses": [{"name": "pgbackrest", "state": {}}, status]},
    }


RUNNING: JSON = {"running": {"startedAt": "2026-11-30T13:00:00Z"}}
STOPPED: JSON = {
    "exitCode": 137,
    "reason": "Error",
    "startedAt": "2026-11-30T13:00:00Z",
    "finishedAt": "2026-11-30T13:20:09Z",
}
BACKING_OFF: JSON = {"waiting": {"reason": "CrashLoopBackOff"}}
REPLICA = pod("hippo-b-0", RUNNING)


def test_a_stopped_leader_after_its_last_renewal_is_released() -> None:
    dead = dead_leader(lock(), [pod("hippo-a-0", BACKING_OFF, STOPPED), REPLICA])
    assert dead is not None
    assert dead.member == "hippo-a-0"
    assert "hippo-a-0" in dead.message()
    assert "13:20:09" in dead.message()


def test_a_terminated_state_counts_as_stopped() -> None:
    assert dead_leader(lock(), [pod("hippo-a-0", {"terminated": STOPPED}), REPLICA]) is not None


def test_the_container_timestamps_whole_seconds_are_allowed_for() -> None:
    # Stopped at 13:20:09.7, reported 13:20:09; renewed at 13:20:09.5 by the run that died.
    renewed = "2026-11-30T13:20:09.500000+00:00"
    leader = lock(renewed=renewed)
    assert dead_leader(leader, [pod("hippo-a-0", BACKING_OFF, STOPPED), REPLICA]) is not None


def test_a_running_leader_is_never_released() -> None:
    assert dead_leader(lock(), [pod("hippo-a-0", RUNNING, STOPPED), REPLICA]) is None


def test_a_renewal_after_the_stop_means_another_run_holds_the_lock() -> None:
    # A restarted container renewed the lock, and its pod's status is not reported yet.
    leader = lock(renewed="2026-11-30T13:20:30.000000+00:00")
    assert dead_leader(leader, [pod("hippo-a-0", BACKING_OFF, STOPPED), REPLICA]) is None


def test_a_renewal_before_the_run_started_was_not_that_run() -> None:
    leader = lock(renewed="2026-11-30T12:59:00.000000+00:00")
    assert dead_leader(leader, [pod("hippo-a-0", BACKING_OFF, STOPPED), REPLICA]) is None


def test_a_pod_gone_from_the_api_proves_nothing() -> None:
    # A forced deletion removes the object without stopping any process.
    assert dead_leader(lock(), [REPLICA]) is None


def test_a_pod_being_deleted_is_left_to_patroni() -> None:
    deleting = pod("hippo-a-0", BACKING_OFF, STOPPED, deletionTimestamp="2026-11-30T13:20:10Z")
    assert dead_leader(lock(), [deleting, REPLICA]) is None


def test_a_container_that_never_ran_tells_nothing() -> None:
    creating = pod("hippo-a-0", {"waiting": {"reason": "ContainerCreating"}})
    assert dead_leader(lock(), [creating, REPLICA]) is None


def test_no_status_at_all_tells_nothing() -> None:
    assert dead_leader(lock(), [{"metadata": {"name": "hippo-a-0"}}, REPLICA]) is None


def test_an_unlocked_cluster_has_nothing_to_release() -> None:
    assert dead_leader(lock(member=None), [pod("hippo-a-0", BACKING_OFF, STOPPED), REPLICA]) is None
    assert dead_leader(None, [REPLICA]) is None


def test_nothing_is_released_without_a_member_to_take_over() -> None:
    stopped_replica = pod("hippo-b-0", BACKING_OFF, STOPPED)
    assert dead_leader(lock(), [pod("hippo-a-0", BACKING_OFF, STOPPED)]) is None
    assert dead_leader(lock(), [pod("hippo-a-0", BACKING_OFF, STOPPED), stopped_replica]) is None


def test_an_unreadable_renewal_time_tells_nothing() -> None:
    for renewed in ("", "yesterday", "2026-11-30T13:20:05"):  # the last: no time zone
        leader = lock(renewed=renewed)
        assert dead_leader(leader, [pod("hippo-a-0", BACKING_OFF, STOPPED), REPLICA]) is None


def test_the_release_is_conditional_on_the_version_read() -> None:
    patch = release_patch(lock())
    assert patch["metadata"] == {"resourceVersion": "42", "annotations": {"leader": None}}
    assert patch["subsets"] == []
    assert holder(lock()) == "hippo-a-0"
    assert holder(lock(member=None)) is None
