"""What pgMonitor needs inside PostgreSQL, as PGO sets it up: the `ccp_monitoring` role
(a member of `pg_monitor`, SCRAM over loopback only), `pg_stat_statements` preloaded and
created in every database, and in database `postgres` the `monitor` schema with the functions
the queries call for what `pg_monitor` cannot read (the backups in pgBackRest's repository,
the size of the data volumes).

Pure builders: statements with names and literals quoted here, run by the operator over its
certificate connection as the superuser.
"""

from __future__ import annotations

from reconciler import naming
from reconciler.pgmonitor import queries
from reconciler.postgres.sql import identifier, literal

SCHEMA = "monitor"
PRELOAD_LIBRARIES = ("pg_stat_statements",)


def hba(*, enabled: bool) -> list[str]:
    """pg_hba lines for the exporter (PGO's): `ccp_monitoring` with SCRAM from loopback only."""
    if not enabled:
        return []
    user = naming.MONITORING_USER
    return [
        f'host all "{user}" "127.0.0.0/8" "scram-sha-256"',
        f'host all "{user}" "::1/128" "scram-sha-256"',
        f'host all "{user}" all "reject"',
    ]


def preload_libraries(*, enabled: bool) -> tuple[str, ...]:
    """Libraries the exporter's queries need in `shared_preload_libraries`."""
    return PRELOAD_LIBRARIES if enabled else ()


def every_database_statements() -> list[str]:
    """One transaction in every database: the extensions the queries read."""
    return [
        "SET LOCAL synchronous_commit = LOCAL",
        "SET LOCAL client_min_messages = WARNING",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "ALTER EXTENSION pg_stat_statements UPDATE",
    ]


# The primary asks pgBackRest at most every PGBACKREST_INFO_THROTTLE_MINUTES and keeps the
# answer in a table, which replicas read as replicated; a failure is logged and the previous
# answer kept. The output is one JSON document: read it whole (no COPY quoting or delimiter).
_PGBACKREST_BACKUPS = f"""
BEGIN
  IF NOT pg_catalog.pg_is_in_recovery() AND NOT EXISTS (
    SELECT 1 FROM monitor.pgbackrest_info
    WHERE gathered > pg_catalog.clock_timestamp()
      - pg_catalog.make_interval(mins => {queries.PGBACKREST_INFO_THROTTLE_MINUTES})
  ) THEN
    BEGIN
      CREATE TEMPORARY TABLE IF NOT EXISTS monitor_pgbackrest_output (line text);
      TRUNCATE pg_temp.monitor_pgbackrest_output;
      COPY pg_temp.monitor_pgbackrest_output FROM PROGRAM 'pgbackrest --output=json info'
        WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
      INSERT INTO monitor.pgbackrest_info (data, gathered)
        SELECT pg_catalog.string_agg(line, E'\\n')::jsonb, pg_catalog.clock_timestamp()
        FROM pg_temp.monitor_pgbackrest_output
      ON CONFLICT (id) DO UPDATE SET data = excluded.data, gathered = excluded.gathered;
    EXCEPTION WHEN OTHERS THEN
      RAISE WARNING 'pgbackrest info failed: %', SQLERRM;
    END;
  END IF;
  RETURN QUERY
    SELECT b -> 'database' ->> 'repo-key', s ->> 'name', b ->> 'type',
      (b -> 'timestamp' ->> 'start')::bigint, (b -> 'timestamp' ->> 'stop')::bigint,
      (b -> 'info' -> 'repository' ->> 'delta')::bigint
    FROM monitor.pgbackrest_info i,
      pg_catalog.jsonb_array_elements(i.data) s,
      pg_catalog.jsonb_array_elements(s -> 'backup') b;
END"""

# pgMonitor reads volume sizes with the pgnodemx extension, which Debian does not package:
# `df` through COPY on the primary (a replica cannot write even a temporary table).
_DF = (
    'for d in /pgdata /pgwal; do [ -d "$d" ] && '
    'echo "$d" $(df --block-size=1 --output=size,avail "$d" | tail -n 1); done; true'
)
_DATA_DISKS = f"""
BEGIN
  IF pg_catalog.pg_is_in_recovery() THEN
    RETURN;
  END IF;
  CREATE TEMPORARY TABLE IF NOT EXISTS monitor_data_disks (line text);
  TRUNCATE pg_temp.monitor_data_disks;
  COPY pg_temp.monitor_data_disks FROM PROGRAM {literal(_DF)};
  RETURN QUERY
    SELECT f[1], f[2]::bigint, f[3]::bigint
    FROM (SELECT pg_catalog.regexp_split_to_array(pg_catalog.btrim(line), '\\s+') AS f
          FROM pg_temp.monitor_data_disks) AS lines
    WHERE pg_catalog.array_length(f, 1) = 3;
END"""

_FUNCTIONS = {
    "pgbackrest_backups()": (
        "TABLE(repo text, stanza text, backup_type text, start_time bigint, stop_time bigint,"
        " repo_size_bytes bigint)",
        _PGBACKREST_BACKUPS,
    ),
    "data_disks()": (
        "TABLE(mount_point text, total_bytes bigint, available_bytes bigint)",
        _DATA_DISKS,
    ),
}


def setup_statements(verifier: str) -> list[str]:
    """One transaction in database `postgres`: the role (once), the `monitor` schema and its
    functions (SECURITY DEFINER, callable by the role only), and the role's login with its
    SCRAM verifier."""
    role, schema = identifier(naming.MONITORING_USER), identifier(SCHEMA)
    user = literal(naming.MONITORING_USER)
    statements = [
        "SET LOCAL synchronous_commit = LOCAL",
        "SET LOCAL client_min_messages = WARNING",
        (
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {user}) "
            f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
        ),
        f"GRANT pg_monitor TO {role}",
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"REVOKE ALL PRIVILEGES ON SCHEMA {schema} FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        (
            f"CREATE TABLE IF NOT EXISTS {schema}.pgbackrest_info ("
            "id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1), "
            "data jsonb NOT NULL, gathered timestamptz NOT NULL)"
        ),
        f"REVOKE ALL PRIVILEGES ON {schema}.pgbackrest_info FROM PUBLIC",
    ]
    for signature, (returns, body) in _FUNCTIONS.items():
        function = f"{schema}.{signature}"
        statements += [
            (
                f"CREATE OR REPLACE FUNCTION {function} RETURNS {returns} LANGUAGE plpgsql "
                "VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
                f"AS {literal(body)}"
            ),
            f"REVOKE ALL PRIVILEGES ON FUNCTION {function} FROM PUBLIC",
            f"GRANT EXECUTE ON FUNCTION {function} TO {role}",
        ]
    return [*statements, f"ALTER ROLE {role} LOGIN PASSWORD {literal(verifier)}"]


def disable_statements() -> list[str]:
    """Monitoring off: the role can no longer log in (PGO's removal; its objects stay)."""
    user = literal(naming.MONITORING_USER)
    return [
        "DO $$ BEGIN "
        f"IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {user}) "
        f"THEN EXECUTE pg_catalog.format('ALTER ROLE %I NOLOGIN', {user}); END IF; END $$"
    ]
