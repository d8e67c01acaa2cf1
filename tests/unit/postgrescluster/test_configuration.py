"""The spec and the subsystems' contributions, as Patroni and PostgreSQL get them."""

from __future__ import annotations

from reconciler.postgrescluster.configuration import dynamic_configuration, postgres_settings

SPEC = {
    "port": 5432,
    "config": {"parameters": {"work_mem": "8MB"}},
    "authentication": {"rules": [{"hba": "host all all 10.0.0.0/8 reject"}]},
    "patroni": {"leaderLeaseDurationSeconds": 30, "syncPeriodSeconds": 10},
}


def test_settings_carry_the_spec_and_pgbackrest_archiving() -> None:
    settings = postgres_settings(SPEC)
    assert settings.parameters == {"work_mem": "8MB"}
    assert settings.authentication_rules == [{"hba": "host all all 10.0.0.0/8 reject"}]
    assert settings.contributed["archive_command"] == "true"


def test_dynamic_configuration_is_what_bootstrap_renders() -> None:
    dcs = dynamic_configuration(SPEC)
    assert (dcs["ttl"], dcs["loop_wait"]) == (30, 10)
    assert dcs["postgresql"]["parameters"]["work_mem"] == "8MB"
    assert "host all all 10.0.0.0/8 reject" in dcs["postgresql"]["pg_hba"]


def test_monitoring_adds_its_hba_lines_and_pg_stat_statements() -> None:
    settings = postgres_settings({**SPEC, "monitoring": {"pgmonitor": {"exporter": {}}}})
    assert 'host all "ccp_monitoring" all "reject"' in settings.contributed_hba
    assert settings.preload_libraries == ("pg_stat_statements",)
    assert postgres_settings(SPEC).preload_libraries == ()
