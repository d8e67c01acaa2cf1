"""The cluster's status: the merge patch, `Ready`, and the spec sections not acted on yet."""

from __future__ import annotations

from reconciler.postgrescluster import status

SPEC = {"instances": [{"name": "a", "replicas": 2}, {"name": "b", "replicas": 1}]}


def test_status_patch_holds_only_what_changed_and_nulls_what_went() -> None:
    old = {"a": 1, "b": {"x": 1}, "gone": True}
    new = {"a": 1, "b": {"x": 2}, "added": []}
    assert status.status_patch(old, new) == {"gone": None, "b": {"x": 2}, "added": []}
    assert status.status_patch(new, new) == {}
    # An object emptied keeps existing, empty: each of its keys is removed.
    emptied = status.status_patch({"pgbackrest": {"repos": [], "repoHost": {}}}, {"pgbackrest": {}})
    assert emptied == {"pgbackrest": {"repos": None, "repoHost": None}}


def test_ready_counts_ready_pods_of_every_set() -> None:
    observed = {"instances": [{"name": "a", "readyReplicas": 2}, {"name": "b", "readyReplicas": 0}]}
    assert status.ready(observed, SPEC) == ("False", "InstancesNotReady", "2 of 3 instances ready")
    observed["instances"][1]["readyReplicas"] = 1
    assert status.ready(observed, SPEC) == ("True", "AllInstancesReady", "3 of 3 instances ready")
    assert status.ready(observed, {**SPEC, "shutdown": True})[:2] == ("False", "Shutdown")


def test_unsupported_fields_name_each_section_present() -> None:
    assert status.unsupported_fields({"instances": []}) == []
    spec = {
        "backups": {
            "pgbackrest": {
                "repos": [
                    {"name": "repo1", "volume": {}},
                    {"name": "repo2", "s3": {"bucket": "b"}, "schedules": {"full": "0 1 * * *"}},
                ],
                "restore": {"enabled": False, "repoName": "repo1"},
            }
        },
        "proxy": {"pgBouncer": {}},
        "standby": {"enabled": False},
        "monitoring": {"pgmonitor": {"exporter": {}}},
    }
    # Cloud repositories are run (S3 end to end; GCS and Azure by their configuration),
    # pgBouncer, the only proxy, and pgMonitor's exporter.
    assert status.unsupported_fields(spec) == []
    # Standby clusters are acted on.
    assert status.unsupported_fields({"standby": {"enabled": True, "repoName": "repo1"}}) == []


def test_unsupported_message_names_the_sections() -> None:
    message = status.unsupported_message(["spec.proxy", "spec.monitoring"])
    assert message.startswith("spec.proxy, spec.monitoring: accepted but not acted on")
