"""`spec.dataSource.volumes`: which claims are adopted, what they become, the move Jobs."""

from __future__ import annotations

from typing import Any

from reconciler import naming
from reconciler.intent import Owner
from reconciler.postgrescluster import adoption

OWNER = Owner(name="hippo", namespace="ns", uid="u1")
SET = {"name": "instance1", "walVolumeClaimSpec": {"resources": {"requests": {"storage": "1Gi"}}}}
REPOS = {"pgbackrest": {"repos": [{"name": "repo1", "volume": {"volumeClaimSpec": {}}}]}}
V4 = {
    "pgDataVolume": {"pvcName": "hippo", "directory": "hippo"},
    "pgWALVolume": {"pvcName": "hippo-wal", "directory": "hippo-wal"},
    "pgBackRestVolume": {"pvcName": "hippo-pgbr-repo", "directory": "hippo-backrest-shared-repo"},
}


def spec(volumes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "postgresVersion": 15,
        "instances": [SET],
        "backups": REPOS,
        "dataSource": {"volumes": volumes},
        **extra,
    }


def test_a_repository_to_restore_from_wins_over_data_and_wal_volumes() -> None:
    assert set(adoption.requested(spec(V4))) == {"pgDataVolume", "pgWALVolume", "pgBackRestVolume"}
    clone = spec(V4)
    clone["dataSource"]["postgresCluster"] = {"clusterName": "other", "repoName": "repo1"}
    assert set(adoption.requested(clone)) == {"pgBackRestVolume"}
    assert adoption.requested({"instances": [SET]}) == {}


def test_volumes_that_cannot_work_are_explained() -> None:
    assert adoption.problem(spec(V4)) is None
    no_data = spec({"pgWALVolume": V4["pgWALVolume"]})
    assert "pgWALVolume needs pgDataVolume" in (adoption.problem(no_data) or "")
    no_wal_spec = spec(V4, instances=[{"name": "instance1"}])
    problem = adoption.problem(no_wal_spec) or ""
    assert "spec.instances[0].walVolumeClaimSpec" in problem
    cloud = spec(V4, backups={"pgbackrest": {"repos": [{"name": "repo1", "s3": {}}]}})
    assert "repos[0] to be a volume repository" in (adoption.problem(cloud) or "")


def test_adopted_claims_get_the_labels_of_the_volumes_they_become() -> None:
    data = adoption.claim_labels(
        OWNER, spec(V4), "pgDataVolume", "instance1", "hippo-instance1-abcd"
    )
    assert data == {
        naming.LABEL_CLUSTER: "hippo",
        naming.LABEL_INSTANCE_SET: "instance1",
        naming.LABEL_INSTANCE: "hippo-instance1-abcd",
        naming.LABEL_ROLE: "pgdata",
        naming.LABEL_DATA: "postgres",
    }
    wal = adoption.claim_labels(OWNER, spec(V4), "pgWALVolume", "instance1", "hippo-instance1-abcd")
    assert wal[naming.LABEL_ROLE] == "pgwal"
    repo = adoption.claim_labels(OWNER, spec(V4), "pgBackRestVolume", "instance1", "")
    assert repo == naming.repo_volume_labels("hippo", "repo1")
    claim = {"metadata": {"ownerReferences": [{"kind": "Thing", "name": "t", "uid": "t1"}]}}
    patch = adoption.adoption_patch(OWNER, repo, claim)
    assert [r["uid"] for r in patch["metadata"]["ownerReferences"]] == ["t1", "u1"]
    assert patch["metadata"]["ownerReferences"][1]["controller"] is True


def test_move_jobs_have_pgos_names_and_run_data_before_wal() -> None:
    jobs = adoption.move_jobs(OWNER, spec(V4), "postgres:15", "pgbackrest:2")
    names = [j["metadata"]["name"] for j in jobs]
    assert names == [
        "hippo-move-pgdata-dir",
        "hippo-move-pgwal-dir",
        "hippo-move-pgbackrest-repo-dir",
    ]
    data, wal, repo = (j["spec"]["template"]["spec"] for j in jobs)
    assert jobs[1]["metadata"]["labels"] == {
        naming.LABEL_CLUSTER: "hippo",
        naming.LABEL_MOVE_JOB: "",
        naming.LABEL_MOVE_PGWAL_DIR: "",
    }
    assert data["containers"][0]["command"][-3:] == ["hippo", "/pgdata/pg15", "wal"]
    assert wal["containers"][0]["name"] == "pgwal-move-job"
    assert wal["containers"][0]["command"][-3:] == ["hippo-wal", "/pgdata/pg15", "/pgwal/pg15_wal"]
    assert {v["persistentVolumeClaim"]["claimName"] for v in wal["volumes"]} == {
        "hippo",
        "hippo-wal",
    }
    assert repo["containers"][0]["image"] == "pgbackrest:2"
    assert repo["containers"][0]["name"] == "repo-move-job"
    assert repo["containers"][0]["volumeMounts"] == [
        {"name": "pgbackrest-repo", "mountPath": "/pgbackrest"}
    ]
    assert all(j["spec"]["backoffLimit"] == 0 for j in jobs)
    # Without a WAL volume the data Job is told so (a pg_wal link off the volume is refused);
    # without `directory` the repository claim is used as it is (PGO runs no Job then).
    alone = {"pgDataVolume": V4["pgDataVolume"], "pgBackRestVolume": {"pvcName": "r"}}
    (only,) = adoption.move_jobs(OWNER, spec(alone), "postgres:15", "pgbackrest:2")
    assert only["spec"]["template"]["spec"]["containers"][0]["command"][-1] == ""


def test_the_repository_host_waits_for_the_adopted_claim_and_its_move() -> None:
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    claim = {"metadata": {"name": "hippo-pgbr-repo"}}
    assert not adoption.repo_claim_in_place(spec(V4), None, None)
    assert not adoption.repo_claim_in_place(spec(V4), claim, {"status": {}})
    assert adoption.repo_claim_in_place(spec(V4), claim, complete)
    as_is = spec({"pgBackRestVolume": {"pvcName": "hippo-pgbr-repo"}})
    assert adoption.repo_claim_in_place(as_is, claim, None)
    assert adoption.repo_claim_in_place(spec({}), None, None)
