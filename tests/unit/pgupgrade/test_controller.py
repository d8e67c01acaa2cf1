"""The PGUpgrade controller's decisions: PGO's checks, in PGO's order, with PGO's reasons."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler import naming
from reconciler.pgupgrade import controller
from reconciler.pgupgrade.controller import Action, decide
from reconciler.pgupgrade.world import World

IMAGE = "example/crunchy-upgrade"


def upgrade(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "up", "namespace": "ns", "generation": 1},
        "spec": {
            "postgresClusterName": "hippo",
            "fromPostgresVersion": 15,
            "toPostgresVersion": 17,
            **spec,
        },
    }


def cluster(*, shutdown: bool = True, annotated: bool = True, version: int = 15) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "hippo",
            "namespace": "ns",
            "generation": 3,
            "annotations": {naming.ANNOTATION_ALLOW_UPGRADE: "up"} if annotated else {},
        },
        "spec": {"postgresVersion": version, "shutdown": shutdown},
        "status": {
            "observedGeneration": 3,
            "startupInstance": "hippo-a",
            "instances": [{"name": "00", "replicas": 0}],
        },
    }


def statefulset(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {naming.LABEL_INSTANCE: name}}}


def job(name: str, outcome: str, role: str = "pgupgrade") -> dict[str, Any]:
    labels = {naming.LABEL_ROLE: role, naming.LABEL_PGUPGRADE: "up"}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": outcome, "status": "True"}]},
    }


def world(obj: dict[str, Any] | None = None, **fields: Any) -> World:
    built = World(cluster=cluster() if obj is None else obj, primary=statefulset("hippo-a"))
    for key, value in fields.items():
        setattr(built, key, value)
    return built


def progressing(decision: controller.Decision) -> dict[str, Any]:
    return next(c for c in decision.conditions if c["type"] == "Progressing")


@pytest.mark.parametrize(
    ("the_upgrade", "the_world", "image", "reason"),
    [
        (upgrade(), world(), None, "PGUpgradeInvalid"),
        (upgrade(fromPostgresVersion=17), world(), IMAGE, "PGUpgradeInvalid"),
        (upgrade(), World(cluster=None), IMAGE, "PGClusterNotFound"),
        (upgrade(), world(cluster(version=17)), IMAGE, "PGUpgradeResolved"),
        (upgrade(), world(cluster(shutdown=False)), IMAGE, "PGClusterNotShutdown"),
        (upgrade(), world(primary=None), IMAGE, "PGClusterPrimaryNotIdentified"),
        (upgrade(fromPostgresVersion=14), world(), IMAGE, "PGUpgradeInvalidForCluster"),
        (upgrade(), world(cluster(annotated=False)), IMAGE, "PGClusterMissingRequiredAnnotation"),
    ],
)
def test_each_check_stops_the_upgrade_with_its_reason(
    the_upgrade: dict[str, Any], the_world: World, image: str | None, reason: str
) -> None:
    decision = decide(the_upgrade, the_world, image)
    assert progressing(decision)["status"] == "False"
    assert progressing(decision)["reason"] == reason
    assert decision.action is Action.NONE
    assert [r for r, _ in decision.warnings] == [reason]


def test_instances_still_running_is_not_a_shutdown() -> None:
    running = cluster()
    running["status"]["instances"] = [{"name": "00", "replicas": 1}]
    assert (
        decide(upgrade(), world(running), IMAGE).conditions[0]["reason"] == "PGClusterNotShutdown"
    )
    unobserved = cluster()
    unobserved["metadata"]["generation"] = 4
    assert not world(unobserved).shutdown


def test_a_passed_check_makes_progressing_true_again_without_a_new_warning() -> None:
    stopped = upgrade()
    stopped["status"] = {
        "conditions": decide(upgrade(), world(cluster(annotated=False)), IMAGE).conditions
    }
    decision = decide(stopped, world(patroni_endpoints=[{"metadata": {}}]), IMAGE)
    assert progressing(decision)["status"] == "True"
    assert progressing(decision)["reason"] == "PGUpgradeProgressing"
    assert decision.action is Action.RUN_UPGRADE
    assert decision.remove_patroni_endpoints
    assert decision.warnings == []


def test_the_sequence_after_the_checks() -> None:
    replicas = [statefulset("hippo-b")]
    done = job("up-pgdata", "Complete")
    removal = job("up-hippo-b", "Complete", role="removedata")
    assert decide(upgrade(), world(replicas=replicas), IMAGE).action is Action.RUN_UPGRADE
    after_upgrade = world(replicas=replicas, jobs={"up-pgdata": done})
    assert decide(upgrade(), after_upgrade, IMAGE).action is Action.REMOVE_REPLICA_DATA
    both = world(replicas=replicas, jobs={"up-pgdata": done, "up-hippo-b": removal})
    assert decide(upgrade(), both, IMAGE).action is Action.RECORD_VERSION
    recorded = copy.deepcopy(both)
    assert recorded.cluster is not None
    recorded.cluster["status"]["postgresVersion"] = 17
    decision = decide(upgrade(), recorded, IMAGE)
    assert progressing(decision)["reason"] == "PGUpgradeCompleted"
    succeeded = next(c for c in decision.conditions if c["type"] == "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("True", "PGUpgradeSucceeded")
    finished = upgrade()
    finished["status"] = {"conditions": decision.conditions}
    assert decide(finished, World(cluster=None), IMAGE).conditions == decision.conditions


def test_a_failed_job_fails_the_upgrade() -> None:
    failed = world(jobs={"up-pgdata": job("up-pgdata", "Failed")})
    decision = decide(upgrade(), failed, IMAGE)
    succeeded = next(c for c in decision.conditions if c["type"] == "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("False", "PGUpgradeFailed")
    assert decision.action is Action.NONE
