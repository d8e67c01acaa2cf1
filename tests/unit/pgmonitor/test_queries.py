"""The exporter's default queries: postgres_exporter's format, pgMonitor's metric names."""

from __future__ import annotations

import yaml

from reconciler.pgmonitor import queries

DOCUMENTED = {
    "ccp_connection_stats_total",
    "ccp_replication_lag_size_bytes",
    "ccp_replication_lag_replay_time",
    "ccp_archive_command_status_seconds_since_last_archive",
    "ccp_wal_activity_total_size_bytes",
    "ccp_database_size_bytes",
    "ccp_backrest_last_full_backup_time_since_completion_seconds",
    "ccp_nodemx_data_disk_available_bytes",
    "ccp_pg_stat_statements_total_calls_count",
    "ccp_postmaster_uptime_seconds",
}


def metric_names(document: dict[str, dict[str, object]]) -> set[str]:
    """The metrics postgres_exporter makes of a queries file: `<query>_<value column>`."""
    names = set()
    for name, query in document.items():
        for metric in query["metrics"]:  # type: ignore[attr-defined]
            ((column, settings),) = metric.items()
            if settings["usage"] != "LABEL":
                names.add(f"{name}_{column}")
    return names


def test_queries_are_postgres_exporter_yaml_with_pgmonitor_names() -> None:
    document = yaml.safe_load(queries.default_queries(15))
    for query in document.values():
        assert set(query) == {"query", "metrics"}
        for metric in query["metrics"]:
            ((_, settings),) = metric.items()
            assert settings["usage"] in {"LABEL", "GAUGE", "COUNTER"}
    assert metric_names(document) >= DOCUMENTED


def test_statement_times_follow_the_major() -> None:
    assert "total_exec_time" in queries.default_queries(13)
    assert "total_exec_time" not in queries.default_queries(12)


def test_no_queries_past_the_last_major_pgmonitor_supports() -> None:
    assert queries.supported(17)
    assert not queries.supported(18)
    assert queries.default_queries(18) == ""


def test_rendering_is_deterministic() -> None:
    assert queries.default_queries(16) == queries.default_queries(16)
