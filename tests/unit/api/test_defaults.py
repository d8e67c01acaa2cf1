"""PGO's in-memory defaults."""

from __future__ import annotations

from reconciler.api import parse_postgres_cluster, with_defaults
from tests.api_examples import hippo


def test_defaults_fill_what_pgo_fills() -> None:
    raw = hippo()
    volume = raw["spec"]["instances"][0]["dataVolumeClaimSpec"]
    raw["spec"]["instances"] = [{"dataVolumeClaimSpec": volume}, {"dataVolumeClaimSpec": volume}]
    raw["spec"]["proxy"] = {"pgBouncer": {}}
    raw["spec"]["userInterface"] = {"pgAdmin": {"dataVolumeClaimSpec": volume}}
    cluster = with_defaults(parse_postgres_cluster(raw))
    spec = cluster.spec
    assert [instance.name for instance in spec.instances] == ["00", "01"]
    assert [instance.replicas for instance in spec.instances] == [1, 1]
    assert spec.port == 5432
    assert spec.patroni is not None
    assert (
        spec.patroni.leader_lease_duration_seconds,
        spec.patroni.sync_period_seconds,
        spec.patroni.port,
    ) == (30, 10, 8008)
    assert spec.proxy is not None
    assert (spec.proxy.pg_bouncer.port, spec.proxy.pg_bouncer.replicas) == (5432, 1)
    assert spec.user_interface is not None
    assert spec.user_interface.pg_admin.replicas == 1


def test_defaults_keep_what_is_set() -> None:
    raw = hippo()
    raw["spec"]["port"] = 5433
    raw["spec"]["instances"][0]["replicas"] = 3
    raw["spec"]["patroni"] = {"syncPeriodSeconds": 5}
    spec = with_defaults(parse_postgres_cluster(raw)).spec
    assert spec.port == 5433
    assert spec.instances[0].name == "instance1"
    assert spec.instances[0].replicas == 3
    assert spec.patroni is not None
    assert spec.patroni.sync_period_seconds == 5
    assert spec.patroni.leader_lease_duration_seconds == 30
    assert spec.proxy is None


def test_defaults_do_not_change_the_input() -> None:
    raw = hippo()
    cluster = parse_postgres_cluster(raw)
    defaulted = with_defaults(cluster)
    assert defaulted is not cluster
    assert cluster.dump() == raw
    assert cluster.spec.patroni is None
    assert defaulted.spec.patroni is not None
