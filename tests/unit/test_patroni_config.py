"""Patroni configuration: parameter precedence, pg_hba order, the bootstrap section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from reconciler.postgrescluster import patroni


def _cluster(
    settings: patroni.PostgresSettings, dynamic: Mapping[str, Any], bootstrapped: bool
) -> dict[str, Any]:
    text = patroni.cluster_yaml(
        "hippo", "ns", settings, dynamic, ttl=30, loop_wait=10, bootstrapped=bootstrapped
    )
    assert text.startswith(patroni.HEADER)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_cluster_yaml_uses_the_endpoints_dcs_and_certificate_replication() -> None:
    """Scope `<c>-ha`, Endpoints, PGO's labels, and the replication user by certificate."""
    document = _cluster(patroni.PostgresSettings(), {}, bootstrapped=False)
    assert document["scope"] == "hippo-ha"
    kubernetes = document["kubernetes"]
    assert kubernetes["use_endpoints"] is True
    assert kubernetes["labels"] == {"postgres-operator.crunchydata.com/cluster": "hippo"}
    assert kubernetes["role_label"] == "postgres-operator.crunchydata.com/role"
    assert kubernetes["leader_label_value"] == "master"
    assert document["postgresql"]["authentication"]["replication"]["username"] == "_crunchyrepl"
    assert document["bootstrap"]["dcs"]["ttl"] == 30
    assert document["bootstrap"]["dcs"]["loop_wait"] == 10


def test_parameters_follow_pgo_precedence() -> None:
    """mandatory > spec.config.parameters > dynamicConfiguration > defaults."""
    settings = patroni.PostgresSettings(parameters={"jit": "on", "work_mem": "8MB", "ssl": "off"})
    dynamic = {
        "postgresql": {"parameters": {"work_mem": "4MB", "max_connections": 200, "jit": "x"}}
    }
    parameters = _cluster(settings, dynamic, bootstrapped=False)["bootstrap"]["dcs"]["postgresql"][
        "parameters"
    ]
    assert parameters["ssl"] == "on"
    assert parameters["work_mem"] == "8MB"
    assert parameters["jit"] == "on"
    assert parameters["max_connections"] == 200
    assert parameters["password_encryption"] == "scram-sha-256"
    assert parameters["wal_level"] == "logical"
    assert parameters["archive_command"] == 'pgbackrest --stanza=db archive-push "%p"'


def test_pgaudit_stays_preloaded_next_to_user_libraries() -> None:
    """Libraries the user preloads are kept, and pgaudit is added to them."""
    settings = patroni.PostgresSettings(
        parameters={"shared_preload_libraries": "pg_stat_statements"}
    )
    parameters = patroni.postgres_parameters(settings, {})
    assert parameters["shared_preload_libraries"] == "pgaudit,pg_stat_statements"


def test_pg_hba_has_mandatory_rules_first_then_the_spec_then_patroni() -> None:
    """The replication user is certificate-only; user rules follow in their order."""
    settings = patroni.PostgresSettings(
        authentication_rules=[
            {
                "connection": "hostssl",
                "databases": ["app"],
                "users": ["app"],
                "method": "scram-sha-256",
            },
            {"hba": "host all all 10.0.0.0/8 reject"},
        ]
    )
    lines = patroni.pg_hba(settings, {"postgresql": {"pg_hba": ["local all all trust"]}})
    assert lines[:6] == patroni.mandatory_hba()
    # The operator reaches "postgres" with its certificate only, never with a password.
    assert lines[4:6] == ['hostssl all "postgres" all "cert"', 'host all "postgres" all "reject"']
    assert lines[6:] == [
        'hostssl "app" "app" all "scram-sha-256"',
        "host all all 10.0.0.0/8 reject",
        "local all all trust",
    ]
    assert (
        patroni.pg_hba(patroni.PostgresSettings(), {})[-1] == 'hostssl all all all "scram-sha-256"'
    )


def test_bootstrap_sections_disappear_once_bootstrapped() -> None:
    """After Patroni initialised the cluster, changes go through its API, not the files."""
    assert "bootstrap" not in _cluster(patroni.PostgresSettings(), {}, bootstrapped=True)
    instance = yaml.safe_load(
        patroni.instance_yaml(
            16, separate_wal_volume=False, bootstrapped=False, replica_from_backup=False
        )
    )
    assert instance["bootstrap"]["initdb"] == [
        "data-checksums",
        "encoding=UTF8",
        "waldir=/pgdata/pg16_wal",
    ]
    assert instance["postgresql"]["create_replica_methods"] == ["basebackup"]
    later = yaml.safe_load(
        patroni.instance_yaml(
            16, separate_wal_volume=True, bootstrapped=True, replica_from_backup=True
        )
    )
    assert "bootstrap" not in later
    assert later["postgresql"]["create_replica_methods"] == ["pgbackrest", "basebackup"]
    assert "--link-map=pg_wal=/pgwal/pg16_wal" in later["postgresql"]["pgbackrest"]["command"]
