"""Standby clusters: unusable specs, the replay report, the promotion's DCS patch."""

from __future__ import annotations

from reconciler.postgrescluster import standby
from reconciler.postgrescluster.configuration import dynamic_configuration
from tests.unit.postgrescluster.test_configuration import SPEC

REPOS = {"backups": {"pgbackrest": {"repos": [{"name": "repo1"}, {"name": "repo2"}]}}}


def test_a_standby_needs_a_source_and_a_declared_repository() -> None:
    assert standby.problem({}) is None
    assert standby.problem({"standby": {"enabled": False}}) is None
    nowhere = standby.problem({"standby": {"enabled": True}})
    assert nowhere is not None
    assert "requires a host or repoName" in nowhere
    assert "spec.standby.repoName" in nowhere
    assert "spec.standby.host" in nowhere
    unknown = standby.problem({**REPOS, "standby": {"enabled": True, "repoName": "repo3"}})
    assert unknown is not None
    assert '"repo3"' in unknown
    assert "repo1, repo2" in unknown
    no_backups = standby.problem({"standby": {"enabled": True, "repoName": "repo1"}})
    assert no_backups is not None
    assert "declared: none" in no_backups
    assert standby.problem({**REPOS, "standby": {"enabled": True, "repoName": "repo2"}}) is None
    assert standby.problem({"standby": {"enabled": True, "host": "east", "port": 5432}}) is None


def test_the_replay_report_has_positions_and_the_last_commit_and_no_clock() -> None:
    member = {
        "role": "standby_leader",
        "timeline": 1,
        "xlog": {
            "received_location": 0x3000148,
            "replayed_location": 0x3000060,
            "replayed_timestamp": "2026-11-30 12:00:01.5+01:00",
            "paused": False,
        },
    }
    message = standby.replay_message("hippo-dr-abcd-0", member)
    assert message == (
        "standby leader hippo-dr-abcd-0 on timeline 1: received WAL up to 0/3000148, "
        "replayed up to 0/3000060; the last replayed transaction committed at "
        "2026-11-30T11:00:01.500000Z"
    )
    assert message == standby.replay_message("hippo-dr-abcd-0", member)
    assert standby.lsn(0x1_0000_00A0) == "1/A0"


def test_the_source_in_words() -> None:
    both = {"standby": {"enabled": True, "repoName": "repo1", "host": "east", "port": 6543}}
    assert standby.source(both) == "streaming from east:6543 and replaying from repo1"
    assert standby.source({"standby": {"repoName": "repo1"}}) == "replaying from repo1"


def test_promotion_removes_the_standby_section_from_the_dcs() -> None:
    spec = {**SPEC, **REPOS, "standby": {"enabled": True, "repoName": "repo1"}}
    desired = dynamic_configuration(spec)
    section = desired["standby_cluster"]
    assert section["create_replica_methods"] == ["pgbackrest"]
    assert section["restore_command"].endswith("--repo=1")
    assert desired["postgresql"]["parameters"]["restore_command"] == section["restore_command"]
    assert standby.dcs_patch(desired, {"standby_cluster": section}) == {}
    promoted = dynamic_configuration({**spec, "standby": {"enabled": False, "repoName": "repo1"}})
    assert "standby_cluster" not in promoted
    assert standby.dcs_patch(promoted, {"standby_cluster": section}) == {"standby_cluster": None}
    assert standby.dcs_patch(promoted, {}) == {}
