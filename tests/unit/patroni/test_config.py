"""Patroni's configuration files: the DCS on Endpoints, the bootstrap sections, replica
creation methods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from reconciler.patroni import config
from reconciler.postgres.config import PostgresSettings


def _cluster(
    settings: PostgresSettings, dynamic: Mapping[str, Any], bootstrapped: bool
) -> dict[str, Any]:
    text = config.cluster_yaml(
        "hippo", "ns", settings, dynamic, ttl=30, loop_wait=10, bootstrapped=bootstrapped
    )
    assert text.startswith(config.HEADER)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_cluster_yaml_uses_the_endpoints_dcs_and_certificate_replication() -> None:
    """Scope `<c>-ha`, Endpoints, PGO's labels, and the replication user by certificate."""
    document = _cluster(PostgresSettings(), {}, bootstrapped=False)
    assert document["scope"] == "hippo-ha"
    kubernetes = document["kubernetes"]
    assert kubernetes["use_endpoints"] is True
    assert kubernetes["labels"] == {"postgres-operator.crunchydata.com/cluster": "hippo"}
    assert kubernetes["role_label"] == "postgres-operator.crunchydata.com/role"
    assert kubernetes["leader_label_value"] == "master"
    assert document["postgresql"]["authentication"]["replication"]["username"] == "_crunchyrepl"
    assert document["bootstrap"]["dcs"]["ttl"] == 30
    assert document["bootstrap"]["dcs"]["loop_wait"] == 10


def test_dcs_holds_the_parameters_and_hba_of_the_settings() -> None:
    """The bootstrap DCS carries PostgreSQL's parameters (contributions included) and pg_hba."""
    settings = PostgresSettings(
        parameters={"work_mem": "8MB"}, contributed={"archive_command": "true"}
    )
    dynamic = {"postgresql": {"pg_hba": ["local all all trust"], "use_slots": True}}
    dcs = _cluster(settings, dynamic, bootstrapped=False)["bootstrap"]["dcs"]["postgresql"]
    assert dcs["parameters"]["work_mem"] == "8MB"
    assert dcs["parameters"]["archive_command"] == "true"
    assert dcs["pg_hba"][-1] == "local all all trust"
    assert dcs["use_pg_rewind"] is True
    assert dcs["use_slots"] is True


def test_bootstrap_sections_disappear_once_bootstrapped() -> None:
    """After Patroni initialised the cluster, changes go through its API, not the files."""
    assert "bootstrap" not in _cluster(PostgresSettings(), {}, bootstrapped=True)
    instance = yaml.safe_load(
        config.instance_yaml(16, separate_wal_volume=False, bootstrapped=False)
    )
    assert instance["bootstrap"]["initdb"] == [
        "data-checksums",
        "encoding=UTF8",
        "waldir=/pgdata/pg16_wal",
    ]
    assert instance["postgresql"]["create_replica_methods"] == ["basebackup"]
    assert instance["postgresql"]["basebackup"] == ["checkpoint=fast", "waldir=/pgdata/pg16_wal"]
    later = yaml.safe_load(config.instance_yaml(16, separate_wal_volume=True, bootstrapped=True))
    assert "bootstrap" not in later
    assert later["postgresql"]["basebackup"] == ["checkpoint=fast", "waldir=/pgwal/pg16_wal"]


def test_contributed_replica_methods_come_before_a_base_backup() -> None:
    """A subsystem's replica creation method is tried first, with its own settings."""
    method = {"restore": {"command": "restore-it", "no_leader": True}}
    document = yaml.safe_load(
        config.instance_yaml(
            16, separate_wal_volume=False, bootstrapped=True, replica_methods=method
        )
    )
    assert document["postgresql"]["create_replica_methods"] == ["restore", "basebackup"]
    assert document["postgresql"]["restore"] == method["restore"]


def test_a_standby_cluster_bootstraps_with_patronis_standby_section() -> None:
    """PGO's `standby_cluster`: the user's own keys kept, the source laid over them, a restore
    from the repository tried before a base backup of the remote primary."""
    dynamic = {"standby_cluster": {"primary_slot_name": "dr", "restore_command": "theirs"}}
    source = config.StandbySource(host="hippo-primary.east", port=5432, restore_command="fetch")
    dcs = config.dynamic_configuration(
        PostgresSettings(), dynamic, ttl=30, loop_wait=10, standby=source
    )
    assert dcs["standby_cluster"] == {
        "primary_slot_name": "dr",
        "host": "hippo-primary.east",
        "port": 5432,
        "restore_command": "fetch",
        "create_replica_methods": ["pgbackrest", "basebackup"],
    }
    streaming = config.standby_cluster({}, config.StandbySource(host="east"))
    assert streaming == {"host": "east", "create_replica_methods": ["basebackup"]}
    from_repo = config.standby_cluster({}, config.StandbySource(restore_command="fetch"))
    assert from_repo == {"restore_command": "fetch", "create_replica_methods": ["pgbackrest"]}
    text = config.cluster_yaml(
        "hippo",
        "ns",
        PostgresSettings(),
        {},
        ttl=30,
        loop_wait=10,
        bootstrapped=False,
        standby=source,
    )
    assert (
        yaml.safe_load(text)["bootstrap"]["dcs"]["standby_cluster"]["host"] == "hippo-primary.east"
    )
    # Not a standby: no section of the operator's.
    assert "standby_cluster" not in config.dynamic_configuration(
        PostgresSettings(), {}, ttl=30, loop_wait=10
    )
