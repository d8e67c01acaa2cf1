"""When an instance's node counts as lost, and when rebuilding it elsewhere is safe."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from reconciler_envtest.node import persistent_volume

from reconciler import config, features, naming
from reconciler.postgrescluster.node_loss import (
    LostNode,
    deletable,
    disabled_message,
    healthy_peer,
    judge_node,
    lock_held_by,
    stale_lock,
    unsafe_message,
    volume_node,
)
from reconciler.runtime.client import JSON

NOW = datetime.datetime(2026, 11, 30, 17, 0, 0, tzinfo=datetime.UTC)


def ago(seconds: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).isoformat()


def node(ready: str, since: float) -> JSON:
    condition = {"type": "Ready", "status": ready, "lastTransitionTime": ago(since)}
    return {"metadata": {"name": "n"}, "status": {"conditions": [condition]}}


def pod(instance: str, node_name: str, *, ready: bool = True) -> JSON:
    return {
        "metadata": {"name": f"{instance}-0", "labels": {naming.LABEL_INSTANCE: instance}},
        "spec": {"nodeName": node_name},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_a_volume_of_the_node_local_class_names_its_node(tmp_path: Path) -> None:
    claim = {
        "metadata": {"name": "hippo-a-pgdata", "namespace": "ns", "uid": "u1"},
        "spec": {"resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "local-node"},
    }
    assert volume_node(persistent_volume(claim, tmp_path, "node-b")) == "node-b"
    # Reachable from anywhere: nothing is lost with a node.
    assert volume_node(persistent_volume(claim, tmp_path)) is None
    assert volume_node(None) is None


def test_a_volume_allowed_on_several_nodes_is_not_node_bound() -> None:
    expression = {"key": "kubernetes.io/hostname", "operator": "In", "values": ["a", "b"]}
    volume = {
        "spec": {
            "nodeAffinity": {
                "required": {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}
            }
        }
    }
    assert volume_node(volume) is None


def test_a_deleted_node_is_lost_at_once() -> None:
    verdict = judge_node("node-b", None, NOW, 300)
    assert verdict.lost == LostNode("node-b", "was deleted")


def test_a_not_ready_node_is_waited_for_until_the_threshold() -> None:
    waiting = judge_node("node-b", node("Unknown", 100), NOW, 300)
    assert waiting.lost is None
    assert waiting.wait == 200
    lost = judge_node("node-b", node("False", 301), NOW, 300)
    assert lost.lost is not None
    assert lost.lost.why == f"is NotReady since {ago(301)}"
    # The same facts later: the same text (the condition and its Event are not rewritten).
    later = judge_node("node-b", node("False", 301), NOW + datetime.timedelta(seconds=30), 300)
    assert later.lost is not None
    assert later.lost.why == lost.lost.why


def test_a_ready_node_is_not_lost() -> None:
    verdict = judge_node("node-b", node("True", 10_000), NOW, 300)
    assert verdict.lost is None
    assert verdict.wait == 0


def test_only_a_ready_instance_on_a_ready_node_seeds_a_rebuilt_one() -> None:
    nodes = {"a": node("True", 60), "b": node("Unknown", 600), "c": node("True", 60)}
    lost = pod("hippo-x", "b")
    # The other instance is on a node that is gone too: nothing to copy from.
    assert healthy_peer("hippo-x", [lost, pod("hippo-y", "b")], nodes) is None
    # The other instance is not Ready.
    assert healthy_peer("hippo-x", [lost, pod("hippo-y", "a", ready=False)], nodes) is None
    # The lost instance alone (the last copy): never rebuilt.
    assert healthy_peer("hippo-x", [lost], nodes) is None
    assert healthy_peer("hippo-x", [lost, pod("hippo-y", "c")], nodes) == "hippo-y-0"
    # A deleted node (None) holds no peer.
    assert healthy_peer("hippo-x", [lost, pod("hippo-y", "d")], {**nodes, "d": None}) is None


def test_a_lock_is_released_only_once_its_holder_would_have_demoted() -> None:
    def leader(renewed: float) -> JSON:
        return {"metadata": {"annotations": {"leader": "hippo-x-0", "renewTime": ago(renewed)}}}

    assert lock_held_by(leader(1), "hippo-x-0")
    assert not lock_held_by(leader(1), "hippo-y-0")
    # PGO's defaults: loop_wait 10, retry_timeout 10.
    assert not stale_lock(leader(19), NOW, 10, 10)
    assert stale_lock(leader(20), NOW, 10, 10)
    assert not stale_lock({"metadata": {"annotations": {}}}, NOW, 10, 10)
    assert not stale_lock(None, NOW, 10, 10)


def test_only_delete_volumes_of_the_lost_node_are_deleted(tmp_path: Path) -> None:
    claim = {
        "metadata": {"name": "c", "namespace": "ns", "uid": "u2"},
        "spec": {"resources": {"requests": {"storage": "1Gi"}}},
    }
    volume = persistent_volume(claim, tmp_path, "node-b")
    assert deletable(volume, "node-b")
    assert not deletable(volume, "node-c")
    volume["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    assert not deletable(volume, "node-b")


def test_the_messages_say_what_to_do() -> None:
    lost = LostNode("node-b", "was deleted")
    disabled = disabled_message("hippo-x", lost)
    assert naming.ANNOTATION_NODE_LOSS_RECOVERY in disabled
    assert "manual" in disabled
    assert "only copy" in unsafe_message("hippo-x", lost)


def test_the_gate_is_off_by_default_and_the_threshold_configurable() -> None:
    assert features.DEFAULTS["InstanceNodeLossRecovery"] is False
    settings = config.from_environment({"PGO_FEATURE_GATES": "InstanceNodeLossRecovery=true"})
    assert settings.feature_gates["InstanceNodeLossRecovery"]
    assert settings.node_loss_after == config.DEFAULT_NODE_LOSS_AFTER
    assert config.from_environment({"PGO_NODE_LOSS_AFTER_SECONDS": "20"}).node_loss_after == 20
    for bad in ("0", "-3", "5m"):
        with pytest.raises(config.ConfigError, match="PGO_NODE_LOSS_AFTER_SECONDS"):
            config.from_environment({"PGO_NODE_LOSS_AFTER_SECONDS": bad})
