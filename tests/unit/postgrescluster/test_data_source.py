"""What a data source means for a new cluster's first start, without I/O."""

from __future__ import annotations

from typing import Any

from reconciler import naming
from reconciler.postgrescluster import data_source, job_logs

SPEC: dict[str, Any] = {"postgresVersion": 15, "instances": [{"name": "instance1"}]}
INITIALIZED = {
    "conditions": [{"type": naming.CONDITION_POSTGRES_DATA_INITIALIZED, "status": "True"}]
}


def test_a_new_cluster_waits_for_its_data() -> None:
    clone = {**SPEC, "dataSource": {"postgresCluster": {"repoName": "repo1"}}}
    assert data_source.awaiting_data(clone, {})
    assert not data_source.awaiting_data(clone, INITIALIZED)
    assert not data_source.awaiting_data(clone, {"patroni": {"systemIdentifier": "7"}})
    assert not data_source.awaiting_data(SPEC, {})
    adopt = {**SPEC, "dataSource": {"volumes": {"pgDataVolume": {"pvcName": "old"}}}}
    assert data_source.awaiting_data(adopt, {})
    wal_alone = {**SPEC, "dataSource": {"volumes": {"pgWALVolume": {"pvcName": "old"}}}}
    assert data_source.awaiting_data(wal_alone, {})


def test_a_repository_wins_over_volumes_and_postgres_cluster_over_pgbackrest() -> None:
    both = {
        "postgresCluster": {"repoName": "repo1"},
        "pgbackrest": {"stanza": "db"},
        "volumes": {"pgDataVolume": {"pvcName": "old"}},
    }
    spec = {**SPEC, "dataSource": both}
    assert data_source.restore_source(spec) == {"postgresCluster": {"repoName": "repo1"}}


def test_patroni_bootstraps_from_the_data_put_in_place() -> None:
    assert data_source.from_existing_data(INITIALIZED)
    assert not data_source.from_existing_data({**INITIALIZED, "patroni": {"systemIdentifier": "7"}})
    assert not data_source.from_existing_data({})
    command = data_source.bootstrap_command(15)
    assert command.startswith("bash -ceu -- ")
    assert command.endswith("bootstrap /pgdata/pg15_bootstrap /pgdata/pg15")


def test_a_failed_restore_is_summed_up_by_its_errors() -> None:
    log = "P00 INFO: restore command begin\nP00 ERROR: [075]: no backup set found\nP00 INFO: end\n"
    assert job_logs.failure_summary(log) == "P00 ERROR: [075]: no backup set found"
    assert job_logs.failure_summary("just this\n") == "just this"
    fatal = "LOG: x\nFATAL:  recovery ended before configured recovery target was reached\n"
    assert "recovery ended before" in job_logs.failure_summary(fatal)
