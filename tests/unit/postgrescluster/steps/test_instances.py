"""The instance sets' pure choices: which instances stay, which run, what status says."""

from __future__ import annotations

from reconciler.postgrescluster.steps.instances import (
    choose_kept,
    observed_instances,
    statefulset_replicas,
)
from reconciler.runtime.client import JSON

PREFIX = "postgres-operator.crunchydata.com/"


def test_a_shrinking_set_keeps_the_primary_then_by_name() -> None:
    names = ["hippo-i-c", "hippo-i-a", "hippo-i-b"]
    assert choose_kept(names, 2, "hippo-i-c") == ["hippo-i-a", "hippo-i-c"]
    assert choose_kept(names, 2, None) == ["hippo-i-a", "hippo-i-b"]
    assert choose_kept(names, 0, "hippo-i-c") == []
    assert choose_kept(names, 5, None) == sorted(names)


def test_only_the_startup_instance_runs_and_it_stops_last() -> None:
    # No recorded startup instance: every instance runs.
    assert statefulset_replicas("a", shutdown=False, startup_instance="", pods_left=3) == 1
    # Starting up again after a shutdown: only the recorded one, until it is ready.
    assert statefulset_replicas("a", shutdown=False, startup_instance="a", pods_left=0) == 1
    assert statefulset_replicas("b", shutdown=False, startup_instance="a", pods_left=0) == 0
    # Shutting down: the recorded instance waits for the others' pods to go.
    assert statefulset_replicas("a", shutdown=True, startup_instance="a", pods_left=2) == 1
    assert statefulset_replicas("a", shutdown=True, startup_instance="a", pods_left=1) == 0


def _pod(instance: str, instance_set: str, revision: str, *, ready: bool) -> JSON:
    labels = {
        f"{PREFIX}instance": instance,
        f"{PREFIX}instance-set": instance_set,
        "controller-revision-hash": revision,
    }
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {
        "metadata": {"name": f"{instance}-0", "labels": labels},
        "status": {"conditions": [condition]},
    }


def test_status_instances_count_pods_ready_and_updated_per_set() -> None:
    statefulsets = [
        {"metadata": {"name": name}, "status": {"updateRevision": "new"}}
        for name in ("a", "b", "c")
    ]
    pods = [
        _pod("a", "one", "new", ready=True),
        _pod("b", "one", "old", ready=False),
        _pod("c", "gone", "new", ready=True),  # a set no longer in the spec
    ]
    assert observed_instances(statefulsets, pods, ["one", "two"]) == [
        {"name": "one", "replicas": 2, "readyReplicas": 1, "updatedReplicas": 1},
        {"name": "two", "replicas": 0, "readyReplicas": 0, "updatedReplicas": 0},
    ]
