"""The exporter's default queries: the metrics pgMonitor documents for PostgreSQL (names,
labels, units), written here as postgres_exporter's custom-query YAML.

A metric is `<query name>_<column>`; LABEL columns become labels. Everything runs as
`ccp_monitoring` (a member of `pg_monitor`) in database `postgres`; what needs more goes
through the SECURITY DEFINER functions of the `monitor` schema (`pgmonitor.postgres`).
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

# How often (minutes) the primary asks pgBackRest about backups, at most: `pgbackrest info`
# reads the repository, too slow and costly for every scrape (PGO's default, 10).
PGBACKREST_INFO_THROTTLE_MINUTES = 10


@dataclass(frozen=True, slots=True)
class Query:
    """One query: its SQL, its label columns, and its value columns with what they mean."""

    name: str
    sql: str
    labels: tuple[str, ...]
    values: tuple[tuple[str, str], ...]  # (column, description)
    usage: str = "GAUGE"


def _backup_age(kind: str, types: str) -> Query:
    return Query(
        f"ccp_backrest_last_{kind}_backup",
        "SELECT repo, stanza, extract(epoch FROM clock_timestamp())::bigint - max(stop_time)"
        " AS time_since_completion_seconds FROM monitor.pgbackrest_backups()"
        f" WHERE backup_type IN ({types}) GROUP BY repo, stanza",
        ("repo", "stanza"),
        (
            (
                "time_since_completion_seconds",
                f"Seconds since the last completed {kind} backup (or a larger one) ended",
            ),
        ),
    )


QUERIES: tuple[Query, ...] = (
    Query(
        "ccp_postmaster_uptime",
        "SELECT extract(epoch FROM clock_timestamp() - pg_catalog.pg_postmaster_start_time())"
        " AS seconds",
        (),
        (("seconds", "Seconds since the postmaster started"),),
    ),
    Query(
        "ccp_postmaster_runtime",
        "SELECT extract(epoch FROM pg_catalog.pg_postmaster_start_time()) AS start_time_seconds",
        (),
        (("start_time_seconds", "When the postmaster started (Unix time)"),),
    ),
    Query(
        "ccp_is_in_recovery",
        "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN 1 ELSE 2 END AS status",
        (),
        (("status", "1 on a replica (in recovery), 2 on a primary"),),
    ),
    Query(
        "ccp_connection_stats",
        "SELECT count(*) AS total,"
        " count(*) FILTER (WHERE state = 'active') AS active,"
        " count(*) FILTER (WHERE state = 'idle') AS idle,"
        " count(*) FILTER (WHERE state IN ('idle in transaction',"
        " 'idle in transaction (aborted)')) AS idle_in_txn,"
        " coalesce(extract(epoch FROM max(clock_timestamp() - state_change)"
        " FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))), 0)"
        " AS max_idle_in_txn_time,"
        " coalesce(extract(epoch FROM max(clock_timestamp() - query_start)"
        " FILTER (WHERE state <> 'idle')), 0) AS max_query_time,"
        " coalesce(extract(epoch FROM max(clock_timestamp() - query_start)"
        " FILTER (WHERE wait_event_type = 'Lock')), 0) AS max_blocked_query_time,"
        " current_setting('max_connections')::int AS max_connections"
        " FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'",
        (),
        (
            ("total", "Client connections"),
            ("active", "Client connections running a statement"),
            ("idle", "Idle client connections"),
            ("idle_in_txn", "Client connections idle in a transaction"),
            (
                "max_idle_in_txn_time",
                "Longest time (s) a connection has been idle in a transaction",
            ),
            ("max_query_time", "Longest time (s) a statement has been running"),
            ("max_blocked_query_time", "Longest time (s) a statement has waited for a lock"),
            ("max_connections", "The max_connections setting"),
        ),
    ),
    Query(
        "ccp_replication_lag",
        "SELECT CASE WHEN NOT pg_catalog.pg_is_in_recovery()"
        " OR pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0"
        " ELSE extract(epoch FROM clock_timestamp()"
        " - pg_catalog.pg_last_xact_replay_timestamp()) END AS replay_time,"
        " CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN 0"
        " ELSE coalesce(extract(epoch FROM clock_timestamp()"
        " - pg_catalog.pg_last_xact_replay_timestamp()), 0) END AS received_time",
        (),
        (
            ("replay_time", "Seconds behind the primary in replay (0 when caught up)"),
            ("received_time", "Seconds since the last transaction replayed (replicas)"),
        ),
    ),
    Query(
        "ccp_replication_lag_size",
        "SELECT application_name AS replica, coalesce(host(client_addr), '') AS replica_addr,"
        " pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn) AS bytes"
        " FROM pg_catalog.pg_stat_replication WHERE NOT pg_catalog.pg_is_in_recovery()",
        ("replica", "replica_addr"),
        (("bytes", "Bytes of WAL a replica has yet to replay (on the primary)"),),
    ),
    Query(
        "ccp_archive_command_status",
        "SELECT archived_count, failed_count,"
        " coalesce(extract(epoch FROM clock_timestamp() - last_archived_time), -1)"
        " AS seconds_since_last_archive,"
        " coalesce(extract(epoch FROM clock_timestamp() - last_failed_time), -1)"
        " AS seconds_since_last_fail"
        " FROM pg_catalog.pg_stat_archiver",
        (),
        (
            ("archived_count", "WAL files archived"),
            ("failed_count", "Failed attempts to archive WAL"),
            ("seconds_since_last_archive", "Seconds since a WAL file was archived (-1: never)"),
            ("seconds_since_last_fail", "Seconds since archiving last failed (-1: never)"),
        ),
    ),
    Query(
        "ccp_wal_activity",
        "SELECT coalesce(sum(size), 0) AS total_size_bytes,"
        " coalesce(sum(size) FILTER (WHERE modification > clock_timestamp()"
        " - interval '5 minutes'), 0) AS last_5_min_size_bytes"
        " FROM pg_catalog.pg_ls_waldir()",
        (),
        (
            ("total_size_bytes", "Bytes of WAL in pg_wal"),
            ("last_5_min_size_bytes", "Bytes of WAL written to pg_wal in the last 5 minutes"),
        ),
    ),
    Query(
        "ccp_database_size",
        "SELECT datname AS dbname, pg_catalog.pg_database_size(oid) AS bytes"
        " FROM pg_catalog.pg_database WHERE NOT datistemplate",
        ("dbname",),
        (("bytes", "Size of the database"),),
    ),
    Query(
        "ccp_stat_database",
        "SELECT datname AS dbname, xact_commit, xact_rollback, blks_read, blks_hit,"
        " tup_inserted, tup_updated, tup_deleted, conflicts, temp_bytes, deadlocks"
        " FROM pg_catalog.pg_stat_database WHERE datname IS NOT NULL",
        ("dbname",),
        (
            ("xact_commit", "Transactions committed"),
            ("xact_rollback", "Transactions rolled back"),
            ("blks_read", "Blocks read from disk"),
            ("blks_hit", "Blocks found in shared buffers"),
            ("tup_inserted", "Rows inserted"),
            ("tup_updated", "Rows updated"),
            ("tup_deleted", "Rows deleted"),
            ("conflicts", "Queries cancelled by conflicts with recovery"),
            ("temp_bytes", "Bytes written to temporary files"),
            ("deadlocks", "Deadlocks detected"),
        ),
        usage="COUNTER",
    ),
    Query(
        "ccp_locks",
        "SELECT d.datname AS dbname, m.mode, count(l.mode) AS count"
        " FROM pg_catalog.pg_database d CROSS JOIN (VALUES ('AccessShareLock'),"
        " ('RowShareLock'), ('RowExclusiveLock'), ('ShareUpdateExclusiveLock'), ('ShareLock'),"
        " ('ShareRowExclusiveLock'), ('ExclusiveLock'), ('AccessExclusiveLock')) AS m(mode)"
        " LEFT JOIN pg_catalog.pg_locks l ON l.database = d.oid AND l.mode = m.mode"
        " WHERE NOT d.datistemplate GROUP BY d.datname, m.mode",
        ("dbname", "mode"),
        (("count", "Locks held or awaited, by mode"),),
    ),
    Query(
        "ccp_transaction_wraparound",
        "SELECT round(100 * max(age(datfrozenxid))::numeric / 2147483648, 2)"
        " AS percent_towards_wraparound,"
        " round(100 * max(age(datfrozenxid))::numeric"
        " / current_setting('autovacuum_freeze_max_age')::numeric, 2)"
        " AS percent_towards_emergency_autovac"
        " FROM pg_catalog.pg_database",
        (),
        (
            ("percent_towards_wraparound", "How near the oldest database is to wraparound (%)"),
            (
                "percent_towards_emergency_autovac",
                "How near the oldest database is to a forced autovacuum (%)",
            ),
        ),
    ),
    Query(
        "ccp_nodemx_data_disk",
        "SELECT mount_point, total_bytes, available_bytes FROM monitor.data_disks()",
        ("mount_point",),
        (
            ("total_bytes", "Size of the volume of PGDATA or WAL (primary only)"),
            ("available_bytes", "Bytes available on the volume of PGDATA or WAL (primary only)"),
        ),
    ),
    _backup_age("full", "'full'"),
    _backup_age("diff", "'full', 'diff'"),
    _backup_age("incr", "'full', 'diff', 'incr'"),
    Query(
        "ccp_backrest_last_info",
        "SELECT DISTINCT ON (repo, stanza) repo, stanza, backup_type,"
        " stop_time - start_time AS backup_runtime_seconds,"
        " repo_size_bytes AS repo_backup_size_bytes"
        " FROM monitor.pgbackrest_backups() ORDER BY repo, stanza, stop_time DESC",
        ("repo", "stanza", "backup_type"),
        (
            ("backup_runtime_seconds", "How long the last backup took"),
            ("repo_backup_size_bytes", "Size of the last backup in the repository"),
        ),
    ),
)


def _statements(postgres_version: int) -> Query:
    # PostgreSQL 13 split planning from execution in pg_stat_statements' columns.
    prefix = "_exec" if postgres_version >= 13 else ""
    return Query(
        "ccp_pg_stat_statements_total",
        "SELECT pg_catalog.pg_get_userbyid(s.userid) AS role, d.datname AS dbname,"
        f" sum(s.calls) AS calls_count, sum(s.total{prefix}_time) AS exec_time_ms,"
        f" avg(s.mean{prefix}_time) AS mean_exec_time_ms, sum(s.rows) AS row_count"
        " FROM public.pg_stat_statements s JOIN pg_catalog.pg_database d ON d.oid = s.dbid"
        " GROUP BY 1, 2",
        ("role", "dbname"),
        (
            ("calls_count", "Statements run"),
            ("exec_time_ms", "Time spent running statements (ms)"),
            ("mean_exec_time_ms", "Mean time of a statement (ms)"),
            ("row_count", "Rows returned or affected"),
        ),
    )


# pgMonitor's queries for postgres_exporter stop at PostgreSQL 17 (PGO's limit too).
LAST_SUPPORTED_MAJOR = 17


def supported(postgres_version: int) -> bool:
    """Whether pgMonitor's exporter queries exist for this PostgreSQL major."""
    return postgres_version <= LAST_SUPPORTED_MAJOR


def default_queries(postgres_version: int) -> str:
    """The queries file of `<c>-exporter-queries-config` for PostgreSQL `postgres_version`;
    empty past the last major pgMonitor supports, as PGO leaves it."""
    if not supported(postgres_version):
        return ""
    document = {
        query.name: {
            "query": query.sql,
            "metrics": [
                *({label: {"usage": "LABEL", "description": label}} for label in query.labels),
                *(
                    {column: {"usage": query.usage, "description": description}}
                    for column, description in query.values
                ),
            ],
        }
        for query in (*QUERIES, _statements(postgres_version))
    }
    return yaml.safe_dump(document, sort_keys=False, width=120)
